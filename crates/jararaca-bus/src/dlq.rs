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
    /// Its AMQP content type.
    pub content_type: Option<String>,
    /// Its AMQP content encoding.
    pub content_encoding: Option<String>,
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
    /// Messages left in the dead-letter queue because the queue they died in no longer
    /// exists (the broker returned the copy).
    pub unroutable: u32,
}

struct Session {
    connection: Connection,
    channel: Channel,
    /// Messages in the queue when the session opened: no more are read, so messages that
    /// die again while the session runs are not read twice.
    count: u32,
    read: u32,
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
        read: 0,
    })
}

impl Session {
    /// The next message, in queue order; it stays unacknowledged, so it is read once.
    /// Messages are handed over one at a time, so a large queue is never held in memory.
    async fn next(&mut self, url: &BrokerUrl) -> Result<Option<(u64, DeadMessage)>, BusError> {
        if self.read >= self.count {
            return Ok(None);
        }
        let Some(message) = self
            .channel
            .basic_get(
                ShortString::from(url.dead_letter.queue.as_str()),
                BasicGetOptions::default(),
            )
            .await
            .map_err(BusError::amqp("reading the dead-letter queue"))?
        else {
            return Ok(None);
        };
        self.read += 1;
        let delivery = message.delivery;
        let properties = &delivery.properties;
        let headers = properties
            .headers()
            .as_ref()
            .map(crate::headers::amqp::from_table)
            .unwrap_or_default();
        let text = |name: &str| match headers.get(name) {
            Some(HeaderValue::String(s)) => Some(s.clone()),
            _ => None,
        };
        let short = |value: &Option<ShortString>| value.as_ref().map(|s| s.to_string());
        let dead = DeadMessage {
            queue: death_queue(&headers).map(str::to_string),
            reason: text(DEAD_LETTER_REASON),
            last_error: text(LAST_ERROR),
            retry_count: retry_count(&headers),
            message_id: short(properties.message_id()),
            content_type: short(properties.content_type()),
            content_encoding: short(properties.content_encoding()),
            body: delivery.data,
            headers,
        };
        Ok(Some((delivery.delivery_tag, dead)))
    }

    async fn close(self) {
        // Unacknowledged messages go back to the dead-letter queue, in order.
        crate::amqp::close(&self.connection, &[self.channel], "done").await;
    }
}

/// Whether `message` died in a queue whose name contains `filter`, ignoring case (as the
/// reference's `--queue`).
fn matches(filter: Option<&str>, message: &DeadMessage) -> bool {
    filter.is_none_or(|f| {
        message
            .queue
            .as_deref()
            .is_some_and(|q| q.to_lowercase().contains(&f.to_lowercase()))
    })
}

/// Counts the dead-letter queue's messages, by the queue they died in.
pub async fn dlq_stats(url: &BrokerUrl) -> Result<DlqStats, BusError> {
    let mut session = open(url).await?;
    let mut stats = DlqStats::default();
    let result = loop {
        match session.next(url).await {
            Ok(Some((_, message))) => {
                stats.total += 1;
                *stats
                    .by_queue
                    .entry(message.queue.unwrap_or_else(|| "(unknown)".to_string()))
                    .or_default() += 1;
            }
            Ok(None) => break Ok(stats),
            Err(error) => break Err(error),
        }
    };
    session.close().await;
    result
}

/// Lists up to `limit` messages, only those that died in a queue whose name contains
/// `queue_filter` (ignoring case) when given. Nothing is removed.
pub async fn dlq_list(
    url: &BrokerUrl,
    limit: u32,
    queue_filter: Option<&str>,
) -> Result<Vec<DeadMessage>, BusError> {
    let mut session = open(url).await?;
    let mut found = Vec::new();
    let result = loop {
        if found.len() >= limit as usize {
            break Ok(found);
        }
        match session.next(url).await {
            Ok(Some((_, message))) => {
                if matches(queue_filter, &message) {
                    found.push(message);
                }
            }
            Ok(None) => break Ok(found),
            Err(error) => break Err(error),
        }
    };
    session.close().await;
    result
}

/// Puts up to `limit` messages back on the queue each died in (read from `x-death`),
/// through the default exchange, with a fresh retry budget and `x-requeued-from-dlq: true`.
/// Only those that died in a queue whose name contains `queue_filter` (ignoring case), when
/// given. A message leaves the dead-letter queue only after the broker confirmed its copy;
/// one whose queue is gone stays (counted in [`RequeueReport::unroutable`]).
pub async fn dlq_requeue(
    url: &BrokerUrl,
    limit: u32,
    queue_filter: Option<&str>,
) -> Result<RequeueReport, BusError> {
    let mut session = open(url).await?;
    let publish = session
        .connection
        .create_channel()
        .await
        .map_err(BusError::amqp("opening a channel"))?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(BusError::amqp("enabling publisher confirms"))?;
    let result = requeue(&mut session, &publish, url, limit, queue_filter).await;
    session.close().await;
    result
}

async fn requeue(
    session: &mut Session,
    publish: &Channel,
    url: &BrokerUrl,
    limit: u32,
    queue_filter: Option<&str>,
) -> Result<RequeueReport, BusError> {
    let mut report = RequeueReport::default();
    while report.requeued < limit {
        let Some((tag, message)) = session.next(url).await? else {
            break;
        };
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
            content_type: message.content_type,
            content_encoding: message.content_encoding,
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
                tracing::warn!(%queue, "the queue a dead letter died in no longer exists; leaving it in the dead-letter queue");
                report.unroutable += 1;
                continue;
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
