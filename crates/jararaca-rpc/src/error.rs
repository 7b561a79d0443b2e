//! [`RpcError`]: why a call did not give the answer it was asked for.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::{BoxError, RpcResponse};

/// Why a call failed.
///
/// `E` is the client's own error type, built by the mappers given to
/// [`RestRequest::on_status`](crate::RestRequest::on_status) and
/// [`RestClient::on_status`](crate::RestClient::on_status).
#[derive(Debug)]
#[non_exhaustive]
pub enum RpcError<E = Infallible> {
    /// The request could not be built (a missing path value, an invalid header or URL).
    Build(String),
    /// The request or its response did not get through: connection refused or reset, DNS,
    /// TLS, a body that could not be read.
    Network {
        /// The URL called.
        url: String,
        /// The underlying error.
        source: BoxError,
    },
    /// The call took longer than its timeout.
    Timeout {
        /// The URL called.
        url: String,
    },
    /// The status is not a success for the route and no mapper claimed it.
    Status(Box<RpcResponse>),
    /// The body of a successful response is not what the route returns.
    Decode {
        /// The response.
        response: Box<RpcResponse>,
        /// What did not decode.
        source: serde_json::Error,
    },
    /// A mapper turned the response into the client's error.
    Mapped(E),
}

impl<E> RpcError<E> {
    /// The status of the response, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status(response) | Self::Decode { response, .. } => Some(response.status()),
            _ => None,
        }
    }

    /// The client's error, when a mapper made one.
    pub fn into_mapped(self) -> Option<E> {
        match self {
            Self::Mapped(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// Sorts an error of the client stack: a [`TimeoutError`] anywhere in its chain is a
    /// timeout, anything else a network error.
    pub(crate) fn from_stack(url: String, error: BoxError) -> Self {
        let mut cause: Option<&(dyn StdError + 'static)> = Some(&*error);
        while let Some(e) = cause {
            if e.is::<TimeoutError>() {
                return Self::Timeout { url };
            }
            cause = e.source();
        }
        Self::Network { url, source: error }
    }
}

impl<E: fmt::Display> fmt::Display for RpcError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(message) => write!(f, "invalid request: {message}"),
            Self::Network { url, source } => write!(f, "calling {url} failed: {source}"),
            Self::Timeout { url } => write!(f, "calling {url} timed out"),
            Self::Status(r) => write!(f, "{} {} answered {}", r.method, r.url, r.status),
            Self::Decode {
                response: r,
                source,
            } => write!(
                f,
                "the {} answer of {} {} does not decode: {source}",
                r.status, r.method, r.url
            ),
            Self::Mapped(e) => e.fmt(f),
        }
    }
}

impl<E: StdError + 'static> StdError for RpcError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Network { source, .. } => Some(&**source),
            Self::Decode { source, .. } => Some(source),
            Self::Mapped(e) => Some(e),
            _ => None,
        }
    }
}

/// The error of [`TimeoutLayer`](crate::TimeoutLayer): the call took longer than `after`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no response within {after:?}")]
pub struct TimeoutError {
    /// The timeout that ran out.
    pub after: Duration,
}
