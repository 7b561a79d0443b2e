//! The `outbox` workload: `POST /tasks` that inserts a row and publishes `task.created` in
//! one unit of work, on PostgreSQL and RabbitMQ, through the transactional outbox (the row
//! and an outbox row commit together; the relay publishes with confirms and deletes) and
//! through after-commit publishing (the unit waits for the broker's confirm), alternating in
//! one run, median of at least three runs.
//!
//! Requests go through the router in process from `--concurrency` closed-loop tasks, so the
//! comparison is of the two publishing paths, not of a socket stack. Every message carries
//! the instant its handler returned (just before the commit); a publisher wrapper notes when
//! the broker confirmed it, which gives the publish latency from commit to confirm.

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use futures_util::future::BoxFuture;
use jararaca_bus::{
    AmqpPublisher, BrokerUrl, Bus, BusError, BusLayer, Message, MessageKind, Outgoing, Publisher,
    UnitBus,
};
use jararaca_di::UnitOfWorkLayer;
use jararaca_query::{Db, QueryError, Session, Sql, TransactionLayer};
use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use tower::{ServiceBuilder, ServiceExt};
use uuid::Uuid;

use crate::harness::{self, BoxError, median};

const DEFAULT_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_DATABASE: &str = "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA: &str = "jararaca_bench_outbox";

/// Options of the `outbox` workload.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    runs: usize,
    seconds: u64,
    concurrency: usize,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            runs: 3,
            seconds: 5,
            concurrency: 32,
        };
        for (flag, number) in harness::numeric_flags(args)? {
            match flag {
                "--runs" => options.runs = (number as usize).max(3),
                "--seconds" => options.seconds = number.max(1),
                "--concurrency" => options.concurrency = (number as usize).max(1),
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        Ok(options)
    }
}

pub(crate) fn run(options: &Options) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    harness::report("outbox", runtime, bench(options))
}

/// The message each request publishes.
#[derive(Debug, Serialize, Deserialize)]
struct TaskCreated {
    id: Uuid,
    /// Nanoseconds from the bench's start to the end of the handler (just before commit).
    at: u64,
}

impl Message for TaskCreated {
    const TOPIC: &'static str = "bench.task.created";
    const KIND: MessageKind = MessageKind::Event;
}

#[derive(Debug, Deserialize)]
struct CreateTask {
    title: String,
}

/// Notes, for every confirmed message, how long after its handler returned it was
/// confirmed.
#[derive(Debug)]
struct Timed {
    inner: AmqpPublisher,
    start: Instant,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

impl Timed {
    fn note(&self, messages: &[Outgoing], results: &[Result<(), BusError>]) {
        let now = self.start.elapsed();
        let mut latencies = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        for (message, result) in messages.iter().zip(results) {
            if result.is_ok()
                && let Ok(created) = serde_json::from_slice::<TaskCreated>(&message.body)
            {
                latencies.push(now.saturating_sub(Duration::from_nanos(created.at)));
            }
        }
    }
}

impl Publisher for Timed {
    fn publish(&self, message: Outgoing) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let mut results = self.publish_each(vec![message]).await;
            results.pop().unwrap_or(Ok(()))
        })
    }

    fn publish_each(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Vec<Result<(), BusError>>> {
        Box::pin(async move {
            let results = self.inner.publish_each(messages.clone()).await;
            self.note(&messages, &results);
            results
        })
    }
}

async fn create(
    session: Session,
    bus: UnitBus,
    axum::Json(task): axum::Json<CreateTask>,
    start: Instant,
) -> Result<http::StatusCode, QueryError> {
    let id = Uuid::new_v4();
    let mut insert = Sql::new();
    insert
        .push("INSERT INTO bench_tasks (id, title) VALUES (")
        .bind(id)
        .push(", ")
        .bind(task.title)
        .push(")");
    session.execute(&insert).await?;
    let at = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    bus.publish(&TaskCreated { id, at })
        .map_err(|e| QueryError::Config(e.to_string()))?;
    Ok(http::StatusCode::CREATED)
}

fn router(db: &Db, bus: &Bus, outbox: bool, start: Instant) -> Router {
    let transaction = if outbox {
        TransactionLayer::new(db.clone())
    } else {
        TransactionLayer::new(db.clone()).after_commit_publishing()
    };
    Router::new()
        .route(
            "/tasks",
            post(move |session, bus, body| create(session, bus, body, start)),
        )
        .layer(
            ServiceBuilder::new()
                .layer(UnitOfWorkLayer::new())
                .layer(BusLayer::new(bus.clone()))
                .layer(transaction),
        )
}

/// Closed-loop `POST /tasks` from `concurrency` tasks for `seconds`: requests per second.
async fn load(router: &Router, concurrency: usize, seconds: u64) -> Result<f64, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let request = http::Request::post("/tasks")
                        .header("content-type", "application/json")
                        .body(Body::from(r#"{"title":"a task"}"#))
                        .map_err(|e| e.to_string())?;
                    let response = router
                        .clone()
                        .oneshot(request)
                        .await
                        .map_err(|e| e.to_string())?;
                    if response.status() != http::StatusCode::CREATED {
                        return Err(format!("POST /tasks answered {}", response.status()));
                    }
                    done += 1;
                }
                Ok::<u64, String>(done)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get(sorted.len().saturating_sub(1) * p / 100)
        .copied()
        .unwrap_or_default()
}

async fn schema(url: &str) -> Result<Db, BoxError> {
    let admin = sqlx::PgPool::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; \
         CREATE TABLE {SCHEMA}.bench_tasks (id uuid PRIMARY KEY, title text NOT NULL);"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    let options =
        sqlx::postgres::PgConnectOptions::from_str(url)?.options([("search_path", SCHEMA)]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(24)
        .connect_with(options)
        .await?;
    let db = Db::from_postgres(pool);
    jararaca_query::outbox::migrate(&db).await?;
    Ok(db)
}

async fn bench(options: &Options) -> Result<f64, BoxError> {
    let amqp = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP.to_owned());
    let database = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE.to_owned());
    let exchange = format!("jararaca_bench_outbox_{}", std::process::id());
    let setup = Connection::connect(&amqp, ConnectionProperties::default()).await?;
    let channel = setup.create_channel().await?;
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let url = BrokerUrl::parse(&format!("{amqp}?exchange={exchange}&prefetch_count=1"))?;
    let db = schema(&database).await?;
    let start = Instant::now();
    let result = compare(options, &db, &url, start).await;
    db.close().await;
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await?;
    let _ = setup.close(200, "done".into()).await;
    let admin = sqlx::PgPool::connect(&database).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"
    )))
    .execute(&admin)
    .await?;
    result
}

async fn compare(
    options: &Options,
    db: &Db,
    url: &BrokerUrl,
    start: Instant,
) -> Result<f64, BoxError> {
    let mut ratios = Vec::new();
    for round in 0..options.runs {
        let mut rps = [0.0; 2];
        // Alternate which path goes first.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for outbox in order {
            let latencies = Arc::new(Mutex::new(Vec::new()));
            let bus = Bus::new(Timed {
                inner: AmqpPublisher::connect(url).await?,
                start,
                latencies: Arc::clone(&latencies),
            });
            let router = router(db, &bus, outbox, start);
            let measured = load(&router, options.concurrency, options.seconds).await?;
            // What the relay has not published yet goes out before the numbers are read.
            bus.drain_outboxes(Duration::from_secs(60)).await;
            let mut latencies = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
            latencies.sort_unstable();
            let name = if outbox { "outbox" } else { "after-commit" };
            println!(
                "run {round} {name:>12}: {measured:>8.0} req/s, commit to confirm p50 {:?} p99 {:?} ({} messages)",
                percentile(&latencies, 50),
                percentile(&latencies, 99),
                latencies.len()
            );
            rps[usize::from(!outbox)] = measured;
            let left: i64 = db
                .session()
                .fetch_i64(Sql::new().push("SELECT count(*) FROM jararaca_outbox"))
                .await?;
            if left != 0 {
                return Err(format!("{left} outbox rows were not relayed").into());
            }
            db.execute_script("TRUNCATE bench_tasks").await?;
        }
        let ratio = rps[0] / rps[1];
        println!("run {round} ratio outbox/after-commit {ratio:.3}");
        ratios.push(ratio);
    }
    Ok(median(&mut ratios))
}
