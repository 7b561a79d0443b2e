//! `jararaca dlq …` against the real RabbitMQ. Each test has its own exchange, queues and
//! dead-letter names (`--dead-letter-prefix`), filled with dead letters of both kinds: those
//! RabbitMQ dead-lettered (as a Python worker's rejects arrive, with `x-death`) and those a
//! Rust worker published with its headers; each test deletes all of it afterwards.

use std::process::{Output, Stdio};
use std::time::Duration;

use jararaca_bus::{BrokerUrl, DeadLetterNames, QueueSpec, Topology, declare};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value;

struct Namespace {
    amqp: String,
    url: BrokerUrl,
    prefix: String,
    /// Its messages die with RabbitMQ's `x-death`.
    rejected: String,
    /// Its messages were dead-lettered by a worker, with its headers.
    failed: String,
}

impl Namespace {
    async fn new() -> Option<Self> {
        let amqp = jararaca_testing::rabbitmq()?;
        let prefix = jararaca_testing::unique_name("jcli_dlq");
        let url = BrokerUrl::parse(&format!("{amqp}?exchange={prefix}"))
            .unwrap()
            .dead_letter(DeadLetterNames::prefixed(&prefix));
        let ns = Self {
            rejected: format!("orders.created.{prefix}.Orders.on_created"),
            failed: format!("email.send.{prefix}.Emails.send"),
            amqp,
            url,
            prefix,
        };
        let topology = Topology::new()
            .queue(QueueSpec::handler(&ns.rejected, "orders.created"))
            .queue(QueueSpec::handler(&ns.failed, "email.send"));
        declare(&ns.url, &topology, false).await.unwrap();
        Some(ns)
    }

    async fn channel(&self) -> (Connection, Channel) {
        let connection =
            Connection::connect(&self.url.connection_url, ConnectionProperties::default())
                .await
                .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        (connection, channel)
    }

    /// Three messages RabbitMQ dead-letters from `rejected`, two a worker dead-lettered from
    /// `failed`, and one that names no queue.
    async fn seed(&self) {
        let (connection, channel) = self.channel().await;
        let publish = async |exchange: &str, key: &str, body: String, headers: FieldTable| {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type(ShortString::from("application/json"))
                .with_headers(headers);
            channel
                .basic_publish(
                    ShortString::from(exchange),
                    ShortString::from(key),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties,
                )
                .await
                .unwrap()
                .await
                .unwrap();
        };
        for n in 1..=3 {
            publish(
                "",
                &self.rejected,
                format!("{{\"order\":{n}}}"),
                FieldTable::default(),
            )
            .await;
        }
        for _ in 1..=3 {
            let got = channel
                .basic_get(
                    ShortString::from(self.rejected.as_str()),
                    BasicGetOptions::default(),
                )
                .await
                .unwrap()
                .expect("a message to reject");
            got.delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await
                .unwrap();
        }
        let dl = &self.url.dead_letter;
        for n in 1..=2 {
            let mut headers = FieldTable::default();
            for (name, value) in [
                ("x-dead-letter-queue", self.failed.as_str()),
                ("x-dead-letter-reason", "retries-exhausted"),
                ("x-last-error", "smtp timeout"),
            ] {
                headers.insert(
                    ShortString::from(name),
                    AMQPValue::LongString(LongString::from(value)),
                );
            }
            headers.insert(
                ShortString::from("x-retry-count"),
                AMQPValue::ShortShortInt(5),
            );
            publish(
                &dl.exchange,
                &dl.routing_key,
                format!("{{\"email\":{n}}}"),
                headers,
            )
            .await;
        }
        publish(
            &dl.exchange,
            &dl.routing_key,
            "{\"orphan\":1}".to_string(),
            FieldTable::default(),
        )
        .await;
        let _ = connection.close(200, "seeded".into()).await;
        // RabbitMQ dead-letters asynchronously.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.count(&dl.queue).await != Some(6) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the dead letters did not arrive"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn count(&self, queue: &str) -> Option<u32> {
        let (connection, channel) = self.channel().await;
        let count = channel
            .queue_declare(
                ShortString::from(queue),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()
            .map(|q| q.message_count());
        let _ = connection.close(200, "counted".into()).await;
        count
    }

    /// Runs `jararaca dlq <args> --broker-url … --dead-letter-prefix …` with no terminal.
    async fn jararaca(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_jararaca"));
        command
            .arg("dlq")
            .args(args)
            .args([
                "--broker-url",
                &self.amqp,
                "--dead-letter-prefix",
                &self.prefix,
            ])
            .env_remove("BROKER_URL")
            .env_remove("DEAD_LETTER_PREFIX")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .unwrap_or_else(|_| panic!("`jararaca dlq {}` did not finish in 60 s", args.join(" ")))
            .unwrap()
    }

    async fn cleanup(self) {
        let (connection, channel) = self.channel().await;
        let dl = &self.url.dead_letter;
        for queue in [&self.rejected, &self.failed, &dl.queue] {
            let _ = channel
                .queue_delete(
                    ShortString::from(queue.as_str()),
                    QueueDeleteOptions::default(),
                )
                .await;
        }
        for exchange in [&self.url.exchange, &dl.exchange] {
            let _ = channel
                .exchange_delete(
                    ShortString::from(exchange.as_str()),
                    ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    let text = stdout(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_list_read_every_dead_letter_once_and_leave_it_there() {
    let Some(ns) = Namespace::new().await else {
        return;
    };
    ns.seed().await;

    let stats = json(&ns.jararaca(&["stats", "--json"]).await);
    assert_eq!(stats["total_messages"], 6, "{stats}");
    assert_eq!(stats["queues"][&ns.rejected]["count"], 3, "{stats}");
    assert_eq!(stats["queues"][&ns.failed]["count"], 2, "{stats}");
    assert_eq!(stats["queues"]["(unknown)"]["count"], 1, "{stats}");
    let text = stdout(&ns.jararaca(&["stats"]).await);
    assert!(text.contains("holds 6 messages"), "{text}");
    assert!(text.contains(&format!("  3  {}", ns.rejected)), "{text}");

    let listed = json(
        &ns.jararaca(&["list", "--json", "--show-body", "--limit", "100"])
            .await,
    );
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 6, "each message once: {listed:?}");
    let mut bodies: Vec<&str> = listed.iter().map(|m| m["body"].as_str().unwrap()).collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        [
            "{\"email\":1}",
            "{\"email\":2}",
            "{\"order\":1}",
            "{\"order\":2}",
            "{\"order\":3}",
            "{\"orphan\":1}"
        ]
    );
    let rejected: Vec<&Value> = listed
        .iter()
        .filter(|m| m["original_queue"] == ns.rejected.as_str())
        .collect();
    assert_eq!(rejected.len(), 3);
    for m in rejected {
        assert_eq!(m["death_reason"], "rejected", "{m}");
        assert_eq!(m["death_count"], 1, "{m}");
        assert!(
            m["first_death_time"].as_str().unwrap().ends_with('Z'),
            "{m}"
        );
        assert_eq!(m["content_type"], "application/json", "{m}");
    }
    let failed: Vec<&Value> = listed
        .iter()
        .filter(|m| m["original_queue"] == ns.failed.as_str())
        .collect();
    assert_eq!(failed.len(), 2);
    for m in failed {
        assert_eq!(m["death_reason"], "retries-exhausted", "{m}");
        assert_eq!(m["retry_count"], 5, "{m}");
        assert_eq!(m["last_error"], "smtp timeout", "{m}");
    }

    // The default limit, and the filter (a part of the name, in any case).
    let text = stdout(&ns.jararaca(&["list", "--limit", "2"]).await);
    assert!(
        text.contains("[2] Message ID") && !text.contains("[3]"),
        "{text}"
    );
    assert!(!text.contains("Body:"), "{text}");
    let filter = "EMAILS.SEND";
    let text = stdout(
        &ns.jararaca(&["list", "--queue", filter, "--show-body"])
            .await,
    );
    assert!(text.contains("showing 2 messages"), "{text}");
    assert!(
        text.contains("Body: {\"email\":1}") && text.contains("Last Error: smtp timeout"),
        "{text}"
    );
    let text = stdout(&ns.jararaca(&["list", "--queue", "no-such-queue"]).await);
    assert!(text.contains("No message"), "{text}");

    assert_eq!(
        ns.count(&ns.url.dead_letter.queue).await,
        Some(6),
        "nothing was removed"
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_returns_messages_to_their_queues_and_purge_empties_the_queue() {
    let Some(ns) = Namespace::new().await else {
        return;
    };
    ns.seed().await;
    let dlq = ns.url.dead_letter.queue.clone();

    // Without a terminal, nobody can confirm: both refuse and change nothing.
    for command in ["requeue", "purge"] {
        let out = ns.jararaca(&[command]).await;
        assert_eq!(out.status.code(), Some(1), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("-f/--force"), "{command}: {err}");
    }
    assert_eq!(ns.count(&dlq).await, Some(6));

    let text = stdout(&ns.jararaca(&["requeue", "--queue", "emails", "-f"]).await);
    assert_eq!(text, "Requeued 2 messages to the queues they died in.\n");
    assert_eq!(ns.count(&ns.failed).await, Some(2));
    assert_eq!(ns.count(&dlq).await, Some(4));

    // The copy is the message, with a fresh retry budget and the reference's marker.
    let (connection, channel) = ns.channel().await;
    let got = channel
        .basic_get(
            ShortString::from(ns.failed.as_str()),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .unwrap()
        .delivery;
    assert!(got.data.starts_with(b"{\"email\":"));
    let headers = got.properties.headers().clone().unwrap_or_default();
    let headers = headers.inner();
    assert_eq!(
        headers.get(&ShortString::from("x-requeued-from-dlq")),
        Some(&AMQPValue::Boolean(true))
    );
    assert!(!headers.contains_key(&ShortString::from("x-retry-count")));
    assert_eq!(
        got.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(*got.properties.delivery_mode(), Some(2));
    let _ = connection.close(200, "read".into()).await;

    // One requeued by limit; then the queue the others died in is gone: they stay, and
    // the report says why, as it does for the one that names no queue.
    let text = stdout(&ns.jararaca(&["requeue", "--limit", "1", "-f"]).await);
    assert_eq!(text, "Requeued 1 message to the queues they died in.\n");
    assert_eq!(ns.count(&ns.rejected).await, Some(1));
    let (connection, channel) = ns.channel().await;
    channel
        .queue_delete(
            ShortString::from(ns.rejected.as_str()),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "deleted".into()).await;
    let text = stdout(&ns.jararaca(&["requeue", "-f"]).await);
    assert_eq!(
        text,
        format!(
            "Requeued 0 messages to the queues they died in.\n\
             Left 1 message in `{dlq}`: no header names the queue they died in.\n\
             Left 2 messages in `{dlq}`: the queue they died in no longer exists.\n"
        )
    );
    assert_eq!(ns.count(&dlq).await, Some(3));

    let text = stdout(&ns.jararaca(&["purge", "--force"]).await);
    assert_eq!(text, format!("Purged 3 messages from `{dlq}`.\n"));
    assert_eq!(ns.count(&dlq).await, Some(0));
    let text = stdout(&ns.jararaca(&["purge"]).await);
    assert!(text.contains("already empty"), "{text}");
    let text = stdout(&ns.jararaca(&["stats"]).await);
    assert!(text.contains("is empty"), "{text}");
    ns.cleanup().await;
}

#[tokio::test]
async fn a_missing_dead_letter_queue_is_an_error_that_says_what_to_do() {
    let Some(amqp) = jararaca_testing::rabbitmq() else {
        return;
    };
    let prefix = jararaca_testing::unique_name("jcli_none");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_jararaca"))
        .args([
            "dlq",
            "stats",
            "--broker-url",
            &amqp,
            "--dead-letter-prefix",
            &prefix,
        ])
        .env_remove("BROKER_URL")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("finishes in 60 s")
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{prefix}.dlq")) && err.contains("declare"),
        "{err}"
    );
}
