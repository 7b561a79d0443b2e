//! The `Envelope` every unit of work implements, so one layer can wrap them all.

use std::borrow::Cow;

use http::Extensions;

/// What kind of work a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnitKind {
    /// An HTTP request.
    Http,
    /// A WebSocket connection.
    WebSocket,
    /// A message delivered from the bus.
    Message,
    /// A tick of a scheduled action.
    Scheduled,
}

impl UnitKind {
    /// The lower-case name used in logs and spans: `http`, `websocket`, `message`, `scheduled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::WebSocket => "websocket",
            Self::Message => "message",
            Self::Scheduled => "scheduled",
        }
    }
}

/// A unit of work as a request type: an HTTP request, a bus delivery, a cron tick, a WebSocket
/// session.
///
/// Interceptors are tower layers generic over `R: Envelope`, so a single layer wraps HTTP
/// routes, message handlers and scheduled actions alike. Request-scoped values travel in the
/// [`Extensions`]; headers (HTTP headers, AMQP headers) carry trace context and the like.
pub trait Envelope: Send + 'static {
    /// What kind of unit this is.
    fn kind(&self) -> UnitKind;

    /// Values attached to this unit by layers (the DI scope, the unit of work, …).
    fn extensions(&self) -> &Extensions;

    /// Mutable access to the unit's extensions.
    fn extensions_mut(&mut self) -> &mut Extensions;

    /// A header of the unit as text, if present and representable as text. Names are matched
    /// case-insensitively for HTTP and exactly for AMQP, as each protocol defines.
    fn header(&self, name: &str) -> Option<Cow<'_, str>>;
}

impl<B: Send + 'static> Envelope for http::Request<B> {
    fn kind(&self) -> UnitKind {
        let upgrade = self.headers().get(http::header::UPGRADE);
        if upgrade.is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket")) {
            UnitKind::WebSocket
        } else {
            UnitKind::Http
        }
    }

    fn extensions(&self) -> &Extensions {
        self.extensions()
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        self.extensions_mut()
    }

    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_requests_are_envelopes() {
        let req = http::Request::builder()
            .header("Traceparent", "00-abc-def-01")
            .body(())
            .unwrap();
        assert_eq!(Envelope::kind(&req), UnitKind::Http);
        assert_eq!(
            Envelope::header(&req, "traceparent").as_deref(),
            Some("00-abc-def-01")
        );
        assert_eq!(Envelope::header(&req, "missing"), None);

        let ws = http::Request::builder()
            .header("upgrade", "WebSocket")
            .body(())
            .unwrap();
        assert_eq!(Envelope::kind(&ws), UnitKind::WebSocket);
    }
}
