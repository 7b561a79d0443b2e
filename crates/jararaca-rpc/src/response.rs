//! [`RpcResponse`]: a whole response, read into memory.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::de::DeserializeOwned;

/// A response with its body read, and the request it answers.
#[derive(Debug, Clone)]
pub struct RpcResponse {
    pub(crate) method: Method,
    pub(crate) url: Uri,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) elapsed: Duration,
}

impl RpcResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body, taken.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The method of the request.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL of the request.
    pub fn url(&self) -> &Uri {
        &self.url
    }

    /// How long the call took, from sending to the end of the body.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}
