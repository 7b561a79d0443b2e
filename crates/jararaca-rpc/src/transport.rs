//! Transports: the services at the bottom of a client stack that actually send requests.

#[cfg(feature = "hyper")]
pub use self::hyper_transport::HyperTransport;
#[cfg(feature = "axum")]
pub use self::router::RouterTransport;

#[cfg(feature = "hyper")]
mod hyper_transport {
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use hyper_rustls::HttpsConnector;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::{Client, ResponseFuture};
    use hyper_util::rt::TokioExecutor;
    use tower_service::Service;

    use crate::Body;

    /// hyper-util's pooled client, over HTTP/1.1 with TLS by rustls and the webpki roots.
    ///
    /// One value is one connection pool; clones share it, so make one per remote service (or
    /// per process) and clone it into every client, never one per request.
    #[derive(Debug, Clone)]
    pub struct HyperTransport {
        // Behind an `Arc`: a client stack is cloned for every request (and again by a retry
        // layer), and a hyper-util `Client` clone is several reference counts.
        client: Arc<Client<HttpsConnector<HttpConnector>, Body>>,
    }

    impl HyperTransport {
        /// A transport for `http` and `https` URLs, with hyper-util's default pool settings.
        pub fn new() -> Self {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .build();
            Self::from_client(Client::builder(TokioExecutor::new()).build(connector))
        }

        /// A transport over a client configured by hand (pool sizes, idle timeout, TLS).
        pub fn from_client(client: Client<HttpsConnector<HttpConnector>, Body>) -> Self {
            Self {
                client: Arc::new(client),
            }
        }
    }

    impl Default for HyperTransport {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Service<http::Request<Body>> for HyperTransport {
        type Response = http::Response<hyper::body::Incoming>;
        type Error = hyper_util::client::legacy::Error;
        type Future = ResponseFuture;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Service::<http::Request<Body>>::poll_ready(&mut &*self.client, cx)
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            self.client.request(request)
        }
    }
}

#[cfg(feature = "axum")]
mod router {
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    use axum::Router;
    use axum::routing::future::RouteFuture;
    use tower_service::Service;

    use crate::Body;

    /// Calls an axum [`Router`] in process: the same client stack, no socket. Meant for tests.
    #[derive(Debug, Clone)]
    pub struct RouterTransport {
        router: Router,
    }

    impl RouterTransport {
        /// A transport into `router` (its state already given with `with_state`).
        pub fn new(router: Router) -> Self {
            Self { router }
        }
    }

    impl Service<http::Request<Body>> for RouterTransport {
        type Response = http::Response<axum::body::Body>;
        type Error = Infallible;
        type Future = RouteFuture<Infallible>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Service::<http::Request<Body>>::poll_ready(&mut self.router, cx)
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            self.router.call(request)
        }
    }
}
