//! Authentication layers: a fixed header ([`AuthLayer`]: bearer, basic, API key) and a token
//! from an async provider, refreshed once on `401` ([`TokenAuthLayer`]).

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue, InvalidHeaderValue};
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Body, BoxError, try_clone_request};

/// Adds one fixed credential header to every request that does not already carry it.
#[derive(Clone)]
pub struct AuthLayer {
    name: HeaderName,
    value: HeaderValue,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credential itself stays out of logs.
        f.debug_struct("AuthLayer")
            .field("header", &self.name)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Result<Self, InvalidHeaderValue> {
        Self::header(AUTHORIZATION, &format!("Bearer {token}"))
    }

    /// `Authorization: Basic <base64(user:password)>`.
    pub fn basic(user: &str, password: &str) -> Result<Self, InvalidHeaderValue> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::header(AUTHORIZATION, &format!("Basic {encoded}"))
    }

    /// `X-API-Key: <key>` (the reference's default header).
    pub fn api_key(key: &str) -> Result<Self, InvalidHeaderValue> {
        Self::header(HeaderName::from_static("x-api-key"), key)
    }

    /// `<name>: <value>`, marked sensitive.
    pub fn header(name: HeaderName, value: &str) -> Result<Self, InvalidHeaderValue> {
        let mut value = HeaderValue::try_from(value)?;
        value.set_sensitive(true);
        Ok(Self { name, value })
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        request
            .headers_mut()
            .entry(&self.layer.name)
            .or_insert_with(|| self.layer.value.clone());
        self.inner.call(request)
    }
}

/// A boxed future, as [`TokenProvider::fetch`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Fetches a bearer token (logging in, or exchanging a refresh token).
///
/// Implemented for every `Fn() -> impl Future<Output = Result<String, BoxError>>` closure.
pub trait TokenProvider: Send + Sync + 'static {
    /// A fresh token.
    fn fetch(&self) -> BoxFuture<'_, Result<String, BoxError>>;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
{
    fn fetch(&self) -> BoxFuture<'_, Result<String, BoxError>> {
        Box::pin(self())
    }
}

/// The token could not be fetched, or is not a valid header value.
#[derive(Debug, thiserror::Error)]
#[error("could not get a bearer token: {0}")]
pub struct TokenError(#[source] pub BoxError);

struct TokenState {
    provider: Box<dyn TokenProvider>,
    current: tokio::sync::Mutex<Option<HeaderValue>>,
}

/// Sends `Authorization: Bearer <token>` with a token from a [`TokenProvider`], fetched on the
/// first request and kept; on a `401` it fetches a new one and replays the request once (when
/// its body is in memory; a streaming body's `401` is returned as it is).
///
/// Concurrent requests that all meet a `401` for the same token make one fetch between them.
#[derive(Clone)]
pub struct TokenAuthLayer {
    state: Arc<TokenState>,
}

impl fmt::Debug for TokenAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuthLayer").finish_non_exhaustive()
    }
}

impl TokenAuthLayer {
    /// Tokens from `provider`.
    pub fn new(provider: impl TokenProvider) -> Self {
        Self {
            state: Arc::new(TokenState {
                provider: Box::new(provider),
                current: tokio::sync::Mutex::new(None),
            }),
        }
    }
}

impl TokenState {
    /// The kept token, or a fresh one if there is none, or if `rejected` is the kept one.
    async fn token(&self, rejected: Option<&HeaderValue>) -> Result<HeaderValue, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && rejected.is_none_or(|r| r != token)
        {
            return Ok(token.clone());
        }
        let token = self.provider.fetch().await.map_err(TokenError)?;
        let mut value =
            HeaderValue::try_from(format!("Bearer {token}")).map_err(|e| TokenError(e.into()))?;
        value.set_sensitive(true);
        *current = Some(value.clone());
        Ok(value)
    }
}

impl<S> Layer<S> for TokenAuthLayer {
    type Service = TokenAuth<S>;

    fn layer(&self, inner: S) -> TokenAuth<S> {
        TokenAuth {
            inner,
            state: Arc::clone(&self.state),
        }
    }
}

/// The service of [`TokenAuthLayer`].
#[derive(Clone)]
pub struct TokenAuth<S> {
    inner: S,
    state: Arc<TokenState>,
}

impl<S: fmt::Debug> fmt::Debug for TokenAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<Body>> for TokenAuth<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    // The token may have to be fetched before the call and again after it: several awaits,
    // so one boxed future rather than a hand-written state machine.
    type Future = BoxFuture<'static, Result<Response<B>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let token = state.token(None).await?;
            let replay = try_clone_request(&request);
            request.headers_mut().insert(AUTHORIZATION, token.clone());
            let response = inner.call(request).await.map_err(Into::into)?;
            let Some(mut again) = replay.filter(|_| response.status() == StatusCode::UNAUTHORIZED)
            else {
                return Ok(response);
            };
            drop(response);
            let fresh = state.token(Some(&token)).await?;
            again.headers_mut().insert(AUTHORIZATION, fresh);
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(again).await.map_err(Into::into)
        })
    }
}
