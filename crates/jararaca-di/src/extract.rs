//! axum extractors for the values the layers attach to a request.

use std::ops::Deref;
use std::sync::Arc;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::{Container, Key, ResolveError, Scope, UnitOfWork};

/// A value resolved from the request's DI scope: `async fn handler(Inject(repo): Inject<Repo>)`.
///
/// Needs the [`ScopeLayer`](crate::ScopeLayer) around the route; without it, or when `T` is
/// not provided, the request is answered with a 500 naming the missing piece (and the reason
/// is logged).
#[derive(Debug)]
pub struct Inject<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Clone for Inject<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> Deref for Inject<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + Send + Sync + 'static> Inject<T> {
    /// Resolves `T` from the scope in `extensions`, for transports other than axum.
    pub async fn from_extensions(extensions: &http::Extensions) -> Result<Self, Rejection> {
        let scope = extensions
            .get::<Scope>()
            .ok_or(Rejection::NoScope(Key::of::<T>()))?;
        scope
            .resolve::<T>()
            .await
            .map(Inject)
            .map_err(Rejection::Resolve)
    }
}

impl<T, S> FromRequestParts<S> for Inject<T>
where
    T: ?Sized + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_extensions(&parts.extensions).await
    }
}

/// Why a DI extractor failed. Answered with a 500: it is a wiring mistake, not bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No [`ScopeLayer`](crate::ScopeLayer) wraps the route.
    #[error("cannot inject `{0}`: no dependency-injection scope; wrap the routes in ScopeLayer")]
    NoScope(Key),
    /// No [`UnitOfWorkLayer`](crate::UnitOfWorkLayer) wraps the route.
    #[error("no unit of work: wrap the routes in UnitOfWorkLayer")]
    NoUnitOfWork,
    /// The scope could not resolve the value.
    #[error("cannot inject: {0}")]
    Resolve(#[source] ResolveError),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "dependency injection failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(http::header::CONTENT_TYPE, "application/json")],
            r#"{"detail":"Internal Server Error"}"#,
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scope {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Scope>()
            .cloned()
            .ok_or(Rejection::NoScope(Key::of::<Scope>()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Container {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Scope>()
            .map(|s| s.container().clone())
            .ok_or(Rejection::NoScope(Key::of::<Container>()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UnitOfWork {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<UnitOfWork>()
            .cloned()
            .ok_or(Rejection::NoUnitOfWork)
    }
}
