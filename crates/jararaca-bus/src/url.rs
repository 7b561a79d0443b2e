//! The broker URL, read exactly as the reference reads it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jararaca_retry::RetryPolicy;

use crate::BusError;

/// How long a publish waits for a connection to RabbitMQ by default, while the publisher
/// reconnects in the background, before it fails with
/// [`BusError::NotConnected`](crate::BusError::NotConnected).
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// The fixed names of the dead-letter exchange, queue and routing key.
///
/// The reference uses `dlx`/`dlq`/`dlx` for every service on a vhost; keep the default to
/// share a broker with Python services. Other names keep unrelated deployments (or tests)
/// apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterNames {
    /// The direct dead-letter exchange (`dlx`).
    pub exchange: String,
    /// The dead-letter queue (`dlq`).
    pub queue: String,
    /// The routing key handler queues dead-letter with (`dlx`).
    pub routing_key: String,
}

impl Default for DeadLetterNames {
    fn default() -> Self {
        Self {
            exchange: "dlx".to_string(),
            queue: "dlq".to_string(),
            routing_key: "dlx".to_string(),
        }
    }
}

impl DeadLetterNames {
    /// Names derived from `prefix`: `<prefix>.dlx`, `<prefix>.dlq`, key `<prefix>.dlx`.
    pub fn prefixed(prefix: &str) -> Self {
        Self {
            exchange: format!("{prefix}.dlx"),
            queue: format!("{prefix}.dlq"),
            routing_key: format!("{prefix}.dlx"),
        }
    }
}

/// A parsed broker URL: `amqp[s]://user:pass@host:port/vhost?exchange=X&prefetch_count=N…`.
///
/// The query parameters and environment fallbacks are the reference's (query parameters
/// win): `exchange` (required), `prefetch_count` (`AMQP_PREFETCH_COUNT`; needed by the
/// worker, `0` = unlimited), `shared_default_channel` (`AMQP_SHARED_DEFAULT_CHANNEL`),
/// `prefetch_count_by_channel_id` (`AMQP_PREFETCH_COUNT_BY_CHANNEL`, `"ch1:5,ch2:20"`),
/// `AMQP_QOS_GLOBAL` (default true), `connection_retry_max/_delay/_max_delay/_backoff`
/// (5 / 1 s / 60 s / 2), `consumer_retry_max/_delay/_max_delay/_backoff` (5 / 5 s / 60 s / 3;
/// also the handlers' default retry budget), `connection_heartbeat_interval` (30 s) and
/// `connection_health_check_interval` (10 s). Unknown parameters are ignored. One parameter
/// is this crate's own (Python ignores it): `publish_timeout` (seconds, default 5), how long
/// a publish waits for a connection while the publisher reconnects.
///
/// ```
/// use jararaca_bus::BrokerUrl;
///
/// let url = BrokerUrl::parse("amqp://guest:guest@localhost:5672/?exchange=orders&prefetch_count=16")?;
/// assert_eq!(url.exchange, "orders");
/// assert_eq!(url.prefetch_count, Some(16));
/// assert_eq!(url.consumer_retry.max_retries, 5);
/// assert_eq!(url.publish_timeout, std::time::Duration::from_secs(5));
/// # Ok::<(), jararaca_bus::BusError>(())
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct BrokerUrl {
    /// The URL without its query, as the AMQP client connects to it.
    pub connection_url: String,
    /// The main topic exchange.
    pub exchange: String,
    /// The default `basic.qos` prefetch per channel (`Some(0)` = unlimited).
    pub prefetch_count: Option<u16>,
    /// Whether handlers without a channel id share one channel (`DEFAULT`).
    pub shared_default_channel: bool,
    /// Per-channel-id prefetch overrides.
    pub prefetch_count_by_channel_id: BTreeMap<String, u16>,
    /// `basic.qos(global=…)`.
    pub qos_global: bool,
    /// How connecting is retried.
    pub connection_retry: RetryPolicy,
    /// How consumer setup is retried, and the handlers' default retry budget.
    pub consumer_retry: RetryPolicy,
    /// The AMQP heartbeat.
    pub heartbeat: Duration,
    /// How often the worker checks that its connection is healthy.
    pub health_check_interval: Duration,
    /// How long a publish waits for a connection while the publisher reconnects
    /// (`publish_timeout`, in seconds; [`DEFAULT_PUBLISH_TIMEOUT`] by default). Python
    /// jararaca ignores the parameter.
    pub publish_timeout: Duration,
    /// The dead-letter names (not part of the URL: set with [`BrokerUrl::dead_letter`]).
    pub dead_letter: DeadLetterNames,
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerUrl")
            .field("connection_url", &redact(&self.connection_url))
            .field("exchange", &self.exchange)
            .field("prefetch_count", &self.prefetch_count)
            .field("shared_default_channel", &self.shared_default_channel)
            .field(
                "prefetch_count_by_channel_id",
                &self.prefetch_count_by_channel_id,
            )
            .field("qos_global", &self.qos_global)
            .field("dead_letter", &self.dead_letter)
            .finish_non_exhaustive()
    }
}

pub use jararaca_di::config::redact_url as redact;

impl BrokerUrl {
    /// Parses `url`, reading the `AMQP_*` environment variables for parameters the query
    /// does not set.
    pub fn parse(url: &str) -> Result<Self, BusError> {
        Self::parse_with_env(url, |name| std::env::var(name).ok())
    }

    /// Parses `url` with `env` as the environment (for tests and embedding).
    pub fn parse_with_env(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, BusError> {
        let invalid = |reason: String| BusError::InvalidUrl { reason };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let Some((scheme, _)) = base.split_once("://") else {
            return Err(invalid(format!(
                "`{}` has no scheme: use amqp://user:pass@host:port/vhost?exchange=<name>",
                redact(url)
            )));
        };
        if scheme != "amqp" && scheme != "amqps" {
            return Err(invalid(format!(
                "the scheme must be amqp or amqps, not `{scheme}`"
            )));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| invalid(format!("the query string cannot be read: {e}")))?;
        // `parse_qs` semantics: the first value of a repeated parameter wins.
        let param = |name: &str| -> Option<String> {
            pairs
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let exchange = param("exchange").ok_or_else(|| {
            invalid(format!(
                "`{}` names no exchange: add `?exchange=<name>` (there is no EXCHANGE variable)",
                redact(url)
            ))
        })?;
        let prefetch_count = match param("prefetch_count").or_else(|| env("AMQP_PREFETCH_COUNT")) {
            Some(v) => Some(parse_u16(&v).ok_or_else(|| {
                invalid(format!(
                    "prefetch_count must be a number from 0 to 65535, not `{v}`"
                ))
            })?),
            None => None,
        };
        let shared_default_channel = param("shared_default_channel")
            .or_else(|| env("AMQP_SHARED_DEFAULT_CHANNEL"))
            .is_some_and(|v| truthy(&v));
        let prefetch_count_by_channel_id = match param("prefetch_count_by_channel_id")
            .or_else(|| env("AMQP_PREFETCH_COUNT_BY_CHANNEL"))
        {
            Some(v) => parse_channel_prefetch(&v).ok_or_else(|| {
                invalid(format!(
                    "prefetch_count_by_channel_id must look like `ch1:5,ch2:20`, not `{v}`"
                ))
            })?,
            None => BTreeMap::new(),
        };
        let qos_global = env("AMQP_QOS_GLOBAL").is_none_or(|v| truthy(&v));
        let retry = |prefix: &str, defaults: RetryPolicy| -> Result<RetryPolicy, BusError> {
            let number = |suffix: &str| -> Result<Option<(String, String, f64)>, BusError> {
                let name = format!("{prefix}_{suffix}");
                match param(&name) {
                    Some(v) => match v.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0) {
                        Some(n) => Ok(Some((name, v, n))),
                        None => Err(invalid(format!(
                            "{name} must be a non-negative number, not `{v}`"
                        ))),
                    },
                    None => Ok(None),
                }
            };
            let mut policy = defaults;
            if let Some((name, v, n)) = number("max")? {
                if n.fract() != 0.0 || n > f64::from(u32::MAX) {
                    return Err(invalid(format!(
                        "{name} must be a whole number of retries from 0 to {}, not `{v}`",
                        u32::MAX
                    )));
                }
                policy = policy.max_retries(n as u32);
            }
            if let Some((name, v, n)) = number("delay")? {
                policy = policy.initial_delay(duration(&name, &v, n)?);
            }
            if let Some((name, v, n)) = number("max_delay")? {
                policy = policy.max_delay(duration(&name, &v, n)?);
            }
            if let Some((_, _, n)) = number("backoff")? {
                policy = policy.backoff_factor(n);
            }
            Ok(policy)
        };
        let connection_retry = retry("connection_retry", RetryPolicy::default())?;
        let consumer_retry = retry(
            "consumer_retry",
            RetryPolicy::default()
                .initial_delay(Duration::from_secs(5))
                .backoff_factor(3.0),
        )?;
        let seconds = |name: &str, default: u64| -> Result<Duration, BusError> {
            match param(name) {
                Some(v) => match v.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0) {
                    Some(n) => duration(name, &v, n),
                    None => Err(invalid(format!(
                        "{name} must be a number of seconds, not `{v}`"
                    ))),
                },
                None => Ok(Duration::from_secs(default)),
            }
        };
        let heartbeat = seconds("connection_heartbeat_interval", 30)?;
        // AMQP negotiates the heartbeat as a 16-bit number of seconds.
        if heartbeat > Duration::from_secs(u64::from(u16::MAX)) {
            return Err(invalid(format!(
                "connection_heartbeat_interval must be at most {} seconds, not `{}`",
                u16::MAX,
                param("connection_heartbeat_interval").unwrap_or_default()
            )));
        }
        let health_check_interval = seconds("connection_health_check_interval", 10)?;
        let publish_timeout = seconds("publish_timeout", DEFAULT_PUBLISH_TIMEOUT.as_secs())?;
        Ok(Self {
            connection_url: connection_url(base, heartbeat),
            exchange,
            prefetch_count,
            shared_default_channel,
            prefetch_count_by_channel_id,
            qos_global,
            connection_retry,
            consumer_retry,
            heartbeat,
            health_check_interval,
            publish_timeout,
            dead_letter: DeadLetterNames::default(),
        })
    }

    /// Uses other dead-letter names than the reference's `dlx`/`dlq`.
    #[must_use]
    pub fn dead_letter(mut self, names: DeadLetterNames) -> Self {
        self.dead_letter = names;
        self
    }

    /// Uses another main exchange.
    #[must_use]
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = exchange.into();
        self
    }
}

/// The URL the AMQP client connects to: an empty vhost path means `/`, as for aio-pika, and
/// the heartbeat travels as the client's own query parameter.
fn connection_url(base: &str, heartbeat: Duration) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("amqp", base));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let vhost = match path {
        "" | "/" => "/%2f",
        other => other,
    };
    format!(
        "{scheme}://{authority}{vhost}?heartbeat={}",
        heartbeat.as_secs()
    )
}

/// `seconds` (given as `value`) as a [`Duration`], or an error naming the option and the
/// value when no `Duration` holds it.
fn duration(name: &str, value: &str, seconds: f64) -> Result<Duration, BusError> {
    Duration::try_from_secs_f64(seconds).map_err(|_| BusError::InvalidUrl {
        reason: format!("{name} is out of range: `{value}` seconds is too long a time"),
    })
}

fn parse_u16(value: &str) -> Option<u16> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on" | "y" | "t"
    )
}

fn parse_channel_prefetch(value: &str) -> Option<BTreeMap<String, u16>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (channel, count) = part.split_once(':')?;
            Some((channel.trim().to_string(), parse_u16(count)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn reads_the_reference_parameters() {
        let url = BrokerUrl::parse_with_env(
            "amqp://u:p@h:5673/v?exchange=ex&prefetch_count=7&shared_default_channel=true&prefetch_count_by_channel_id=a:1,b:20&consumer_retry_max=2&consumer_retry_delay=0.5&connection_heartbeat_interval=15&unknown=x",
            no_env,
        )
        .unwrap();
        assert_eq!(url.connection_url, "amqp://u:p@h:5673/v?heartbeat=15");
        assert_eq!(url.exchange, "ex");
        assert_eq!(url.prefetch_count, Some(7));
        assert!(url.shared_default_channel);
        assert_eq!(
            url.prefetch_count_by_channel_id,
            BTreeMap::from([("a".into(), 1), ("b".into(), 20)])
        );
        assert_eq!(url.consumer_retry.max_retries, 2);
        assert_eq!(url.consumer_retry.initial_delay, Duration::from_millis(500));
        assert_eq!(url.consumer_retry.backoff_factor, 3.0);
        assert!(url.qos_global);
        assert_eq!(url.dead_letter.queue, "dlq");
    }

    #[test]
    fn environment_fills_in_and_the_query_wins() {
        let env = |name: &str| match name {
            "AMQP_PREFETCH_COUNT" => Some("9".to_string()),
            "AMQP_QOS_GLOBAL" => Some("false".to_string()),
            "AMQP_SHARED_DEFAULT_CHANNEL" => Some("1".to_string()),
            _ => None,
        };
        let url = BrokerUrl::parse_with_env("amqp://localhost/?exchange=e", env).unwrap();
        assert_eq!(url.prefetch_count, Some(9));
        assert!(!url.qos_global && url.shared_default_channel);
        assert_eq!(url.connection_url, "amqp://localhost/%2f?heartbeat=30");
        let url =
            BrokerUrl::parse_with_env("amqp://localhost?exchange=e&prefetch_count=0", env).unwrap();
        assert_eq!(url.prefetch_count, Some(0));
    }

    #[test]
    fn errors_say_what_to_do() {
        let err = BrokerUrl::parse_with_env("amqp://u:secret@h/", no_env).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("?exchange=") && !text.contains("secret"),
            "{text}"
        );
        assert!(
            BrokerUrl::parse_with_env("amqp://h/?exchange=e&prefetch_count=-1", no_env).is_err()
        );
        assert!(BrokerUrl::parse_with_env("http://h/?exchange=e", no_env).is_err());
        assert!(
            BrokerUrl::parse_with_env(
                "amqp://h/?exchange=e&prefetch_count_by_channel_id=a",
                no_env
            )
            .is_err()
        );
    }

    #[test]
    fn out_of_range_numbers_are_errors_naming_the_option_and_value() {
        let cases = [
            ("consumer_retry_delay=1e20", "consumer_retry_delay", "1e20"),
            ("consumer_retry_delay=-1", "consumer_retry_delay", "-1"),
            ("consumer_retry_delay=NaN", "consumer_retry_delay", "NaN"),
            ("consumer_retry_delay=inf", "consumer_retry_delay", "inf"),
            (
                "consumer_retry_max_delay=1e300",
                "consumer_retry_max_delay",
                "1e300",
            ),
            (
                "connection_retry_delay=-inf",
                "connection_retry_delay",
                "-inf",
            ),
            ("connection_retry_max=1e20", "connection_retry_max", "1e20"),
            ("consumer_retry_max=2.5", "consumer_retry_max", "2.5"),
            ("consumer_retry_backoff=-2", "consumer_retry_backoff", "-2"),
            (
                "connection_heartbeat_interval=1e20",
                "connection_heartbeat_interval",
                "1e20",
            ),
            (
                "connection_heartbeat_interval=70000",
                "connection_heartbeat_interval",
                "70000",
            ),
            (
                "connection_health_check_interval=1e25",
                "connection_health_check_interval",
                "1e25",
            ),
            (
                "connection_health_check_interval=nan",
                "connection_health_check_interval",
                "nan",
            ),
        ];
        for (query, name, value) in cases {
            let url = format!("amqp://h/?exchange=e&{query}");
            match BrokerUrl::parse_with_env(&url, no_env) {
                Err(BusError::InvalidUrl { reason }) => assert!(
                    reason.contains(name) && reason.contains(value),
                    "{query}: {reason}"
                ),
                other => panic!("{query}: expected an invalid URL, got {other:?}"),
            }
        }
    }

    #[test]
    fn large_but_representable_numbers_are_accepted() {
        let url = BrokerUrl::parse_with_env(
            "amqp://h/?exchange=e&consumer_retry_delay=1e9&consumer_retry_max=4.0&connection_heartbeat_interval=65535",
            no_env,
        )
        .unwrap();
        assert_eq!(
            url.consumer_retry.initial_delay,
            Duration::from_secs(1_000_000_000)
        );
        assert_eq!(url.consumer_retry.max_retries, 4);
        assert_eq!(url.heartbeat, Duration::from_secs(65535));
    }
}
