//! The transactional outbox on a SQLite file and on PostgreSQL: rows commit and roll back
//! with the unit, the relay publishes each committed row and deletes it, a relay killed
//! between publishing and deleting leaves the row to be published again with the same
//! message id, and two relays on one table never both publish a row.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use jararaca_bus::outbox::OutboxMessage;
use jararaca_bus::{
    Bus, BusError, BusLayer, InMemoryBroker, Message, MessageKind, Outgoing, Publisher, UnitBus,
};
use jararaca_di::{BoxError, UnitOfWorkLayer};
use jararaca_query::outbox::{self, SqlOutbox};
use jararaca_query::{Db, Session, Sql, TransactionLayer};
use serde::{Deserialize, Serialize};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

macro_rules! on_isolated_backends {
    ($($suite:ident),* $(,)?) => {
        mod sqlite_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $suite() {
                    $crate::common::with_sqlite_file(super::$suite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $suite() {
                    $crate::common::with_postgres(super::$suite).await;
                }
            )*
        }
    };
}

on_isolated_backends!(
    rows_commit_and_roll_back_with_the_unit,
    a_row_outlives_a_broker_that_refuses_it,
    a_relay_killed_before_deleting_publishes_again_with_the_same_id,
    two_relays_never_both_publish_a_row,
    a_unit_without_statements_still_writes_its_messages,
    the_first_unit_creates_the_table,
    a_refused_message_is_dead_lettered_and_holds_back_nothing,
);

#[derive(Debug, Serialize, Deserialize)]
struct Made {
    n: u32,
}

impl Message for Made {
    const TOPIC: &'static str = "thing.made";
    const KIND: MessageKind = MessageKind::Event;
}

fn broker() -> InMemoryBroker {
    let broker = InMemoryBroker::new();
    broker.declare_queue("probe", "thing.made.#");
    broker
}

/// A unit of work per request: inserts `victims(n)` when `touch_db`, publishes `Made { n }`,
/// and fails when `fail`.
#[derive(Clone, Copy)]
struct Work {
    n: u32,
    fail: bool,
    touch_db: bool,
}

fn units(
    db: &Db,
    bus: &Bus,
) -> impl Service<http::Request<Work>, Response = (), Error = BoxError, Future: Send> + Clone + use<>
{
    ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(BusLayer::new(bus.clone()))
        .layer(TransactionLayer::new(db.clone()))
        .service(service_fn(|req: http::Request<Work>| async move {
            let work = *req.body();
            if work.touch_db {
                let session = Session::from_extensions(req.extensions())?;
                let mut sql = Sql::new();
                sql.push("INSERT INTO victims VALUES (")
                    .bind(i64::from(work.n))
                    .push(")");
                session.execute(&sql).await?;
            }
            UnitBus::from_extensions(req.extensions())?.publish(&Made { n: work.n })?;
            if work.fail {
                return Err::<(), BoxError>("the unit fails".into());
            }
            Ok(())
        }))
}

async fn run<S>(service: &S, work: Work) -> Result<(), BoxError>
where
    S: Service<http::Request<Work>, Response = (), Error = BoxError> + Clone,
{
    service.clone().oneshot(http::Request::new(work)).await
}

async fn outbox_rows(db: &Db) -> i64 {
    db.session()
        .fetch_i64(Sql::new().push("SELECT count(*) FROM jararaca_outbox"))
        .await
        .expect("count outbox rows")
}

async fn victims(db: &Db, n: u32) -> i64 {
    db.session()
        .fetch_i64(
            Sql::new()
                .push("SELECT count(*) FROM victims WHERE id = ")
                .bind(i64::from(n)),
        )
        .await
        .expect("count victims")
}

/// Waits (bounded) until `probe` holds `count` messages, and returns their bodies.
async fn published(broker: &InMemoryBroker, count: usize) -> Vec<jararaca_bus::StoredMessage> {
    for _ in 0..500 {
        let messages = broker.peek("probe");
        if messages.len() >= count {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.peek("probe")
}

async fn empty_outbox(db: &Db) {
    for _ in 0..500 {
        if outbox_rows(db).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the outbox still holds {} rows", outbox_rows(db).await);
}

async fn rows_commit_and_roll_back_with_the_unit(db: Db) {
    outbox::migrate(&db).await.unwrap();
    let broker = broker();
    let bus = Bus::new(broker.clone());
    let service = units(&db, &bus);

    run(
        &service,
        Work {
            n: 101,
            fail: true,
            touch_db: true,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(victims(&db, 101).await, 0);
    assert_eq!(
        outbox_rows(&db).await,
        0,
        "a failed unit writes no outbox row"
    );

    run(
        &service,
        Work {
            n: 103,
            fail: false,
            touch_db: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(victims(&db, 103).await, 1);
    let messages = published(&broker, 1).await;
    let bodies: Vec<_> = messages.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, [br#"{"n":103}"#.to_vec()]);
    assert!(messages[0].message_id.is_some());
    empty_outbox(&db).await;
    bus.drain_outboxes(Duration::from_secs(5)).await;
}

/// A publisher that refuses everything, as a broker that is down.
#[derive(Debug)]
struct Down;

impl Publisher for Down {
    fn publish(&self, _message: Outgoing) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async { Err(BusError::Config("the broker is down".into())) })
    }
}

async fn a_row_outlives_a_broker_that_refuses_it(db: Db) {
    outbox::migrate(&db).await.unwrap();
    let down = Bus::new(Down).with_relay_options(jararaca_bus::outbox::RelayOptions {
        retry_delay: Duration::from_millis(20),
        ..Default::default()
    });
    let service = units(&db, &down);
    run(
        &service,
        Work {
            n: 5,
            fail: false,
            touch_db: true,
        },
    )
    .await
    .expect("the unit succeeds although the broker is down");
    for _ in 0..200 {
        if down.outbox_failures() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(down.outbox_failures() > 0, "the relay tried and counted");
    assert_eq!(outbox_rows(&db).await, 1, "the row waits for the broker");
    down.drain_outboxes(Duration::from_millis(200)).await;
    assert_eq!(outbox_rows(&db).await, 1, "draining does not drop it");

    // The broker is back (another process, say): the row goes out, then is deleted.
    let broker = broker();
    let up = Bus::new(broker.clone());
    up.attach_outbox(SqlOutbox::source(&db));
    let messages = published(&broker, 1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, br#"{"n":5}"#);
    empty_outbox(&db).await;
    up.drain_outboxes(Duration::from_secs(5)).await;
}

async fn a_relay_killed_before_deleting_publishes_again_with_the_same_id(db: Db) {
    outbox::migrate(&db).await.unwrap();
    // Write a row with a bus whose relay never runs: it refuses, and is stopped at once.
    let down = Bus::new(Down);
    let service = units(&db, &down);
    run(
        &service,
        Work {
            n: 7,
            fail: false,
            touch_db: false,
        },
    )
    .await
    .unwrap();
    down.drain_outboxes(Duration::from_millis(50)).await;
    assert_eq!(outbox_rows(&db).await, 1);

    // A relay claims the row and publishes it, then dies before deleting it.
    let broker = broker();
    let source = SqlOutbox::source(&db);
    let claim = source.claim(10).await.unwrap();
    let row = &claim.rows()[0];
    let Ok(OutboxMessage::Publish(outgoing)) = &row.message else {
        panic!("a publish row: {row:?}");
    };
    broker.publish(outgoing.clone()).await.unwrap();
    drop(claim);
    if let Some(pool) = db.as_sqlite() {
        // A SQLite claim is a lease: let it run out.
        sqlx::query("UPDATE jararaca_outbox SET lease_until = 0")
            .execute(pool)
            .await
            .unwrap();
    }

    let bus = Bus::new(broker.clone());
    bus.attach_outbox(Arc::clone(&source));
    let messages = published(&broker, 2).await;
    assert_eq!(messages.len(), 2, "published again");
    assert_eq!(messages[0].message_id, messages[1].message_id);
    assert_eq!(messages[0].body, messages[1].body);
    empty_outbox(&db).await;
    bus.drain_outboxes(Duration::from_secs(5)).await;
}

async fn two_relays_never_both_publish_a_row(db: Db) {
    outbox::migrate(&db).await.unwrap();
    const UNITS: u32 = 200;
    let broker = broker();
    // Two buses, as two processes: each runs its own relay on the one table.
    let first = Bus::new(broker.clone()).with_relay_options(jararaca_bus::outbox::RelayOptions {
        batch_size: 7,
        poll_interval: Duration::from_millis(5),
        ..Default::default()
    });
    let second = Bus::new(broker.clone()).with_relay_options(jararaca_bus::outbox::RelayOptions {
        batch_size: 7,
        poll_interval: Duration::from_millis(5),
        ..Default::default()
    });
    second.attach_outbox(SqlOutbox::source(&db));
    let one = units(&db, &first);
    let two = units(&db, &second);
    let writes = (0..UNITS).map(|n| {
        let work = Work {
            n: 1000 + n,
            fail: false,
            touch_db: n % 2 == 1,
        };
        let (one, two) = (one.clone(), two.clone());
        tokio::spawn(async move {
            if n % 2 == 0 {
                run(&one, work).await
            } else {
                run(&two, work).await
            }
        })
    });
    for write in futures_util::future::join_all(writes).await {
        write.unwrap().unwrap();
    }
    let messages = published(&broker, UNITS as usize).await;
    empty_outbox(&db).await;
    first.drain_outboxes(Duration::from_secs(5)).await;
    second.drain_outboxes(Duration::from_secs(5)).await;
    let messages_after = broker.peek("probe");
    assert_eq!(
        messages_after.len(),
        messages.len(),
        "nothing published late"
    );
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for message in &messages_after {
        *by_id
            .entry(message.message_id.clone().unwrap())
            .or_default() += 1;
    }
    assert_eq!(by_id.len(), UNITS as usize);
    let twice: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "published by both relays: {twice:?}");
}

async fn a_unit_without_statements_still_writes_its_messages(db: Db) {
    outbox::migrate(&db).await.unwrap();
    let down = Bus::new(Down);
    let service = units(&db, &down);
    run(
        &service,
        Work {
            n: 9,
            fail: false,
            touch_db: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        outbox_rows(&db).await,
        1,
        "written in a transaction of its own"
    );
    run(
        &service,
        Work {
            n: 11,
            fail: true,
            touch_db: false,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(outbox_rows(&db).await, 1, "a failed unit writes nothing");
    down.drain_outboxes(Duration::from_millis(50)).await;
}

async fn the_first_unit_creates_the_table(db: Db) {
    let broker = broker();
    let bus = Bus::new(broker.clone());
    let service = units(&db, &bus);
    // Concurrent first units: one creates the table, the others wait for it.
    let writes = (0..4).map(|n| {
        let service = service.clone();
        tokio::spawn(async move {
            run(
                &service,
                Work {
                    n: 200 + n,
                    fail: false,
                    touch_db: true,
                },
            )
            .await
        })
    });
    for write in futures_util::future::join_all(writes).await {
        write.unwrap().unwrap();
    }
    assert_eq!(published(&broker, 4).await.len(), 4);
    empty_outbox(&db).await;
    bus.drain_outboxes(Duration::from_secs(5)).await;
}

#[derive(Debug, Serialize, Deserialize)]
struct Orphan {
    n: u32,
}

/// A task no queue is bound for: the broker refuses it.
impl Message for Orphan {
    const TOPIC: &'static str = "nobody.listens";
    const KIND: MessageKind = MessageKind::Task;
}

async fn a_refused_message_is_dead_lettered_and_holds_back_nothing(db: Db) {
    outbox::migrate(&db).await.unwrap();
    let broker = broker();
    let bus = Bus::new(broker.clone()).with_relay_options(jararaca_bus::outbox::RelayOptions {
        batch_size: 2,
        poll_interval: Duration::from_millis(5),
        retry_delay: Duration::from_millis(5),
    });
    // Refused tasks first, filling whole batches, then messages that can be delivered.
    let orphans = ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(BusLayer::new(bus.clone()))
        .layer(TransactionLayer::new(db.clone()))
        .service(service_fn(|req: http::Request<u32>| async move {
            UnitBus::from_extensions(req.extensions())?.publish(&Orphan { n: *req.body() })?;
            Ok::<(), BoxError>(())
        }));
    for n in 0..4 {
        orphans
            .clone()
            .oneshot(http::Request::new(n))
            .await
            .unwrap();
    }
    let service = units(&db, &bus);
    for n in 0..3 {
        run(
            &service,
            Work {
                n: 300 + n,
                fail: false,
                touch_db: false,
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        published(&broker, 3).await.len(),
        3,
        "the refused rows held nothing back"
    );
    empty_outbox(&db).await;
    let dead = broker.dead_letters();
    assert_eq!(dead.len(), 4, "each refused task is dead-lettered once");
    assert!(dead.iter().all(|d| d.reason == "unroutable"), "{dead:?}");
    bus.drain_outboxes(Duration::from_secs(5)).await;
}
