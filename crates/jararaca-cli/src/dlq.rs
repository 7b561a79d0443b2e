//! `dlq stats|list|requeue|purge`: inspect and repair the dead-letter queue.
//!
//! The same commands and options as the reference's, on top of jararaca-bus's dead-letter
//! tools, without its bugs: `stats` terminates, `list` shows each message once, and
//! `requeue` returns each message to the queue it died in and says what it left behind.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use jararaca_bus::{BrokerUrl, DeadLetterNames, DeadMessage, HeaderValue, Headers};

use crate::Error;

/// The dead-letter commands.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum Dlq {
    /// Count the dead-letter queue's messages, by the queue they died in.
    Stats(Stats),
    /// Show the dead-letter queue's messages, each once; nothing is removed.
    List(List),
    /// Put dead letters back on the queue each died in, with a fresh retry budget.
    Requeue(Requeue),
    /// Delete every message in the dead-letter queue.
    Purge(Purge),
}

/// Where the dead-letter queue is.
#[derive(Debug, Clone, Args)]
pub struct Broker {
    /// The broker URL, `amqp://user:pass@host:port/vhost` (an `?exchange=` is allowed and
    /// not needed: these commands use only the dead-letter queue).
    #[arg(long, env = "BROKER_URL", value_name = "URL")]
    pub broker_url: String,
    /// Use `<PREFIX>.dlx`/`<PREFIX>.dlq` instead of the shared `dlx`/`dlq`, for services
    /// declared with other dead-letter names.
    #[arg(long, env = "DEAD_LETTER_PREFIX", value_name = "PREFIX")]
    pub dead_letter_prefix: Option<String>,
}

/// `jararaca dlq stats [--json]`.
#[derive(Debug, Clone, Args)]
pub struct Stats {
    /// Where the dead-letter queue is.
    #[command(flatten)]
    pub broker: Broker,
    /// Print JSON: `{"total_messages": N, "queues": {"<queue>": {"count": N}}}`.
    #[arg(long)]
    pub json: bool,
}

/// `jararaca dlq list [--limit N] [--queue TEXT] [--show-body] [--json]`.
#[derive(Debug, Clone, Args)]
pub struct List {
    /// Where the dead-letter queue is.
    #[command(flatten)]
    pub broker: Broker,
    /// Show at most this many messages.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: u32,
    /// Only messages that died in a queue whose name contains this (ignoring case).
    #[arg(long, value_name = "TEXT")]
    pub queue: Option<String>,
    /// Show the bodies too.
    #[arg(long)]
    pub show_body: bool,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// `jararaca dlq requeue [--queue TEXT] [--limit N] [-f]`.
#[derive(Debug, Clone, Args)]
pub struct Requeue {
    /// Where the dead-letter queue is.
    #[command(flatten)]
    pub broker: Broker,
    /// Only messages that died in a queue whose name contains this (ignoring case).
    #[arg(long, value_name = "TEXT")]
    pub queue: Option<String>,
    /// Requeue at most this many messages (all by default).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `jararaca dlq purge [-f]`.
#[derive(Debug, Clone, Args)]
pub struct Purge {
    /// Where the dead-letter queue is.
    #[command(flatten)]
    pub broker: Broker,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Asks the user a yes/no question; `Err` when nobody can answer.
pub type Confirm<'a> = &'a mut dyn FnMut(&str) -> Result<bool, Error>;

/// Asks on the terminal (the question on standard error, the answer from standard input);
/// without a terminal there is nobody to ask, and the action is refused.
pub fn confirm_on_terminal(question: &str) -> Result<bool, Error> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::NotConfirmed {
            question: question.to_string(),
        });
    }
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{question} [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|source| Error::Io {
            path: PathBuf::from("-"),
            source,
        })?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

impl Broker {
    /// The parsed URL with the chosen dead-letter names.
    pub fn url(&self) -> Result<BrokerUrl, Error> {
        // The dead-letter tools never touch the main exchange, so a URL without one (as the
        // reference's examples give) is fine: name a placeholder to satisfy the parser.
        let has_exchange = self.broker_url.split_once('?').is_some_and(|(_, query)| {
            query
                .split('&')
                .any(|p| p.strip_prefix("exchange=").is_some_and(|v| !v.is_empty()))
        });
        let raw = if has_exchange {
            self.broker_url.clone()
        } else {
            let separator = if self.broker_url.contains('?') {
                '&'
            } else {
                '?'
            };
            format!("{}{separator}exchange=unused", self.broker_url)
        };
        let url = BrokerUrl::parse(&raw)?;
        Ok(match &self.dead_letter_prefix {
            Some(prefix) => url.dead_letter(DeadLetterNames::prefixed(prefix)),
            None => url,
        })
    }
}

impl Dlq {
    /// Runs the command on a runtime of its own, writing its report to `out`.
    pub fn run(&self, out: &mut dyn Write, confirm: Confirm<'_>) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                path: PathBuf::from("(runtime)"),
                source,
            })?;
        runtime.block_on(self.run_async(out, confirm))
    }

    /// Runs the command, writing its report to `out`.
    pub async fn run_async(&self, out: &mut dyn Write, confirm: Confirm<'_>) -> Result<(), Error> {
        let text = match self {
            Self::Stats(command) => command.run().await?,
            Self::List(command) => command.run().await?,
            Self::Requeue(command) => command.run(confirm).await?,
            Self::Purge(command) => command.run(confirm).await?,
        };
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|source| Error::Io {
                path: PathBuf::from("-"),
                source,
            })
    }
}

impl Stats {
    /// The counts, as text or JSON.
    pub async fn run(&self) -> Result<String, Error> {
        let url = self.broker.url()?;
        let stats = jararaca_bus::dlq_stats(&url).await?;
        let queue = &url.dead_letter.queue;
        if self.json {
            let queues: serde_json::Map<String, serde_json::Value> = stats
                .by_queue
                .iter()
                .map(|(name, count)| (name.clone(), serde_json::json!({ "count": count })))
                .collect();
            let json = serde_json::json!({ "total_messages": stats.total, "queues": queues });
            return Ok(pretty(&json));
        }
        if stats.total == 0 {
            return Ok(format!("The dead-letter queue `{queue}` is empty.\n"));
        }
        let mut by_count: Vec<(&String, &u32)> = stats.by_queue.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let width = by_count
            .iter()
            .map(|(_, n)| n.to_string().len())
            .max()
            .unwrap_or(1);
        let mut text = format!(
            "The dead-letter queue `{queue}` holds {} by the queue they died in:\n",
            messages(stats.total)
        );
        for (name, count) in by_count {
            text.push_str(&format!("  {count:>width$}  {name}\n"));
        }
        Ok(text)
    }
}

impl List {
    /// The messages, as text or JSON.
    pub async fn run(&self) -> Result<String, Error> {
        let url = self.broker.url()?;
        let found = jararaca_bus::dlq_list(&url, self.limit, self.queue.as_deref()).await?;
        let queue = &url.dead_letter.queue;
        if self.json {
            let items: Vec<serde_json::Value> = found
                .iter()
                .map(|m| Shown::of(m).json(self.show_body.then_some(&m.body)))
                .collect();
            return Ok(pretty(&serde_json::Value::Array(items)));
        }
        if found.is_empty() {
            return Ok(match &self.queue {
                Some(filter) => format!(
                    "No message in the dead-letter queue `{queue}` died in a queue matching `{filter}`.\n"
                ),
                None => format!("The dead-letter queue `{queue}` is empty.\n"),
            });
        }
        let mut text = format!(
            "The dead-letter queue `{queue}`: showing {}\n",
            messages(found.len() as u32)
        );
        for (i, message) in found.iter().enumerate() {
            let shown = Shown::of(message);
            let or_na = |v: Option<String>| v.unwrap_or_else(|| "N/A".to_string());
            text.push_str(&format!(
                "\n[{}] Message ID: {}\n    Original Queue: {}\n    Death Reason: {}\n    Death Count: {}\n    First Death: {}\n    Retries: {}\n    Last Error: {}\n    Content-Type: {}\n",
                i + 1,
                or_na(shown.message_id),
                or_na(shown.original_queue),
                or_na(shown.death_reason),
                or_na(shown.death_count.map(|n| n.to_string())),
                or_na(shown.first_death_time),
                shown.retry_count,
                or_na(shown.last_error),
                or_na(shown.content_type),
            ));
            if self.show_body {
                text.push_str(&format!("    Body: {}\n", body_text(&message.body, 500)));
            }
        }
        Ok(text)
    }
}

impl Requeue {
    /// Requeues after confirmation; says how many went back and what stayed, and why.
    pub async fn run(&self, confirm: Confirm<'_>) -> Result<String, Error> {
        let url = self.broker.url()?;
        let queue = &url.dead_letter.queue;
        let limit = self.limit.unwrap_or(u32::MAX);
        if !self.force {
            let stats = jararaca_bus::dlq_stats(&url).await?;
            let filter = self.queue.as_deref().map(str::to_lowercase);
            let candidates: u32 = stats
                .by_queue
                .iter()
                .filter(|(name, _)| name.as_str() != "(unknown)")
                .filter(|(name, _)| {
                    filter
                        .as_deref()
                        .is_none_or(|f| name.to_lowercase().contains(f))
                })
                .map(|(_, n)| n)
                .sum();
            let candidates = candidates.min(limit);
            if candidates == 0 {
                return Ok(format!(
                    "Nothing to requeue: no message in the dead-letter queue `{queue}` names a queue{}.\n",
                    self.queue
                        .as_deref()
                        .map(|f| format!(" matching `{f}`"))
                        .unwrap_or_default()
                ));
            }
            if !confirm(&format!(
                "Requeue {} from `{queue}` to the queues they died in?",
                messages(candidates)
            ))? {
                return Ok("Requeue cancelled.\n".to_string());
            }
        }
        let report = jararaca_bus::dlq_requeue(&url, limit, self.queue.as_deref()).await?;
        let mut text = format!(
            "Requeued {} to the queues they died in.\n",
            messages(report.requeued)
        );
        if report.skipped > 0 {
            text.push_str(&format!(
                "Left {} in `{queue}`: no header names the queue they died in.\n",
                messages(report.skipped)
            ));
        }
        if report.unroutable > 0 {
            text.push_str(&format!(
                "Left {} in `{queue}`: the queue they died in no longer exists.\n",
                messages(report.unroutable)
            ));
        }
        Ok(text)
    }
}

impl Purge {
    /// Purges after confirmation; says how many messages were deleted.
    pub async fn run(&self, confirm: Confirm<'_>) -> Result<String, Error> {
        let url = self.broker.url()?;
        let queue = &url.dead_letter.queue;
        if !self.force {
            let total = jararaca_bus::dlq_stats(&url).await?.total;
            if total == 0 {
                return Ok(format!(
                    "The dead-letter queue `{queue}` is already empty.\n"
                ));
            }
            if !confirm(&format!(
                "Delete {} from `{queue}`? This cannot be undone.",
                messages(total)
            ))? {
                return Ok("Purge cancelled.\n".to_string());
            }
        }
        let purged = jararaca_bus::dlq_purge(&url).await?;
        Ok(format!("Purged {} from `{queue}`.\n", messages(purged)))
    }
}

/// What `list` shows of a dead letter: the worker's headers, else RabbitMQ's `x-death`.
struct Shown {
    message_id: Option<String>,
    original_queue: Option<String>,
    death_reason: Option<String>,
    death_count: Option<i64>,
    first_death_time: Option<String>,
    retry_count: u32,
    last_error: Option<String>,
    content_type: Option<String>,
}

impl Shown {
    fn of(message: &DeadMessage) -> Self {
        let headers = &message.headers;
        Self {
            message_id: message.message_id.clone(),
            original_queue: message.queue.clone(),
            death_reason: death_reason(message.reason.as_deref(), headers),
            death_count: death_field(headers, "count").and_then(HeaderValue::as_int),
            first_death_time: death_time(headers),
            retry_count: message.retry_count,
            last_error: message.last_error.clone(),
            content_type: message.content_type.clone(),
        }
    }

    fn json(self, body: Option<&Vec<u8>>) -> serde_json::Value {
        let mut json = serde_json::json!({
            "message_id": self.message_id,
            "original_queue": self.original_queue,
            "death_reason": self.death_reason,
            "death_count": self.death_count,
            "first_death_time": self.first_death_time,
            "retry_count": self.retry_count,
            "last_error": self.last_error,
            "content_type": self.content_type,
        });
        if let (Some(body), Some(map)) = (body, json.as_object_mut()) {
            let body = match std::str::from_utf8(body) {
                Ok(text) => serde_json::Value::from(text),
                Err(_) => serde_json::Value::from(hex(body)),
            };
            map.insert("body".to_string(), body);
        }
        json
    }
}

/// A field of RabbitMQ's newest death record (`x-death[0]`).
fn death_field<'a>(headers: &'a Headers, name: &str) -> Option<&'a HeaderValue> {
    let deaths = match headers.get("x-death") {
        Some(HeaderValue::Array(deaths)) => deaths,
        _ => return None,
    };
    deaths.iter().find_map(|d| match d {
        HeaderValue::Table(t) => t.get(name),
        _ => None,
    })
}

/// Why it died: the worker's reason (`x-dead-letter-reason`), else RabbitMQ's.
fn death_reason(worker_reason: Option<&str>, headers: &Headers) -> Option<String> {
    worker_reason.map(str::to_string).or_else(|| {
        death_field(headers, "reason")
            .and_then(HeaderValue::as_text)
            .map(|s| s.into_owned())
    })
}

/// When RabbitMQ dead-lettered it, in RFC 3339.
fn death_time(headers: &Headers) -> Option<String> {
    death_field(headers, "time")
        .and_then(HeaderValue::as_int)
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The body as text, cut at `max` characters; hex when it is not UTF-8.
fn body_text(body: &[u8], max: usize) -> String {
    match std::str::from_utf8(body) {
        Ok(text) if text.chars().count() > max => {
            let cut: String = text.chars().take(max).collect();
            format!("{cut}… (truncated)")
        }
        Ok(text) => text.to_string(),
        Err(_) => {
            let shown = &body[..body.len().min(max / 2)];
            let more = if shown.len() < body.len() { "…" } else { "" };
            format!("(hex) {}{more}", hex(shown))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn messages(n: u32) -> String {
    match n {
        1 => "1 message".to_string(),
        n => format!("{n} messages"),
    }
}

fn pretty(json: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail.
    let mut text = serde_json::to_string_pretty(json).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn broker(url: &str, prefix: Option<&str>) -> Broker {
        Broker {
            broker_url: url.to_string(),
            dead_letter_prefix: prefix.map(str::to_string),
        }
    }

    #[test]
    fn a_url_without_an_exchange_is_enough() {
        let url = broker("amqp://guest:guest@localhost:5672/", None)
            .url()
            .unwrap();
        assert_eq!(url.dead_letter.queue, "dlq");
        let url = broker("amqp://h/?prefetch_count=1", Some("svc"))
            .url()
            .unwrap();
        assert_eq!(url.dead_letter.queue, "svc.dlq");
        assert_eq!(url.prefetch_count, Some(1));
        let url = broker("amqp://h/?exchange=orders", None).url().unwrap();
        assert_eq!(url.exchange, "orders");
        assert!(broker("http://h/", None).url().is_err());
    }

    #[test]
    fn dead_letters_show_the_worker_reason_or_rabbitmq_x_death() {
        let death = BTreeMap::from([
            ("queue".to_string(), HeaderValue::from("orders.q")),
            ("reason".to_string(), HeaderValue::from("rejected")),
            ("count".to_string(), HeaderValue::Int(3)),
            ("time".to_string(), HeaderValue::Int(1_767_323_045)),
        ]);
        let headers = Headers::from([(
            "x-death".to_string(),
            HeaderValue::Array(vec![HeaderValue::Table(death)]),
        )]);
        assert_eq!(
            death_field(&headers, "count").and_then(HeaderValue::as_int),
            Some(3)
        );
        assert_eq!(
            death_time(&headers).as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        assert_eq!(death_reason(None, &headers).as_deref(), Some("rejected"));
        assert_eq!(
            death_reason(Some("retries-exhausted"), &headers).as_deref(),
            Some("retries-exhausted")
        );
        assert_eq!(death_reason(None, &Headers::new()), None);
        assert_eq!(death_time(&Headers::new()), None);
    }

    #[test]
    fn bodies_are_cut_and_binary_is_hex() {
        assert_eq!(body_text(b"abc", 500), "abc");
        assert_eq!(body_text("é".repeat(3).as_bytes(), 2), "éé… (truncated)");
        assert_eq!(body_text(&[0xff, 0x00, 0x01], 2), "(hex) ff…");
        assert_eq!(messages(1), "1 message");
        assert_eq!(messages(0), "0 messages");
    }
}
