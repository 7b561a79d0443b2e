//! One interceptor stack, given once, around every transport's units; and the lifecycle of a
//! service running whole in one process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use jararaca::bus::{BusSettings, Delivery, Message, MessageController, MessageKind, UnitBus};
use jararaca::http::{Controller, HttpApp};
use jararaca::prelude::*;
use jararaca::{BoxError, Envelope, Microservice, Role, Unit, UnitKind};
use jararaca_query::{Db, Sql, TransactionLayer, use_session};
use tokio::sync::Notify;
use tower::{ServiceBuilder, ServiceExt};

#[derive(serde::Serialize, serde::Deserialize)]
struct Note {
    text: String,
    fail: bool,
}

impl Message for Note {
    const TOPIC: &'static str = "note.written";
    const KIND: MessageKind = MessageKind::Event;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Noted {
    text: String,
}

impl Message for Noted {
    const TOPIC: &'static str = "note.noted";
    const KIND: MessageKind = MessageKind::Event;
}

/// What the units did, in order.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    changed: Notify,
}

impl Log {
    fn push(&self, line: impl Into<String>) {
        self.lines.lock().unwrap().push(line.into());
        self.changed.notify_waiters();
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    async fn wait_for(&self, line: &str) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.lines().iter().any(|l| l == line) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("no `{line}` in {:?}", self.lines()));
    }
}

/// Counts units by kind: the interceptor under test.
#[derive(Default)]
struct Seen {
    http: AtomicUsize,
    messages: AtomicUsize,
}

fn counting(seen: Arc<Seen>) -> tower::util::MapRequestLayer<impl Fn(Unit) -> Unit + Clone> {
    tower::util::MapRequestLayer::new(move |unit: Unit| {
        match unit.kind() {
            UnitKind::Http => seen.http.fetch_add(1, Ordering::SeqCst),
            UnitKind::Message => seen.messages.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        unit
    })
}

async fn on_note(note: Note, _delivery: Delivery) -> Result<(), BoxError> {
    let mut insert = Sql::new();
    insert
        .push("INSERT INTO notes (text) VALUES (")
        .bind(note.text.clone())
        .push(")");
    use_session()?.execute(&insert).await?;
    UnitBus::current()?.publish(&Noted {
        text: note.text.clone(),
    })?;
    if note.fail {
        jararaca::inject::<Log>()
            .await?
            .push(format!("refused {}", note.text));
        return Err("refused".into());
    }
    Ok(())
}

async fn on_noted(noted: Noted, _delivery: Delivery) -> Result<(), BoxError> {
    jararaca::inject::<Log>()
        .await?
        .push(format!("noted {}", noted.text));
    Ok(())
}

async fn ping() -> &'static str {
    "pong"
}

async fn notes(db: &Db) -> Vec<String> {
    let mut select = Sql::new();
    select.push("SELECT text FROM notes ORDER BY text");
    db.session()
        .fetch_map(&select, |row| {
            match row.get_value("text", jararaca_query::ColumnType::Text)? {
                jararaca_query::Value::Text(text) => Ok(text),
                other => panic!("a text column read as {other:?}"),
            }
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn one_stack_wraps_routes_and_handlers_with_a_transaction_made_from_the_container() {
    let db = Db::sqlite_memory().await.unwrap();
    db.execute_script("CREATE TABLE notes (text TEXT NOT NULL)")
        .await
        .unwrap();
    let seen = Arc::new(Seen::default());
    let app = Microservice::new("units")
        .providers(|c| c.value(db.clone()).value(Log::default()))
        .controller(Controller::new("Ping", "/ping").get("/", ping))
        .controller(
            MessageController::new("Notes")
                .handler_with::<Note, _, _>("on_note", on_note, |h| h.dead_letter_on_error())
                .handler::<Noted, _, _>("on_noted", on_noted),
        )
        .with(BusSettings::default())
        .interceptor_with({
            let seen = Arc::clone(&seen);
            move |c| {
                Ok(ServiceBuilder::new()
                    .layer(counting(seen))
                    .layer(TransactionLayer::new((*c.get::<Db>()?).clone())))
            }
        })
        .build()
        .await
        .unwrap();
    let log = app.container().get::<Log>().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(app.worker().unwrap().run(async move {
        let _ = stopped.await;
    }));

    let response = app
        .router()
        .oneshot(Request::get("/ping").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let bus = app.bus().unwrap();
    bus.publish(&Note {
        text: "kept".into(),
        fail: false,
    })
    .await
    .unwrap();
    bus.publish(&Note {
        text: "dropped".into(),
        fail: true,
    })
    .await
    .unwrap();
    log.wait_for("noted kept").await;
    log.wait_for("refused dropped").await;
    // The failed unit rolls back after its handler returned; give it the time to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(());
    worker.await.unwrap().unwrap();

    assert_eq!(notes(&db).await, ["kept"], "the failed unit wrote no row");
    assert!(
        !log.lines().iter().any(|l| l == "noted dropped"),
        "the failed unit published nothing: {:?}",
        log.lines()
    );
    assert_eq!(
        seen.http.load(Ordering::SeqCst),
        1,
        "the route was intercepted"
    );
    assert!(
        seen.messages.load(Ordering::SeqCst) >= 3,
        "both notes and the published `noted` were intercepted"
    );
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Slow {
    millis: u64,
}

impl Message for Slow {
    const TOPIC: &'static str = "work.slow";
    const KIND: MessageKind = MessageKind::Task;
}

async fn on_slow(slow: Slow, _delivery: Delivery) -> Result<(), BoxError> {
    let log = jararaca::inject::<Log>().await?;
    log.push("handler started");
    tokio::time::sleep(Duration::from_millis(slow.millis)).await;
    log.push("handler finished");
    Ok(())
}

#[tokio::test]
async fn all_in_one_runs_startup_hooks_first_and_shutdown_hooks_after_the_handler_drained() {
    let service = Microservice::new("lifecycle")
        .providers(|c| c.value(Log::default()))
        .controller(Controller::new("Ping", "/ping").get("/", ping))
        .controller(MessageController::new("Work").handler::<Slow, _, _>("on_slow", on_slow))
        .with(BusSettings::default())
        .on_startup("startup", |c| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.get::<Log>()?.push("startup hook");
            Ok(())
        })
        .on_shutdown("shutdown", |c| async move {
            c.get::<Log>()?.push("shutdown hook");
            Ok(())
        });
    let matches = jararaca::cli::command(&service, &[])
        .try_get_matches_from(["lifecycle", "server", "--host", "127.0.0.1", "--port", "0"])
        .unwrap();
    let role = Role::with_matches(
        Role::SERVER,
        matches.subcommand_matches(Role::SERVER).unwrap().clone(),
    );
    let app = service.build_for(role.clone()).await.unwrap();
    let log = app.container().get::<Log>().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let app = app.clone();
        async move {
            app.run(&role, async move {
                let _ = stopped.await;
            })
            .await
        }
    });
    // Published before the startup hooks are done: the handler only runs after them.
    app.bus()
        .unwrap()
        .publish(&Slow { millis: 500 })
        .await
        .unwrap();
    log.wait_for("handler started").await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
    let lines = log.lines();
    let position = |line: &str| lines.iter().position(|l| l == line).unwrap();
    assert_eq!(lines[0], "startup hook", "{lines:?}");
    assert!(
        position("handler finished") < position("shutdown hook"),
        "the shutdown hooks ran after the in-flight handler finished: {lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("shutdown hook"));
}

#[tokio::test]
async fn an_unreachable_broker_fails_the_build_with_its_reason() {
    let error = Microservice::new("unreachable")
        .controller(MessageController::new("Work").handler::<Slow, _, _>("on_slow", on_slow))
        .with(BusSettings {
            broker_url: Some(
                "amqp://guest:guest@127.0.0.1:1/%2f?exchange=x&connection_retry_max=0".into(),
            ),
            backend_url: Some("redis://127.0.0.1:1".into()),
        })
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("RabbitMQ") && error.contains("BROKER_URL"),
        "the error names what could not be reached: {error}"
    );
}
