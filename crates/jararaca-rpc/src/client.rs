//! [`RestClient`]: sends [`RestRequest`]s through a tower client stack and decodes the answers.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde::de::DeserializeOwned;
use tower_service::Service;

use http::uri::{Authority, Scheme};

use crate::request::{Mapper, RouteOutcome, join};
use crate::sending::{Sending, Then};
use crate::{Body, BoxError, RestRequest, RpcError, RpcResponse};

/// The base URL was not an absolute `http` or `https` URL without a query.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid base URL `{url}`: {reason}")]
pub struct InvalidBaseUrl {
    url: String,
    reason: &'static str,
}

/// A base URL, parsed once: each request's URI is put together from these parts instead of a
/// joined string being parsed again.
#[derive(Debug)]
pub(crate) struct BaseUrl {
    /// The whole base URL, without a trailing `/`.
    pub(crate) url: Box<str>,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// Its path without a trailing `/` (empty for none).
    pub(crate) path: Box<str>,
}

impl BaseUrl {
    pub(crate) fn parse(base_url: &str) -> Result<Self, InvalidBaseUrl> {
        let invalid = |reason| InvalidBaseUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: http::Uri = base_url.parse().map_err(|_| invalid("not a URL"))?;
        let parts = uri.into_parts();
        let scheme = match parts.scheme {
            Some(scheme) if scheme == Scheme::HTTP || scheme == Scheme::HTTPS => scheme,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let authority = parts.authority.ok_or_else(|| invalid("it has no host"))?;
        let path = match &parts.path_and_query {
            Some(pq) if pq.query().is_some() => return Err(invalid("it has a query")),
            Some(pq) => pq.path().trim_end_matches('/').into(),
            None => "".into(),
        };
        Ok(Self {
            url: base_url.trim_end_matches('/').into(),
            scheme,
            authority,
            path,
        })
    }

    fn nest(&self, path: &str) -> Self {
        Self {
            url: join(&self.url, path).trim_end_matches('/').into(),
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            path: join(&self.path, path).trim_end_matches('/').into(),
        }
    }
}

/// A REST client: a base URL, the client's error mappers, and the service that sends requests
/// (a transport, usually wrapped in layers).
///
/// The base URL's path is kept: with `http://h/api`, the route `/orders` is
/// `http://h/api/orders`. Cloning is cheap and shares the service's connection pool.
pub struct RestClient<S, E = Infallible> {
    service: S,
    base: Arc<BaseUrl>,
    mappers: Arc<Vec<(StatusCode, Mapper<E>)>>,
}

impl<S: Clone, E> Clone for RestClient<S, E> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            base: Arc::clone(&self.base),
            mappers: Arc::clone(&self.mappers),
        }
    }
}

impl<S: fmt::Debug, E> fmt::Debug for RestClient<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.base.url)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl<S> RestClient<S> {
    /// A client sending through `service` to routes under `base_url`, with no error type of
    /// its own yet ([`errors`](Self::errors) sets one).
    pub fn new(service: S, base_url: &str) -> Result<Self, InvalidBaseUrl> {
        Ok(Self {
            service,
            base: Arc::new(BaseUrl::parse(base_url)?),
            mappers: Arc::new(Vec::new()),
        })
    }

    /// The same client with `E` as the error type its mappers build.
    pub fn errors<E>(self) -> RestClient<S, E> {
        // A mapper into `Infallible` cannot return, so there is nothing to carry over.
        RestClient {
            service: self.service,
            base: self.base,
            mappers: Arc::new(Vec::new()),
        }
    }
}

impl<S, E> RestClient<S, E> {
    /// The same client with routes under `path` below its base URL (the `"/base"` of
    /// `#[rest_client("/base")]`).
    #[must_use]
    pub fn nest(mut self, path: &str) -> Self {
        self.base = Arc::new(self.base.nest(path));
        self
    }

    /// A response with `status` becomes `RpcError::Mapped(map(&response))` on every route
    /// whose own mappers do not claim it.
    #[must_use]
    pub fn on_status(
        mut self,
        status: StatusCode,
        map: impl Fn(&RpcResponse) -> E + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.mappers).push((status, Arc::new(map)));
        self
    }

    /// The base URL routes are joined to.
    pub fn base_url(&self) -> &str {
        &self.base.url
    }

    /// The service requests go through.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// `response` when its status is a success for the route; otherwise the route's mappers,
    /// then the client's, then [`RpcError::Status`].
    pub(crate) fn settle(
        &self,
        outcome: RouteOutcome<E>,
        response: RpcResponse,
    ) -> Result<RpcResponse, RpcError<E>> {
        if outcome.success.accepts(response.status) {
            return Ok(response);
        }
        let mapper = outcome
            .mappers
            .iter()
            .chain(self.mappers.iter())
            .find(|(status, _)| *status == response.status);
        match mapper {
            Some((_, map)) => Err(RpcError::Mapped(map(&response))),
            None => Err(RpcError::Status(Box::new(response))),
        }
    }

    /// The same client over its stack with the type erased: every client built this way has
    /// the type `RestClient<BoxService, E>` (a declared one `<Trait>Client<BoxService>`),
    /// whatever its layers and transport, so it can be named where a type must be written —
    /// a provider in the container, a field, a function signature. It costs one allocation
    /// per request for the boxed future and one for the response body.
    pub fn boxed<B>(self) -> RestClient<BoxService, E>
    where
        S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync,
        S: 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = tower::ServiceBuilder::new()
            .map_err(Into::into)
            .map_response(|response: http::Response<B>| response.map(Body::stream))
            .service(self.service);
        RestClient {
            service: BoxService::new(service),
            base: self.base,
            mappers: self.mappers,
        }
    }
}

/// A client stack with its type erased, as [`RestClient::boxed`] makes it: requests and
/// responses both carry a [`Body`].
pub type BoxService =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>;

impl<S, B, E> RestClient<S, E>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    /// Sends `request` and returns the whole response when its status is a success for the
    /// route; otherwise the route's mappers, then the client's, then [`RpcError::Status`].
    ///
    /// The request is built before the future is returned (a builder error is what the future
    /// gives when awaited), so the future holds the `http::Request` it sends, not the builder.
    pub fn send(
        &self,
        request: RestRequest<E>,
    ) -> impl Future<Output = Result<RpcResponse, RpcError<E>>> + use<'_, S, B, E> {
        match request.build(&self.base) {
            Ok((request, outcome)) => Sending::new(self, request, outcome),
            Err(message) => Sending::failed(self, message),
        }
    }

    /// Sends `request` and decodes a successful response's body as JSON.
    pub fn json<T: DeserializeOwned>(
        &self,
        request: RestRequest<E>,
    ) -> impl Future<Output = Result<T, RpcError<E>>> + use<'_, S, B, E, T> {
        Then::new(self.send(request), |response: RpcResponse| {
            match response.json() {
                Ok(value) => Ok(value),
                Err(source) => Err(RpcError::Decode {
                    response: Box::new(response),
                    source,
                }),
            }
        })
    }

    /// Sends `request` and returns a successful response's body.
    pub fn bytes(
        &self,
        request: RestRequest<E>,
    ) -> impl Future<Output = Result<Bytes, RpcError<E>>> + use<'_, S, B, E> {
        Then::new(self.send(request), |response: RpcResponse| {
            Ok(response.into_body())
        })
    }

    /// Sends `request` and ignores a successful response's body.
    pub fn execute(
        &self,
        request: RestRequest<E>,
    ) -> impl Future<Output = Result<(), RpcError<E>>> + use<'_, S, B, E> {
        Then::new(self.send(request), |_: RpcResponse| Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_nest_keeps_paths() {
        let client = RestClient::new((), "http://h/api/").unwrap();
        assert_eq!(client.base_url(), "http://h/api");
        assert_eq!(client.base.path.as_ref(), "/api");
        let nested = client.nest("/v1/");
        assert_eq!(nested.base_url(), "http://h/api/v1");
        assert_eq!(nested.base.path.as_ref(), "/api/v1");
        let root = RestClient::new((), "https://h:8443").unwrap().nest("v1");
        assert_eq!(
            (root.base_url(), root.base.path.as_ref()),
            ("https://h:8443/v1", "/v1")
        );
        for bad in ["/api", "ftp://h/x", "http://h/api?x=1", "not a url"] {
            assert!(RestClient::new((), bad).is_err(), "{bad}");
        }
    }
}
