//! The RabbitMQ publisher: publisher confirms, mandatory tasks, and a reconnect that runs in
//! the background, so no publish waits behind it longer than its `publish_timeout`.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{Channel, Confirmation, Connection, PublisherConfirm};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{ACCESS_REFUSED_RETRY, close, connect, connect_with_retry, destination, properties};
use crate::{BrokerUrl, BusError, Outgoing, Publisher, new_message_id};

/// The name the publisher's connections carry on the broker.
const CONNECTION_NAME: &str = "jararaca publisher";

/// How many times a batch is sent again on a fresh connection after the previous one was
/// lost with messages still unconfirmed.
const RESEND_ROUNDS: usize = 2;

/// Publishes to RabbitMQ with publisher confirms: `publish` resolves when the broker has
/// the message, fails with [`BusError::Unroutable`] when a mandatory message (a task) found
/// no queue, and reconnects by itself when the connection was lost.
///
/// Reconnecting happens in one background task per publisher, with the URL's
/// `connection_retry_*` backoff (a publish that is waiting lets it try again once
/// `connection_retry_delay` has passed since its last attempt). A publish waits for a
/// connection at most [`publish_timeout`](Self::with_publish_timeout) (the URL's
/// `publish_timeout`, 5 s by default), then fails with [`BusError::NotConnected`]; so
/// publishers never queue behind a long backoff. A refused login
/// ([`BusError::AccessRefused`]) fails publishes at once, and connecting is not tried again
/// for [`ACCESS_REFUSED_RETRY`].
///
/// When a connection is lost in the middle of a batch, only the messages whose confirm had
/// not arrived are sent again (with their message ids; a message without one gets one
/// before it is first sent), so a confirmed message is never sent twice by the publisher. A
/// message that was on the wire when the connection died may reach its queue twice: consumers
/// deduplicate by message id.
pub struct AmqpPublisher {
    shared: Arc<Shared>,
    publish_timeout: Duration,
}

struct Shared {
    url: BrokerUrl,
    state: Mutex<State>,
    /// Bumped whenever `state` changes, for publishers waiting for a connection.
    changed: watch::Sender<u64>,
    /// Publishers waiting for a connection: lets the reconnect skip the rest of its backoff.
    demand: Arc<Notify>,
}

#[derive(Default)]
struct State {
    link: Option<Link>,
    links_made: u64,
    reconnecting: bool,
    /// Why the last attempt failed.
    last_error: Option<String>,
    /// A refused login, and until when connecting is not tried again.
    refused: Option<(Instant, String)>,
    /// When the last reconnect gave up, so the next one does not start at once.
    gave_up_at: Option<Instant>,
}

struct Link {
    id: u64,
    connection: Connection,
    channel: Channel,
}

impl fmt::Debug for AmqpPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpPublisher")
            .field("url", &self.shared.url)
            .field("publish_timeout", &self.publish_timeout)
            .finish_non_exhaustive()
    }
}

/// What one round of sending left to do.
struct Sent {
    /// Messages that may not have reached the broker: never confirmed, or never sent.
    lost: Vec<usize>,
    /// Why the first of them was lost.
    lost_error: Option<BusError>,
    /// The messages the broker answered with an error (unroutable, refused).
    failed: Vec<(usize, BusError)>,
}

impl AmqpPublisher {
    /// Connects now (retrying per the URL's `connection_retry_*`; a refused login fails at
    /// once), so a wrong URL fails at startup.
    pub async fn connect(url: &BrokerUrl) -> Result<Self, BusError> {
        let publisher = Self::lazy(url);
        let connection = connect_with_retry(url, CONNECTION_NAME).await?;
        let channel = confirm_channel(&connection).await?;
        publisher.shared.install(connection, channel, false);
        Ok(publisher)
    }

    /// Connects on the first publish.
    pub fn lazy(url: &BrokerUrl) -> Self {
        Self {
            publish_timeout: url.publish_timeout,
            shared: Arc::new(Shared {
                url: url.clone(),
                state: Mutex::new(State::default()),
                changed: watch::Sender::new(0),
                demand: Arc::new(Notify::new()),
            }),
        }
    }

    /// How long a publish waits for a connection before it fails with
    /// [`BusError::NotConnected`] (the URL's `publish_timeout` otherwise).
    #[must_use]
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// Closes the connection (it is reopened by the next publish).
    pub async fn close(&self) {
        let link = self.shared.lock().link.take();
        if let Some(link) = link {
            close(&link.connection, &[link.channel], "bye").await;
        }
    }

    /// The open channel, waiting up to the publish timeout while the background reconnect
    /// runs (and starting it if none does).
    async fn channel(&self) -> Result<(u64, Channel), BusError> {
        let deadline = Instant::now() + self.publish_timeout;
        // Subscribed before looking, so a change made after the look wakes this publish.
        let mut changes = self.shared.changed.subscribe();
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(link) = state.link.as_ref() {
                    if link.channel.status().connected() {
                        return Ok((link.id, link.channel.clone()));
                    }
                    if let Some(dead) = state.link.take() {
                        close_later(dead);
                    }
                }
                if let Some((until, detail)) = &state.refused
                    && Instant::now() < *until
                {
                    return Err(BusError::AccessRefused {
                        detail: detail.clone(),
                    });
                }
                if !state.reconnecting {
                    state.reconnecting = true;
                    let not_before = state
                        .gave_up_at
                        .map(|at| at + self.shared.url.connection_retry.initial_delay);
                    tokio::spawn(reconnect(Arc::downgrade(&self.shared), not_before));
                }
            }
            self.shared.demand.notify_one();
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let last_error =
                    self.shared.lock().last_error.clone().unwrap_or_else(|| {
                        "the first connection attempt is still under way".into()
                    });
                return Err(BusError::NotConnected {
                    waited: self.publish_timeout,
                    last_error,
                });
            }
        }
    }

    async fn start(
        &self,
        channel: &Channel,
        message: &Outgoing,
    ) -> Result<PublisherConfirm, BusError> {
        let (exchange, routing_key) = destination(&self.shared.url, message);
        channel
            .basic_publish(
                ShortString::from(exchange),
                ShortString::from(routing_key),
                BasicPublishOptions {
                    mandatory: message.mandatory,
                    ..BasicPublishOptions::default()
                },
                &message.body,
                properties(message),
            )
            .await
            .map_err(BusError::amqp("publishing"))
    }

    /// Publishes `pending` (indices into `messages`, in order), then awaits their confirms.
    async fn send(&self, channel: &Channel, messages: &[Outgoing], pending: &[usize]) -> Sent {
        let mut sent = Sent {
            lost: Vec::new(),
            lost_error: None,
            failed: Vec::new(),
        };
        let mut confirms = Vec::with_capacity(pending.len());
        for (position, &index) in pending.iter().enumerate() {
            match self.start(channel, &messages[index]).await {
                Ok(confirm) => confirms.push((index, confirm)),
                Err(error) => {
                    sent.lost.extend_from_slice(&pending[position..]);
                    sent.lost_error = Some(error);
                    break;
                }
            }
        }
        for (index, confirm) in confirms {
            let (exchange, routing_key) = destination(&self.shared.url, &messages[index]);
            match confirm.await {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {}
                Ok(Confirmation::Ack(Some(_))) => {
                    sent.failed.push((
                        index,
                        BusError::Unroutable {
                            exchange: exchange.to_string(),
                            routing_key: routing_key.to_string(),
                        },
                    ));
                }
                Ok(Confirmation::Nack(_)) => {
                    sent.failed.push((
                        index,
                        BusError::Refused {
                            routing_key: routing_key.to_string(),
                        },
                    ));
                }
                Err(source) => {
                    sent.lost.push(index);
                    sent.lost_error.get_or_insert(BusError::Amqp {
                        operation: "awaiting a publisher confirm",
                        source,
                    });
                }
            }
        }
        sent.lost.sort_unstable();
        sent
    }

    /// Sends `messages` in order; after a lost connection, sends again on a fresh one only
    /// those whose confirm never came. Returns the first error the broker answered with
    /// (unroutable, refused) once every message was answered.
    async fn publish_batch(&self, messages: Vec<Outgoing>) -> Result<(), BusError> {
        self.publish_batch_each(messages)
            .await
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }

    /// Like [`publish_batch`](Self::publish_batch), with the outcome of each message: `Ok`
    /// exactly for those the broker confirmed.
    async fn publish_batch_each(&self, mut messages: Vec<Outgoing>) -> Vec<Result<(), BusError>> {
        let mut results: Vec<Option<Result<(), BusError>>> = std::iter::repeat_with(|| None)
            .take(messages.len())
            .collect();
        // A re-sent message must be recognisable as the same one.
        for message in &mut messages {
            message.message_id.get_or_insert_with(new_message_id);
        }
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let mut round = 0;
        while !pending.is_empty() {
            let (link, channel) = match self.channel().await {
                Ok(open) => open,
                Err(error) => return fill(results, error),
            };
            let sent = self.send(&channel, &messages, &pending).await;
            for index in &pending {
                if !sent.lost.contains(index) {
                    results[*index] = Some(Ok(()));
                }
            }
            for (index, error) in sent.failed {
                results[index] = Some(Err(error));
            }
            let Some(lost_error) = sent.lost_error else {
                break;
            };
            // The channel failed under these messages: replace it, whatever the cause.
            self.shared.invalidate(link);
            if round == RESEND_ROUNDS {
                return fill(results, lost_error);
            }
            round += 1;
            tracing::warn!(
                error = %lost_error,
                unconfirmed = sent.lost.len(),
                batch = messages.len(),
                "the connection to RabbitMQ failed while publishing; sending the unconfirmed messages again"
            );
            pending = sent.lost;
        }
        fill(
            results,
            BusError::Config("unreachable: every message was answered".into()),
        )
    }

    async fn ready_check(&self) -> Result<(), BusError> {
        {
            let state = self.shared.lock();
            if let Some(link) = &state.link
                && link.channel.status().connected()
            {
                return Ok(());
            }
            if let Some((until, detail)) = &state.refused
                && Instant::now() < *until
            {
                return Err(BusError::AccessRefused {
                    detail: detail.clone(),
                });
            }
        }
        let (connection, channel) = open_link(&self.shared.url).await?;
        self.shared.install(connection, channel, false);
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Makes `connection` the publisher's, unless a live one is in place already;
    /// `reconnected` when the background reconnect made it (and so ends).
    fn install(&self, connection: Connection, channel: Channel, reconnected: bool) {
        {
            let mut state = self.lock();
            if reconnected {
                state.reconnecting = false;
            }
            if let Some(link) = &state.link
                && link.channel.status().connected()
            {
                close_connection_later(connection);
            } else {
                state.links_made += 1;
                let id = state.links_made;
                if let Some(old) = state.link.replace(Link {
                    id,
                    connection,
                    channel,
                }) {
                    close_later(old);
                }
                state.last_error = None;
                state.refused = None;
            }
        }
        self.notify();
    }

    /// Drops link `id` if it is still the current one: a publish found it broken.
    fn invalidate(&self, id: u64) {
        let mut state = self.lock();
        if state.link.as_ref().is_some_and(|link| link.id == id)
            && let Some(link) = state.link.take()
        {
            close_later(link);
        }
    }
}

/// Connects and opens a channel with publisher confirms.
async fn open_link(url: &BrokerUrl) -> Result<(Connection, Channel), BusError> {
    let connection = connect(url, CONNECTION_NAME).await?;
    match confirm_channel(&connection).await {
        Ok(channel) => Ok((connection, channel)),
        Err(error) => {
            close_connection_later(connection);
            Err(error)
        }
    }
}

async fn confirm_channel(connection: &Connection) -> Result<Channel, BusError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(BusError::amqp("opening a channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(BusError::amqp("enabling publisher confirms"))?;
    Ok(channel)
}

fn close_later(link: Link) {
    tokio::spawn(async move { close(&link.connection, &[link.channel], "replaced").await });
}

fn close_connection_later(connection: Connection) {
    tokio::spawn(async move { close(&connection, &[], "replaced").await });
}

/// The background reconnect: attempts with the URL's connection backoff until connected,
/// refused, or out of retries (the next publish starts another round). A publish waiting
/// for it cuts a backoff short once `connection_retry_delay` has passed since the last
/// attempt. Holds the publisher only between attempts, so dropping it ends the task.
async fn reconnect(shared: Weak<Shared>, not_before: Option<Instant>) {
    let Some(url) = shared.upgrade().map(|s| s.url.clone()) else {
        return;
    };
    if let Some(at) = not_before {
        tokio::time::sleep_until(at).await;
    }
    let policy = url.connection_retry;
    let mut failures: u32 = 0;
    loop {
        let attempt = open_link(&url).await;
        let Some(publisher) = shared.upgrade() else {
            if let Ok((connection, _)) = attempt {
                close_connection_later(connection);
            }
            return;
        };
        let error = match attempt {
            Ok((connection, channel)) => {
                publisher.install(connection, channel, true);
                if failures > 0 {
                    tracing::info!(
                        attempts = failures + 1,
                        "the publisher reconnected to RabbitMQ"
                    );
                }
                return;
            }
            Err(error) => error,
        };
        if let BusError::AccessRefused { detail } = &error {
            tracing::error!(%error, "RabbitMQ refused the publisher's login; publishes fail until it is tried again in 30 s");
            let mut state = publisher.lock();
            state.refused = Some((Instant::now() + ACCESS_REFUSED_RETRY, detail.clone()));
            state.last_error = Some(error.to_string());
            state.reconnecting = false;
            state.gave_up_at = Some(Instant::now());
            drop(state);
            publisher.notify();
            return;
        }
        failures += 1;
        let give_up = failures > policy.max_retries;
        {
            let mut state = publisher.lock();
            state.last_error = Some(error.to_string());
            if give_up {
                state.reconnecting = false;
                state.gave_up_at = Some(Instant::now());
            }
        }
        publisher.notify();
        if give_up {
            tracing::warn!(%error, attempts = failures, "the publisher could not reconnect to RabbitMQ; the next publish tries again");
            return;
        }
        tracing::warn!(%error, attempt = failures, "the publisher could not reconnect to RabbitMQ; retrying");
        let demand = Arc::clone(&publisher.demand);
        drop(publisher);
        let delay = policy.delay_for(failures - 1);
        let wanted = async {
            tokio::time::sleep(policy.initial_delay.min(delay)).await;
            demand.notified().await;
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = wanted => {}
        }
    }
}

impl Publisher for AmqpPublisher {
    fn ready(&self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(self.ready_check())
    }

    fn publish(&self, message: Outgoing) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(self.publish_batch(vec![message]))
    }

    fn publish_all(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(self.publish_batch(messages))
    }

    fn publish_each(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Vec<Result<(), BusError>>> {
        Box::pin(self.publish_batch_each(messages))
    }
}

/// The results so far, with `error` for every message that has none: the first gets it, the
/// others a description of it.
fn fill(results: Vec<Option<Result<(), BusError>>>, error: BusError) -> Vec<Result<(), BusError>> {
    let text = error.to_string();
    let mut error = Some(error);
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(error.take().unwrap_or_else(|| BusError::NotConfirmed {
                    reason: text.clone(),
                }))
            })
        })
        .collect()
}
