//! The `declare` command against a real RabbitMQ: idempotent, a conflict exits non-zero,
//! `--force` recreates.
#![cfg(feature = "bus")]

use std::process::ExitCode;

use jararaca::bus::{Delivery, Message, MessageBus, MessageController, MessageKind};
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
    let channel = connection.create_channel().await.unwrap();

    let first = declare(&name, &url, &[]).await;
    let again = declare(&name, &url, &[]).await;
    // The queue exists with the reference's arguments: a passive declare finds it.
    let passive = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .is_ok();

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
