//! [`CacheLayer`]: an in-memory cache of successful `GET` responses.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::BoxFuture;
use crate::{Body, BoxError};

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    method: Method,
    url: String,
    vary: Vec<Option<HeaderValue>>,
}

struct Entry {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
    stored: Instant,
}

struct Store {
    ttl: Duration,
    capacity: usize,
    vary: Vec<HeaderName>,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // Nothing panics while holding the lock, but a poisoned map is still a sound cache.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps successful (2xx) `GET` responses for a time-to-live, in a map of bounded size.
///
/// The key is the method, the full URL (query included) and the values of the headers that vary
/// the answer (by default `Authorization`, `X-API-Key`, `Accept` and `Accept-Language`; put the
/// auth layer outside the cache so its header is part of the key). Errors and responses marked
/// `Cache-Control: no-store` are never kept. When the map is full, expired entries go first,
/// then the oldest. A hit is answered without calling the inner service; the response body is
/// read into memory on a miss.
#[derive(Clone)]
pub struct CacheLayer {
    store: Arc<Store>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("ttl", &self.store.ttl)
            .field("capacity", &self.store.capacity)
            .field("vary", &self.store.vary)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// A cache keeping up to `capacity` responses for `ttl` each.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self::with_vary(
            ttl,
            capacity,
            [
                AUTHORIZATION,
                HeaderName::from_static("x-api-key"),
                http::header::ACCEPT,
                http::header::ACCEPT_LANGUAGE,
            ],
        )
    }

    /// A cache whose key includes exactly the headers `vary`.
    pub fn with_vary(
        ttl: Duration,
        capacity: usize,
        vary: impl IntoIterator<Item = HeaderName>,
    ) -> Self {
        Self {
            store: Arc::new(Store {
                ttl,
                capacity,
                vary: vary.into_iter().collect(),
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many responses are kept now (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.store.lock().len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every response.
    pub fn clear(&self) {
        self.store.lock().clear();
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            store: Arc::clone(&self.store),
        }
    }
}

/// The service of [`CacheLayer`].
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    store: Arc<Store>,
}

impl<S: fmt::Debug> fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn response_of(entry: &Entry) -> Response<Body> {
    let mut response = Response::new(Body::full(entry.body.clone()));
    *response.status_mut() = entry.status;
    *response.version_mut() = entry.version;
    *response.headers_mut() = entry.headers.clone();
    response
}

fn no_store(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
        })
    })
}

impl<S, B> Service<Request<Body>> for Cache<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    // A miss reads the whole body before storing it: one boxed future for the awaits.
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if request.method() != Method::GET {
            let future = inner.call(request);
            return Box::pin(async move {
                let response = future.await.map_err(Into::into)?;
                Ok(response.map(Body::stream_of))
            });
        }
        let key = Key {
            method: Method::GET,
            url: request.uri().to_string(),
            vary: self
                .store
                .vary
                .iter()
                .map(|name| request.headers().get(name).cloned())
                .collect(),
        };
        let now = Instant::now();
        if let Some(entry) = self.store.lock().get(&key)
            && now.duration_since(entry.stored) < self.store.ttl
        {
            let response = response_of(entry);
            return Box::pin(async move { Ok(response) });
        }
        let store = Arc::clone(&self.store);
        let future = inner.call(request);
        Box::pin(async move {
            let response = future.await.map_err(Into::into)?;
            if !response.status().is_success() || no_store(response.headers()) {
                return Ok(response.map(Body::stream_of));
            }
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let entry = Entry {
                status: parts.status,
                version: parts.version,
                headers: parts.headers,
                body,
                stored: Instant::now(),
            };
            let response = response_of(&entry);
            let mut entries = store.lock();
            if entries.len() >= store.capacity && !entries.contains_key(&key) {
                let now = Instant::now();
                entries.retain(|_, e| now.duration_since(e.stored) < store.ttl);
                if entries.len() >= store.capacity
                    && let Some(oldest) = entries
                        .iter()
                        .min_by_key(|(_, e)| e.stored)
                        .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
            if store.capacity > 0 {
                entries.insert(key, entry);
            }
            Ok(response)
        })
    }
}
