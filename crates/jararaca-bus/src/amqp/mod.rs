//! RabbitMQ through lapin: connecting, the publisher, and the wire properties.

mod publisher;

use std::io;
use std::time::Duration;

use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind};

pub use self::publisher::AmqpPublisher;
use crate::headers::amqp::to_table;
use crate::url::redact;
use crate::{BrokerUrl, BusError, Outgoing, Route};

/// How long connecting waits after an `ACCESS_REFUSED` before it tries again: the same
/// credentials fail the same way, and a broker that locks accounts out should not be
/// hammered.
pub const ACCESS_REFUSED_RETRY: Duration = Duration::from_secs(30);

/// How long one connection attempt (TCP, TLS and the AMQP handshake) may take: a broker
/// that accepts connections but does not answer counts as unreachable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens one connection (no retry; callers own the retry loop, lapin's auto-recovery stays
/// off). A refused login is [`BusError::AccessRefused`].
pub(crate) async fn connect(url: &BrokerUrl, name: &str) -> Result<Connection, BusError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let attempt = Connection::connect(&url.connection_url, properties);
    let source = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(connection)) => return Ok(connection),
        Ok(Err(source)) => source,
        Err(_) => lapin::Error::from(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the broker did not complete the handshake within {CONNECT_TIMEOUT:?}"),
        )),
    };
    tracing::debug!(url = %redact(&url.connection_url), %source, "connecting to RabbitMQ failed");
    Err(match soft_error(&source) {
        Some((AMQPSoftError::ACCESSREFUSED, detail)) => BusError::AccessRefused { detail },
        _ => BusError::Amqp {
            operation: "connect",
            source,
        },
    })
}

/// How long a clean close waits for the broker to confirm it.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes `channels`, then `connection`, each waiting up to [`CLOSE_TIMEOUT`] for the
/// broker. Closing a channel explicitly first matters: a channel left to be closed by its
/// drop races the connection's close, and lapin logs the lost race as a connection error.
/// Unacknowledged deliveries return to their queues either way.
pub(crate) async fn close(connection: &Connection, channels: &[Channel], reason: &str) {
    let closes = channels
        .iter()
        .map(|channel| tokio::time::timeout(CLOSE_TIMEOUT, channel.close(200, reason.into())));
    futures_util::future::join_all(closes).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, reason.into())).await;
}

/// Connects, retrying with the URL's connection retry policy; a refused login is returned at
/// once (retrying it would only fail again).
pub(crate) async fn connect_with_retry(
    url: &BrokerUrl,
    name: &str,
) -> Result<Connection, BusError> {
    url.connection_retry
        .retry_if(
            || connect(url, name),
            |error| !matches!(error, BusError::AccessRefused { .. }),
        )
        .await
}

/// The exchange and routing key an [`Outgoing`] is published with.
pub(crate) fn destination<'a>(url: &'a BrokerUrl, message: &'a Outgoing) -> (&'a str, &'a str) {
    match &message.route {
        Route::Main(key) => (url.exchange.as_str(), key.as_str()),
        Route::Queue(queue) => ("", queue.as_str()),
        Route::DeadLetter => (
            url.dead_letter.exchange.as_str(),
            url.dead_letter.routing_key.as_str(),
        ),
    }
}

/// The AMQP properties of an [`Outgoing`]: the reference's `delivery_mode`, `priority` 0,
/// message id, headers, plus content type/encoding when set.
pub(crate) fn properties(message: &Outgoing) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_delivery_mode(if message.persistent { 2 } else { 1 })
        .with_priority(0);
    if let Some(id) = &message.message_id {
        properties = properties.with_message_id(ShortString::from(id.as_str()));
    }
    if let Some(ct) = &message.content_type {
        properties = properties.with_content_type(ShortString::from(ct.as_str()));
    }
    if let Some(ce) = &message.content_encoding {
        properties = properties.with_content_encoding(ShortString::from(ce.as_str()));
    }
    if !message.headers.is_empty() {
        properties = properties.with_headers(to_table(&message.headers));
    }
    properties
}

/// The broker's soft error of a failed operation, if that is what it was.
pub(crate) fn soft_error(error: &lapin::Error) -> Option<(AMQPSoftError, String)> {
    match error.kind() {
        ErrorKind::ProtocolError(e) => match e.kind() {
            AMQPErrorKind::Soft(soft) => Some((soft.clone(), e.get_message().to_string())),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}
