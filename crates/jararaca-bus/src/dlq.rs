//! Dead-letter queue tools: stats, list, requeue, purge — reading every message once, and
//! requeueing each to the queue it died in.
//!
//! Messages are read with `basic.get` and left unacknowledged while the tool runs, so each
//! is seen exactly once; closing the channel puts back every message not requeued.

use std::collections::BTreeMap;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Confirmation, Connection};

use crate::amqp::{connect_with_retry, properties};
use crate::headers::{
    DEAD_LETTER_REASON, HeaderValue, Headers, LAST_ERROR, REQUEUED_FROM_DLQ, RETRY_COUNT,
    death_queue, retry_count,
};
use crate::{BrokerUrl, BusError, Outgoing, Route};

/// Counts of the dead-letter queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DlqStats {
    /// Messages in it.
    pub total: u32,
    /// Messages by the queue they died in (`(unknown)` when no header says).
    pub by_queue: BTreeMap<String, u32>,
}

/// A message in the dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadMessage {
    /// The queue it died in.
    pub queue: Option<String>,
    /// Why the worker dead-lettered it, if it did.
    pub reason: Option<String>,
    /// The last handler error.
    pub last_error: Option<String>,
    /// How many times it was retried.
    pub retry_count: u32,
    /// Its message id.
    pub message_id: Option<String>,
    /// All its headers.
    pub headers: Headers,
    /// Its body.
    pub body: Vec<u8>,
}

/// What a requeue did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequeueReport {
    /// Messages put back on their queues.
    pub requeued: u32,
    /// Messages left in the dead-letter queue because no header names their queue.
    pub skipped: u32,
}

struct Session {
    connection: Connection,
    channel: Channel,
    count: u32,
}

async fn open(url: &BrokerUrl) -> Result<Session, BusError> {
    let connection = connect_with_retry(url, "jararaca dlq").await?;
    let channel = connection
        .create_channel()
        .await
        .map_err(BusError::amqp("opening a channel"))?;
    let queue = channel
        .queue_declare(
            ShortString::from(url.dead_letter.queue.as_str()),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|source| BusError::MissingTopology {
            name: url.dead_letter.queue.clone(),
            detail: source.to_string(),
        })?;
    Ok(Session {
        connection,
        channel,
        count: queue.message_count(),
    })
}

impl Session {
    /// Reads up to `limit` messages, each once; they stay unacknowledged.
    async fn read(&self, url: &BrokerUrl, limit: u32) -> Result<Vec<(u64, DeadMessage)>, BusError> {
        let mut out = Vec::new();
        while (out.len() as u32) < limit.min(self.count) {
            let Some(message) = self
                .channel
                .basic_get(
                    ShortString::from(url.dead_letter.queue.as_str()),
                    BasicGetOptions::default(),
                )
                .await
                .map_err(BusError::amqp("reading the dead-letter queue"))?
            else {
                break;
            };
            let delivery = message.delivery;
            let headers = delivery
                .properties
                .headers()
                .as_ref()
                .map(crate::headers::amqp::from_table)
                .unwrap_or_default();
            let text = |name: &str| match headers.get(name) {
                Some(HeaderValue::String(s)) => Some(s.clone()),
                _ => None,
            };
            let dead = DeadMessage {
                queue: death_queue(&headers).map(str::to_string),
                reason: text(DEAD_LETTER_REASON),
                last_error: text(LAST_ERROR),
                retry_count: retry_count(&headers),
                message_id: delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string()),
                body: delivery.data,
                headers,
            };
            out.push((delivery.delivery_tag, dead));
        }
        Ok(out)
    }

    async fn close(self) {
        // Unacknowledged messages go back to the dead-letter queue, in order.
        let limit = std::time::Duration::from_secs(5);
        let _ = tokio::time::timeout(limit, self.channel.close(200, "done".into())).await;
        let _ = tokio::time::timeout(limit, self.connection.close(200, "done".into())).await;
    }
}

fn matches(filter: Option<&str>, message: &DeadMessage) -> bool {
    filter.is_none_or(|f| message.queue.as_deref().is_some_and(|q| q.contains(f)))
}

/// Counts the dead-letter queue's messages, by the queue they died in.
pub async fn dlq_stats(url: &BrokerUrl) -> Result<DlqStats, BusError> {
    let session = open(url).await?;
    let result = session.read(url, u32::MAX).await;
    session.close().await;
    let mut stats = DlqStats::default();
    for (_, message) in result? {
        stats.total += 1;
        *stats
            .by_queue
            .entry(message.queue.unwrap_or_else(|| "(unknown)".to_string()))
            .or_default() += 1;
    }
    Ok(stats)
}

/// Lists up to `limit` messages, only those that died in a queue whose name contains
/// `queue_filter` when given. Nothing is removed.
pub async fn dlq_list(
    url: &BrokerUrl,
    limit: u32,
    queue_filter: Option<&str>,
) -> Result<Vec<DeadMessage>, BusError> {
    let session = open(url).await?;
    let result = session.read(url, u32::MAX).await;
    session.close().await;
    Ok(result?
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| matches(queue_filter, m))
        .take(limit as usize)
        .collect())
}

/// Puts up to `limit` messages back on the queue each died in (read from `x-death`),
/// through the default exchange, with a fresh retry budget and `x-requeued-from-dlq: true`.
/// Only those that died in a queue whose name contains `queue_filter`, when given. A message
/// leaves the dead-letter queue only after the broker confirmed its copy.
pub async fn dlq_requeue(
    url: &BrokerUrl,
    limit: u32,
    queue_filter: Option<&str>,
) -> Result<RequeueReport, BusError> {
    let session = open(url).await?;
    let publish = session
        .connection
        .create_channel()
        .await
        .map_err(BusError::amqp("opening a channel"))?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(BusError::amqp("enabling publisher confirms"))?;
    let result = requeue(&session, &publish, url, limit, queue_filter).await;
    session.close().await;
    result
}

async fn requeue(
    session: &Session,
    publish: &Channel,
    url: &BrokerUrl,
    limit: u32,
    queue_filter: Option<&str>,
) -> Result<RequeueReport, BusError> {
    let mut report = RequeueReport::default();
    for (tag, message) in session.read(url, u32::MAX).await? {
        if report.requeued >= limit {
            break;
        }
        if !matches(queue_filter, &message) {
            continue;
        }
        let Some(queue) = message.queue.clone() else {
            report.skipped += 1;
            continue;
        };
        let mut headers = message.headers;
        headers.retain(|name, _| {
            name != "x-death"
                && name != RETRY_COUNT
                && !name.starts_with("x-first-death-")
                && !name.starts_with("x-last-death-")
        });
        headers.insert(REQUEUED_FROM_DLQ.to_string(), HeaderValue::Bool(true));
        let copy = Outgoing {
            route: Route::Queue(queue.clone()),
            body: message.body,
            headers,
            message_id: message.message_id,
            content_type: None,
            content_encoding: None,
            mandatory: true,
            persistent: true,
        };
        let confirm = publish
            .basic_publish(
                ShortString::from(""),
                ShortString::from(queue.as_str()),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &copy.body,
                properties(&copy),
            )
            .await
            .map_err(BusError::amqp("requeueing"))?
            .await
            .map_err(BusError::amqp("awaiting a publisher confirm"))?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
            Confirmation::Ack(Some(_)) => {
                return Err(BusError::Unroutable {
                    exchange: String::new(),
                    routing_key: queue,
                });
            }
            Confirmation::Nack(_) => return Err(BusError::Refused { routing_key: queue }),
        }
        session
            .channel
            .basic_ack(tag, BasicAckOptions::default())
            .await
            .map_err(BusError::amqp("removing a requeued message"))?;
        report.requeued += 1;
    }
    Ok(report)
}

/// Empties the dead-letter queue; returns how many messages it held.
pub async fn dlq_purge(url: &BrokerUrl) -> Result<u32, BusError> {
    let session = open(url).await?;
    let purged = session
        .channel
        .queue_purge(
            ShortString::from(url.dead_letter.queue.as_str()),
            QueuePurgeOptions::default(),
        )
        .await
        .map_err(BusError::amqp("purging the dead-letter queue"));
    session.close().await;
    purged
}
