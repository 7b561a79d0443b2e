//! [`Body`]: the request body every layer of the client stack sees.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::BoxError;

/// A request (or cached response) body: bytes held in memory, which can be sent again, or a
/// stream, which cannot.
///
/// [`RestRequest`](crate::RestRequest) always builds in-memory bodies, so retries and the token
/// refresh can replay them; a hand-built `http::Request` with a [`Body::stream`] is sent once.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
        }
    }

    /// A body of `bytes`, held in memory.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// A streaming body; it cannot be replayed.
    pub fn stream<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            kind: Kind::Stream(body.map_err(Into::into).boxed_unsync()),
        }
    }

    /// A response body of any type, as a stream (the cache's pass-through answers).
    pub(crate) fn stream_of<B>(body: B) -> Self
    where
        B: http_body::Body + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::stream(body.map_frame(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))))
    }

    /// The bytes of an in-memory body (empty for [`Body::empty`]); `None` for a stream.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Full(bytes) => Some(bytes.as_deref().unwrap_or_default()),
            Kind::Stream(_) => None,
        }
    }

    /// A copy of an in-memory body that has not been sent yet; `None` for a stream.
    pub fn try_clone(&self) -> Option<Self> {
        match &self.kind {
            Kind::Full(bytes) => Some(Self {
                kind: Kind::Full(bytes.clone()),
            }),
            Kind::Stream(_) => None,
        }
    }
}

/// A copy of `request` with the same method, URI, version, headers and body, when its body is
/// in memory. Extensions are not copied (they need not be `Clone`), except the client stack's
/// own route settings.
pub fn try_clone_request(request: &http::Request<Body>) -> Option<http::Request<Body>> {
    let body = request.body().try_clone()?;
    let mut copy = http::Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    crate::route::copy_route_extensions(request.extensions(), copy.extensions_mut());
    Some(copy)
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Self::full(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Self::full(text)
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Self::full(Bytes::from_static(text.as_bytes()))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => f
                .debug_struct("Body")
                .field("len", &bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream(_) => f.write_str("Body(stream)"),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_bodies_replay_and_streams_do_not() {
        let body = Body::full("hello");
        let copy = body.try_clone().expect("in memory");
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(copy.as_bytes(), Some(&b"hello"[..]));
        assert_eq!(http_body::Body::size_hint(&copy).exact(), Some(5));

        let stream = Body::stream(http_body_util::Full::new(Bytes::from("x")));
        assert!(stream.try_clone().is_none());
        assert!(stream.as_bytes().is_none());
        assert_eq!(stream.collect().await.unwrap().to_bytes(), "x");
    }
}
