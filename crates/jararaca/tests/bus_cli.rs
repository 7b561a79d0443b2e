//! The `declare` command against a real RabbitMQ: idempotent, a conflict exits non-zero,
//! `--force` recreates.
#![cfg(feature = "bus")]

use std::process::ExitCode;

use jararaca::bus::{BusSettings, Delivery, Message, MessageBus, MessageController, MessageKind};
use jararaca::{BoxError, Microservice};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

#[derive(serde::Serialize, serde::Deserialize)]
struct Ping {
    n: u32,
}

impl Message for Ping {
    const TOPIC: &'static str = "jararaca_test.ping";
    const KIND: MessageKind = MessageKind::Task;
}

async fn on_ping(_ping: Ping, _delivery: Delivery) -> Result<(), BoxError> {
    Ok(())
}

fn service(name: &str) -> Microservice {
    Microservice::new(name)
        .controller(MessageController::new("Pings").handler::<Ping, _, _>("on_ping", on_ping))
}

/// Whether `queue` exists: a passive declare (on a channel of its own, which a miss closes).
async fn exists(connection: &lapin::Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .is_ok()
}

async fn declare(name: &str, url: &str, extra: &[&str]) -> ExitCode {
    let mut args = vec![name, "declare", "--broker-url", url];
    args.extend_from_slice(extra);
    jararaca::cli::run_from(service(name), args).await
}

#[tokio::test]
async fn declare_is_idempotent_reports_conflicts_and_force_recreates() {
    let Some(amqp) = jararaca_testing::rabbitmq() else {
        return;
    };
    let namespace = jararaca_testing::RabbitNamespace::new(&amqp, "declare").await;
    let name = namespace.exchange().to_owned();
    let url = namespace.broker_url();
    let queue = service(&name)
        .get_capability::<MessageBus>()
        .unwrap()
        .topology(&name)
        .queues[0]
        .name
        .clone();
    assert_eq!(queue, format!("jararaca_test.ping.{name}.Pings.on_ping"));

    let connection = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
        .await
        .unwrap();

    let first = declare(&name, &url, &[]).await;
    let again = declare(&name, &url, &[]).await;
    // The queue exists with the reference's arguments: a passive declare finds it.
    let passive = exists(&connection, &queue).await;

    // Replace it with one of other arguments: declare must refuse, then --force recreates.
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: false,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let conflict = declare(&name, &url, &[]).await;
    let forced = declare(&name, &url, &["--force"]).await;

    let _ = connection.close(200, "done".into()).await;
    namespace.cleanup([queue]).await;

    assert_eq!(first, ExitCode::SUCCESS);
    assert_eq!(again, ExitCode::SUCCESS, "declare is idempotent");
    assert!(passive, "the queue was declared");
    assert_eq!(
        conflict,
        ExitCode::FAILURE,
        "a conflicting queue fails declare"
    );
    assert_eq!(forced, ExitCode::SUCCESS, "--force recreates it");
}

#[tokio::test]
async fn declare_uses_the_broker_the_service_was_given_when_no_option_is() {
    let Some(amqp) = jararaca_testing::rabbitmq() else {
        return;
    };
    let namespace = jararaca_testing::RabbitNamespace::new(&amqp, "declare_in_code").await;
    let name = namespace.exchange().to_owned();
    let with_settings = || {
        service(&name).with(BusSettings {
            broker_url: Some(namespace.broker_url()),
            backend_url: None,
        })
    };
    let queue = with_settings()
        .get_capability::<MessageBus>()
        .unwrap()
        .topology(&name)
        .queues[0]
        .name
        .clone();

    // No `--broker-url`, and BROKER_URL is not read: the service's own settings say where.
    let declared = jararaca::cli::run_from(with_settings(), [name.as_str(), "declare"]).await;
    let connection = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let passive = exists(&connection, &queue).await;
    // Without settings, the option or BROKER_URL, `declare` is a usage error.
    let without = match std::env::var_os("BROKER_URL") {
        None => Some(jararaca::cli::run_from(service(&name), [name.as_str(), "declare"]).await),
        Some(_) => None,
    };

    let _ = connection.close(200, "done".into()).await;
    namespace.cleanup([queue]).await;

    assert_eq!(declared, ExitCode::SUCCESS);
    assert!(passive, "the queue was declared on the service's broker");
    if let Some(without) = without {
        assert_ne!(without, ExitCode::SUCCESS);
    }
}
