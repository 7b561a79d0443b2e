//! Test support shared by the Jararaca crates' integration tests.
//!
//! Integration tests talk to real PostgreSQL, Redis and RabbitMQ servers. On a machine without
//! them a test *skips* with a printed reason, so `cargo test` stays green on a laptop; with
//! `JARARACA_REQUIRE_SERVICES=1` (as CI sets it) an unreachable service fails the test instead.
//!
//! ```
//! fn my_test() {
//!     let Some(url) = jararaca_testing::redis() else { return };
//!     // … talk to `url` …
//! #   let _ = url;
//! }
//! # my_test();
//! ```

#[cfg(feature = "rabbitmq")]
mod rabbitmq;

#[cfg(feature = "rabbitmq")]
pub use rabbitmq::RabbitNamespace;

#[cfg(feature = "typescript")]
pub mod typescript;

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The variable that turns a skip into a failure.
pub const REQUIRE_SERVICES: &str = "JARARACA_REQUIRE_SERVICES";

/// Whether unreachable services must fail tests rather than skip them.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The URL of a service if it accepts TCP connections: `env_var` if set, else `default_url`.
///
/// When it is unreachable, prints why and returns `None`, or panics if
/// [`services_required`].
pub fn service(name: &str, env_var: &str, default_url: &str) -> Option<String> {
    let url = std::env::var(env_var).unwrap_or_else(|_| default_url.to_string());
    let addr = host_port(&url);
    let reachable = addr
        .as_deref()
        .and_then(|a| a.to_socket_addrs().ok())
        .into_iter()
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if reachable {
        return Some(url);
    }
    let reason = format!(
        "{name} is not reachable at {} (set {env_var} to point elsewhere)",
        addr.as_deref().unwrap_or(&url)
    );
    if services_required() {
        panic!("{reason}; {REQUIRE_SERVICES} is set, so this test cannot skip");
    }
    eprintln!("skipping: {reason}");
    None
}

/// PostgreSQL (`JARARACA_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
pub fn postgres() -> Option<String> {
    service(
        "PostgreSQL",
        "JARARACA_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

/// Redis (`JARARACA_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
pub fn redis() -> Option<String> {
    service("Redis", "JARARACA_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// RabbitMQ (`JARARACA_TEST_AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`).
pub fn rabbitmq() -> Option<String> {
    service(
        "RabbitMQ",
        "JARARACA_TEST_AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    )
}

/// A name no other test (in this or a parallel process) uses: `prefix` plus the process id,
/// the time and a counter. For exchanges, queues, key prefixes, schemas, databases.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{nanos:x}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `host:port` of a URL such as `scheme://user:pass@host:port/path?query`.
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.is_empty() {
        return None;
    }
    if host_port.contains(':') && !host_port.ends_with(']') {
        Some(host_port.to_string())
    } else {
        let port = match url.split("://").next()? {
            "postgres" | "postgresql" => 5432,
            "redis" | "rediss" => 6379,
            "amqp" | "amqps" => 5672,
            _ => return None,
        };
        Some(format!("{host_port}:{port}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_host_and_port() {
        assert_eq!(
            host_port("amqp://guest:guest@127.0.0.1:5672/%2f?exchange=x").as_deref(),
            Some("127.0.0.1:5672")
        );
        assert_eq!(
            host_port("redis://localhost").as_deref(),
            Some("localhost:6379")
        );
        assert_eq!(
            host_port("postgres://postgres@db/test").as_deref(),
            Some("db:5432")
        );
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("q"), unique_name("q"));
        assert!(unique_name("jararaca_test").starts_with("jararaca_test_"));
    }
}
