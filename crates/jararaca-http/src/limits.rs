//! [`ServerLimits`]: how much of the server one client can hold, and for how long.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use clap::{Arg, ArgMatches};
use futures_util::future::Either;
use http::header::{CONNECTION, CONTENT_LENGTH};
use http::{HeaderValue, Request, StatusCode};
use hyper::body::{Body as _, Incoming};
use tower_http::timeout::DeadlineBody;
use tower_service::Service;

use crate::ApiError;

/// Bounds on what clients can hold of the server: how long a request's headers and body may
/// take to arrive, how many connections are open at once, and how large a body may be.
///
/// The defaults are safe for a service on the internet; the `server` command reads each from
/// an option and its environment variable (`--header-read-timeout` / `HEADER_READ_TIMEOUT`,
/// `--body-read-timeout` / `BODY_READ_TIMEOUT`, `--max-connections` / `MAX_CONNECTIONS`,
/// `--max-body-size` / `MAX_BODY_SIZE`).
///
/// What each bound does:
/// - a connection whose request headers have not all arrived within the header-read timeout
///   (counted from the start of the request, and for an idle keep-alive connection from the
///   end of its last response) is closed;
/// - a request body that has not all arrived within the body-read timeout (counted from the
///   request's headers) fails to read: the handler's body extractor answers with an error
///   and the connection is closed;
/// - while `max_connections` connections are open, the server accepts no more; new ones wait
///   in the listener's backlog until one closes. Keep it below the process's file-descriptor
///   limit (`ulimit -n`);
/// - a request that declares a `Content-Length` above `max_body_size` is answered `413` at
///   once, before its body is read and before any unit of work starts; a body without a
///   declared length is cut off at `max_body_size` by the body extractors (`413` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a request's headers may take to arrive.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive, from the end of its headers.
    pub body_read_timeout: Duration,
    /// How many connections may be open at once (0 is taken as 1).
    pub max_connections: usize,
    /// The largest request body accepted, in bytes.
    pub max_body_size: usize,
}

impl Default for ServerLimits {
    /// 10 s for headers, 30 s for a body, 10,000 connections, 2 MiB bodies.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_body_size: 2 * 1024 * 1024,
        }
    }
}

impl ServerLimits {
    /// The `server` command's options for these limits.
    pub(crate) fn args() -> [Arg; 4] {
        let defaults = Self::default();
        [
            Arg::new("header-read-timeout")
                .long("header-read-timeout")
                .env("HEADER_READ_TIMEOUT")
                .value_name("SECONDS")
                .default_value(defaults.header_read_timeout.as_secs().to_string())
                .value_parser(clap::value_parser!(u64).range(1..))
                .help("Close a connection whose request headers take longer than this"),
            Arg::new("body-read-timeout")
                .long("body-read-timeout")
                .env("BODY_READ_TIMEOUT")
                .value_name("SECONDS")
                .default_value(defaults.body_read_timeout.as_secs().to_string())
                .value_parser(clap::value_parser!(u64).range(1..))
                .help("Fail a request whose body takes longer than this to arrive"),
            Arg::new("max-connections")
                .long("max-connections")
                .env("MAX_CONNECTIONS")
                .default_value(defaults.max_connections.to_string())
                .value_parser(clap::value_parser!(u64).range(1..))
                .help("Accept no more connections while this many are open"),
            Arg::new("max-body-size")
                .long("max-body-size")
                .env("MAX_BODY_SIZE")
                .value_name("BYTES")
                .default_value(defaults.max_body_size.to_string())
                .value_parser(clap::value_parser!(u64))
                .help("Answer 413 to a request body larger than this"),
        ]
    }

    /// The limits the `server` command was given; the defaults for what it was not.
    pub(crate) fn from_matches(matches: &ArgMatches) -> Self {
        let get = |id: &str| matches.try_get_one::<u64>(id).ok().flatten().copied();
        let defaults = Self::default();
        Self {
            header_read_timeout: get("header-read-timeout")
                .map_or(defaults.header_read_timeout, Duration::from_secs),
            body_read_timeout: get("body-read-timeout")
                .map_or(defaults.body_read_timeout, Duration::from_secs),
            max_connections: get("max-connections")
                .and_then(|n| usize::try_from(n).ok())
                .map_or(defaults.max_connections, |n| n.max(1)),
            max_body_size: get("max-body-size")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(defaults.max_body_size),
        }
    }
}

/// The service each connection runs: the router behind the body bounds of [`ServerLimits`].
#[derive(Debug, Clone)]
pub(crate) struct Guarded {
    router: Router,
    body_limit: DefaultBodyLimit,
    max_body_size: u64,
    body_read_timeout: Duration,
}

impl Guarded {
    pub(crate) fn new(router: Router, limits: ServerLimits) -> Self {
        Self {
            router,
            body_limit: DefaultBodyLimit::max(limits.max_body_size),
            max_body_size: u64::try_from(limits.max_body_size).unwrap_or(u64::MAX),
            body_read_timeout: limits.body_read_timeout,
        }
    }
}

impl Service<Request<Incoming>> for Guarded {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A `Router` is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body_size) {
            let detail = format!(
                "the request body is larger than the {} bytes this server accepts",
                self.max_body_size
            );
            let mut response = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, detail).into_response();
            // The body was never read: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return Either::Left(ready(Ok(response)));
        }
        // A request without a body (most GETs) has nothing to time or limit: it goes to the
        // router as it came, sparing a timer and an extension per request.
        if request.body().is_end_stream() {
            return Either::Right(self.router.call(request));
        }
        let timeout = self.body_read_timeout;
        let mut request = request.map(|body| DeadlineBody::new(timeout, body));
        self.body_limit.apply(&mut request);
        Either::Right(self.router.call(request))
    }
}
