//! Retrying HTTP calls on the [`jararaca_retry`] policy: which outcomes ([`HttpRetryPredicate`])
//! and which requests ([`HttpReplay`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{Method, Request, Response, StatusCode};
use jararaca_retry::{Replay, RetryLayer, RetryPolicy, RetryPredicate};

use crate::route::Retryable;
use crate::{Body, try_clone_request};

/// A [`RetryLayer`] for HTTP: idempotent methods, `502`/`503`/`504` and transport errors,
/// honouring `Retry-After`.
///
/// ```
/// use std::time::Duration;
/// use jararaca_retry::RetryPolicy;
///
/// let layer = jararaca_rpc::retry(RetryPolicy::default().max_retries(3));
/// assert_eq!(layer.policy().max_retries, 3);
/// ```
pub fn retry(policy: RetryPolicy) -> RetryLayer<HttpRetryPredicate, HttpReplay> {
    RetryLayer::new(policy)
        .predicate(HttpRetryPredicate::default())
        .replay(HttpReplay::default())
}

/// Retries responses with one of its statuses (by default `502`, `503`, `504`) and, unless
/// turned off, every error (connection refused or reset, timeouts).
///
/// A retried response's `Retry-After` (seconds or an HTTP date) replaces the policy's delay; one
/// longer than the policy's `max_delay` ends the retries.
#[derive(Debug, Clone)]
pub struct HttpRetryPredicate {
    statuses: List<StatusCode>,
    errors: bool,
}

static RETRIED_STATUSES: [StatusCode; 3] = [
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

impl Default for HttpRetryPredicate {
    fn default() -> Self {
        Self {
            statuses: List::Static(&RETRIED_STATUSES),
            errors: true,
        }
    }
}

impl HttpRetryPredicate {
    /// Retries these statuses instead.
    #[must_use]
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = List::Shared(statuses.into_iter().collect());
        self
    }

    /// Whether errors (no response at all) are retried.
    #[must_use]
    pub fn errors(mut self, retry: bool) -> Self {
        self.errors = retry;
        self
    }
}

impl<B, E> RetryPredicate<Response<B>, E> for HttpRetryPredicate {
    fn should_retry(&self, outcome: &Result<Response<B>, E>) -> bool {
        match outcome {
            Ok(response) => self.statuses.contains(&response.status()),
            Err(_) => self.errors,
        }
    }

    fn retry_after(&self, outcome: &Result<Response<B>, E>) -> Option<Duration> {
        let value = outcome
            .as_ref()
            .ok()?
            .headers()
            .get(RETRY_AFTER)?
            .to_str()
            .ok()?;
        parse_retry_after(value, SystemTime::now())
    }
}

/// `Retry-After` as a delay: delta-seconds, or an HTTP date (a date in the past is no delay).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Copies a request for a retry when its method is idempotent (`GET`, `HEAD`, `OPTIONS`,
/// `TRACE`, `PUT`, `DELETE`) or its route says it may be retried
/// ([`RestRequest::retryable`](crate::RestRequest::retryable)), and its body is in memory.
/// Any other request is sent once.
#[derive(Debug, Clone)]
pub struct HttpReplay {
    methods: List<Method>,
}

static IDEMPOTENT_METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::OPTIONS,
    Method::TRACE,
    Method::PUT,
    Method::DELETE,
];

impl Default for HttpReplay {
    fn default() -> Self {
        Self {
            methods: List::Static(&IDEMPOTENT_METHODS),
        }
    }
}

impl HttpReplay {
    /// Retries these methods instead.
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = List::Shared(methods.into_iter().collect());
        self
    }
}

impl Replay<Request<Body>> for HttpReplay {
    fn replay(&self, request: &Request<Body>) -> Option<Request<Body>> {
        let allowed = match request.extensions().get::<Retryable>() {
            Some(Retryable(allowed)) => *allowed,
            None => self.methods.contains(request.method()),
        };
        if allowed {
            try_clone_request(request)
        } else {
            None
        }
    }
}

/// The statuses or methods of a predicate or replay, which the retry layer clones for every
/// request: the defaults are static and a custom list is shared, so a clone copies nothing
/// and the defaults do not even count references.
#[derive(Debug)]
enum List<T: 'static> {
    Static(&'static [T]),
    Shared(Arc<[T]>),
}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Static(list) => Self::Static(list),
            Self::Shared(list) => Self::Shared(Arc::clone(list)),
        }
    }
}

impl<T> std::ops::Deref for List<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Self::Static(list) => list,
            Self::Shared(list) => list,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(120))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn custom_statuses_and_methods_replace_the_defaults() {
        let response = |code: u16| Ok::<_, ()>(Response::builder().status(code).body(()).unwrap());
        let failed = Err::<Response<()>, ()>(());
        let default = HttpRetryPredicate::default();
        assert!(default.should_retry(&response(503)) && default.should_retry(&failed));
        assert!(!default.should_retry(&response(429)));
        let custom = default
            .clone()
            .statuses([StatusCode::TOO_MANY_REQUESTS])
            .errors(false);
        assert!(custom.should_retry(&response(429)));
        assert!(!custom.should_retry(&response(503)));
        assert!(!custom.should_retry(&failed));
        assert!(
            default.should_retry(&response(503)),
            "the default is untouched"
        );

        let posts = HttpReplay::default().methods([Method::POST]);
        let post = Request::post("http://h/x").body(Body::full("a")).unwrap();
        let get = Request::get("http://h/x").body(Body::empty()).unwrap();
        assert!(posts.clone().replay(&post).is_some());
        assert!(posts.replay(&get).is_none());
        assert!(HttpReplay::default().replay(&get).is_some());
    }

    #[test]
    fn only_idempotent_or_marked_requests_with_in_memory_bodies_replay() {
        let replay = HttpReplay::default();
        let get = Request::get("http://h/x").body(Body::empty()).unwrap();
        assert!(replay.replay(&get).is_some());
        let post = Request::post("http://h/x").body(Body::full("a")).unwrap();
        assert!(replay.replay(&post).is_none());
        let mut marked = Request::post("http://h/x").body(Body::full("a")).unwrap();
        marked.extensions_mut().insert(Retryable(true));
        let copy = replay.replay(&marked).expect("marked retryable");
        assert_eq!(copy.body().as_bytes(), Some(&b"a"[..]));
        let stream = Request::put("http://h/x")
            .body(Body::stream(http_body_util::Empty::new()))
            .unwrap();
        assert!(replay.replay(&stream).is_none());
    }
}
