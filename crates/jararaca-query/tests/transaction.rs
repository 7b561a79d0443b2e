//! The transaction layer inside the unit of work, around handler-style services and an axum
//! router, on a SQLite file and on PostgreSQL (both with real isolation between
//! connections, so "not committed" is observable).

mod common;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use common::Task;
use http_body_util::BodyExt;
use jararaca_di::{BoxError, Envelope, UnitKind, UnitOfWorkLayer, use_unit_of_work};
use jararaca_query::{
    CrudOperations, Db, Direction, Fields, NoTransaction, NoTransactionLayer, PaginatedFilter,
    QueryError, QueryOperations, Session, Sql, TransactionLayer, use_session, use_transaction,
};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use uuid::Uuid;

macro_rules! on_isolated_backends {
    ($($suite:ident),* $(,)?) => {
        mod sqlite_file {
            $(
                #[tokio::test]
                async fn $suite() {
                    $crate::common::with_sqlite_file(super::$suite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $suite() {
                    $crate::common::with_postgres(super::$suite).await;
                }
            )*
        }
    };
}

on_isolated_backends!(
    handlers_commit_before_publishing_and_roll_back_on_err,
    the_transaction_is_shared_within_a_unit_and_invisible_outside,
    a_failing_commit_fails_the_unit_and_drops_the_publish,
    http_routes_commit_on_success_and_roll_back_on_errors,
    a_cancelled_unit_rolls_back_and_frees_the_connection,
    units_can_opt_out_of_the_transaction,
    the_transaction_begins_only_when_used,
);

type Log = Arc<Mutex<Vec<String>>>;

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// A bus delivery: a non-HTTP unit of work.
struct Delivery {
    title: String,
    fail: bool,
    extensions: http::Extensions,
}

impl Delivery {
    fn new(title: &str, fail: bool) -> Self {
        Self {
            title: title.to_string(),
            fail,
            extensions: http::Extensions::new(),
        }
    }
}

impl Envelope for Delivery {
    fn kind(&self) -> UnitKind {
        UnitKind::Message
    }
    fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }
    fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }
    fn header(&self, _name: &str) -> Option<Cow<'_, str>> {
        None
    }
}

async fn committed(db: &Db, id: Uuid) -> bool {
    CrudOperations::<Task>::on(db.session())
        .exists(id)
        .await
        .unwrap()
}

async fn count_titled(db: &Db, title: &str) -> i64 {
    let mut sql = Sql::new();
    sql.push("SELECT count(*) FROM ")
        .ident("tasks")
        .push(" WHERE ")
        .ident("title")
        .push(" = ")
        .bind(title);
    db.session().fetch_i64(&sql).await.unwrap()
}

/// Registers a publish that records whether the row is visible from another connection, i.e.
/// whether the commit already happened.
fn publish_after_commit(db: &Db, log: &Log, id: Uuid, what: String) -> Result<(), BoxError> {
    let (db, log) = (db.clone(), Arc::clone(log));
    use_unit_of_work()?.after_commit("publish", move || async move {
        let visible = committed(&db, id).await;
        log.lock()
            .unwrap()
            .push(format!("{what} committed={visible}"));
        Ok(())
    })?;
    Ok(())
}

async fn handlers_commit_before_publishing_and_roll_back_on_err(db: Db) {
    let log = Log::default();
    let service = {
        let (db, log) = (db.clone(), Arc::clone(&log));
        ServiceBuilder::new()
            .layer(UnitOfWorkLayer::new())
            .layer(TransactionLayer::new(db.clone()))
            .service(service_fn(move |delivery: Delivery| {
                let (db, log) = (db.clone(), Arc::clone(&log));
                async move {
                    let task = CrudOperations::<Task>::new()
                        .create(&Task::new(&delivery.title, 1))
                        .await?;
                    publish_after_commit(&db, &log, task.id, delivery.title.clone())?;
                    if delivery.fail {
                        return Err::<Uuid, BoxError>("handler failed".into());
                    }
                    Ok(task.id)
                }
            }))
    };

    let id = service
        .clone()
        .oneshot(Delivery::new("ok", false))
        .await
        .unwrap();
    assert!(committed(&db, id).await);
    assert_eq!(
        entries(&log),
        ["ok committed=true"],
        "commit happens before the action"
    );

    let err = service
        .oneshot(Delivery::new("bad", true))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "handler failed");
    assert_eq!(
        count_titled(&db, "bad").await,
        0,
        "a failed unit commits nothing"
    );
    assert_eq!(
        entries(&log),
        ["ok committed=true"],
        "a failed unit publishes nothing"
    );
}

async fn the_transaction_is_shared_within_a_unit_and_invisible_outside(db: Db) {
    let service = {
        let db = db.clone();
        UnitOfWorkLayer::new().layer(TransactionLayer::new(db.clone()).layer(service_fn(
            move |delivery: Delivery| {
                let db = db.clone();
                async move {
                    // Written through the extensions' session, read through the ambient one.
                    let session = Session::from_extensions(delivery.extensions())?;
                    assert!(session.is_transactional());
                    let task = CrudOperations::<Task>::on(session)
                        .create(&Task::new(&delivery.title, 1))
                        .await?;
                    let seen = CrudOperations::<Task>::new().get(task.id).await?;
                    assert_eq!(seen.title, delivery.title);
                    let listed = QueryOperations::<Task>::new(Fields::of::<Task>())
                        .query(&PaginatedFilter::default())
                        .await?;
                    assert_eq!(listed.unpaginated_total, 1);
                    // Other connections do not see it before the commit.
                    assert!(!committed(&db, task.id).await);
                    Ok::<_, BoxError>(task.id)
                }
            },
        )))
    };
    let id = service
        .oneshot(Delivery::new("shared", false))
        .await
        .unwrap();
    assert!(committed(&db, id).await);
}

async fn a_failing_commit_fails_the_unit_and_drops_the_publish(db: Db) {
    let log = Log::default();
    let service = {
        let log = Arc::clone(&log);
        ServiceBuilder::new()
            .layer(UnitOfWorkLayer::new())
            .layer(TransactionLayer::new(db.clone()))
            .service(service_fn(move |_delivery: Delivery| {
                let log = Arc::clone(&log);
                async move {
                    // A deferred foreign key is checked only at COMMIT.
                    let mut sql = Sql::new();
                    sql.push("INSERT INTO ")
                        .ident("children")
                        .push(" (")
                        .ident("id")
                        .push(", ")
                        .ident("parent_id")
                        .push(") VALUES (")
                        .bind(Uuid::new_v4())
                        .push(", ")
                        .bind(Uuid::new_v4())
                        .push(")");
                    use_session()?.execute(&sql).await?;
                    let log = Arc::clone(&log);
                    use_unit_of_work()?.after_commit("publish", move || async move {
                        log.lock().unwrap().push("published".into());
                        Ok(())
                    })?;
                    Ok::<_, BoxError>("handler done")
                }
            }))
    };
    let err = service
        .oneshot(Delivery::new("orphan", false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("transaction"), "{err}");
    assert!(
        entries(&log).is_empty(),
        "nothing is published after a failed commit"
    );
    let mut sql = Sql::new();
    sql.push("SELECT count(*) FROM ").ident("children");
    assert_eq!(db.session().fetch_i64(&sql).await.unwrap(), 0);
}

async fn body_text(response: http::Response<Body>) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

async fn http_routes_commit_on_success_and_roll_back_on_errors(db: Db) {
    let log = Log::default();
    let create = {
        let (db, log) = (db.clone(), Arc::clone(&log));
        move |Path((title, status)): Path<(String, u16)>, session: Session| {
            let (db, log) = (db.clone(), Arc::clone(&log));
            async move {
                let task = CrudOperations::<Task>::on(session)
                    .create(&Task::new(&title, 1))
                    .await?;
                publish_after_commit(&db, &log, task.id, title)
                    .map_err(|_| QueryError::NoSession("no unit of work"))?;
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Ok::<_, QueryError>((status, task.id.to_string()))
            }
        }
    };
    let list = |session: Session| async move {
        let page = QueryOperations::<Task>::new(Fields::of::<Task>())
            .on(session)
            .query(&PaginatedFilter::default().sort("title; DROP TABLE tasks", Direction::Asc))
            .await?;
        Ok::<_, QueryError>(page.total.to_string())
    };
    let app = Router::new()
        .route("/tasks/{title}/{status}", post(create))
        .route("/tasks", get(list))
        .layer(
            ServiceBuilder::new()
                .layer(UnitOfWorkLayer::new())
                .layer(TransactionLayer::new(db.clone())),
        );
    let call = |uri: &str, method: &str| {
        app.clone().oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
    };

    let created = call("/tasks/created/201", "POST").await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id: Uuid = body_text(created).await.parse().unwrap();
    assert!(committed(&db, id).await);
    assert_eq!(entries(&log), ["created committed=true"]);

    for (title, status) in [("crashed", 500), ("rejected", 422)] {
        let response = call(&format!("/tasks/{title}/{status}"), "POST")
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(count_titled(&db, title).await, 0, "{status} rolls back");
    }
    assert_eq!(
        entries(&log),
        ["created committed=true"],
        "failed requests publish nothing"
    );

    // A query error answers 422 with the reason.
    let response = call("/tasks", "GET").await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
    let detail = body["detail"][0]["msg"].as_str().unwrap();
    assert!(
        detail.contains("unknown field `title; DROP TABLE tasks`"),
        "{detail}"
    );
}

async fn a_cancelled_unit_rolls_back_and_frees_the_connection(db: Db) {
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<Uuid>();
    let entered = Arc::new(Mutex::new(Some(entered_tx)));
    let layers = ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(TransactionLayer::new(db.clone()));
    let slow = layers.service(service_fn(move |_d: Delivery| {
        let entered = entered.lock().unwrap().take();
        async move {
            let task = CrudOperations::<Task>::new()
                .create(&Task::new("cancelled", 1))
                .await?;
            if let Some(tx) = entered {
                let _ = tx.send(task.id);
            }
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(())
        }
    }));
    let call = tokio::spawn(slow.oneshot(Delivery::new("slow", false)));
    let id = entered_rx.await.unwrap();
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());

    // The rollback runs in the background; then the row is gone and writers are not blocked.
    let fast = layers.service(service_fn(|d: Delivery| async move {
        CrudOperations::<Task>::new()
            .create(&Task::new(&d.title, 2))
            .await?;
        Ok::<_, BoxError>(())
    }));
    tokio::time::timeout(
        Duration::from_secs(20),
        fast.oneshot(Delivery::new("after", false)),
    )
    .await
    .expect("the cancelled unit's transaction still holds the database")
    .unwrap();
    assert!(
        !committed(&db, id).await,
        "a cancelled unit commits nothing"
    );
    assert_eq!(count_titled(&db, "after").await, 1);
}

async fn units_can_opt_out_of_the_transaction(db: Db) {
    let handler = service_fn(|d: Delivery| async move {
        let err = use_transaction().unwrap_err();
        assert!(err.to_string().contains("opted out"), "{err}");
        let session = use_session()?;
        assert!(!session.is_transactional());
        CrudOperations::<Task>::on(session)
            .create(&Task::new(&d.title, 1))
            .await?;
        if d.fail {
            return Err::<(), BoxError>("handler failed".into());
        }
        Ok(())
    });
    // Opted out inside the transaction layer (per route or handler)...
    let inner = ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(TransactionLayer::new(db.clone()))
        .layer(NoTransactionLayer::new())
        .service(handler);
    assert!(inner.oneshot(Delivery::new("inner", true)).await.is_err());
    assert_eq!(
        count_titled(&db, "inner").await,
        1,
        "autocommit keeps the row"
    );

    // ...or by a marker the transport put in the extensions.
    let marked = ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(TransactionLayer::new(db.clone()))
        .service(handler);
    let mut delivery = Delivery::new("marked", true);
    delivery.extensions_mut().insert(NoTransaction);
    assert!(marked.oneshot(delivery).await.is_err());
    assert_eq!(count_titled(&db, "marked").await, 1);
}

async fn the_transaction_begins_only_when_used(db: Db) {
    let service = ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(TransactionLayer::new(db.clone()))
        .service(service_fn(|d: Delivery| async move {
            let unit = use_unit_of_work()?;
            let before = format!("{unit:?}");
            if !d.fail {
                CrudOperations::<Task>::new().exists(Uuid::new_v4()).await?;
            }
            Ok::<_, BoxError>((before, format!("{unit:?}")))
        }));
    let (before, after) = service
        .clone()
        .oneshot(Delivery::new("idle", true))
        .await
        .unwrap();
    assert!(
        before.contains("resources: []") && after.contains("resources: []"),
        "{after}"
    );
    let (before, after) = service.oneshot(Delivery::new("used", false)).await.unwrap();
    assert!(before.contains("resources: []"), "{before}");
    assert!(after.contains("transaction"), "{after}");
}

#[tokio::test]
async fn sessions_fail_clearly_without_the_layers() {
    let err = use_session().unwrap_err();
    assert!(err.to_string().contains("not in a unit of work"), "{err}");
    assert!(err.to_string().contains("TransactionLayer"), "{err}");

    // A unit of work without a transaction layer.
    let service = UnitOfWorkLayer::new().layer(service_fn(|d: Delivery| async move {
        let ambient = use_session().unwrap_err().to_string();
        let extension = Session::from_extensions(d.extensions())
            .unwrap_err()
            .to_string();
        Ok::<_, BoxError>((ambient, extension))
    }));
    let (ambient, extension) = service.oneshot(Delivery::new("x", false)).await.unwrap();
    assert!(ambient.contains("has no TransactionLayer"), "{ambient}");
    assert!(extension.contains("no Session"), "{extension}");

    // The axum extractor answers 500 without leaking internals.
    let db = Db::sqlite_memory().await.unwrap();
    let app = Router::new()
        .route("/", get(|_session: Session| async { "unreachable" }))
        .layer(TransactionLayer::new(db));
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body_text(response).await,
        r#"{"detail":"Internal Server Error"}"#
    );
}

#[tokio::test]
async fn an_in_memory_database_serves_units_one_after_another() {
    common::with_sqlite_memory(|db| async move {
        let service = ServiceBuilder::new()
            .layer(UnitOfWorkLayer::new())
            .layer(TransactionLayer::new(db.clone()))
            .service(service_fn(|d: Delivery| async move {
                let task = CrudOperations::<Task>::new()
                    .create(&Task::new(&d.title, 1))
                    .await?;
                if d.fail {
                    return Err::<Uuid, BoxError>("no".into());
                }
                Ok(task.id)
            }));
        let mut seen = HashMap::new();
        for (title, fail) in [("a", false), ("b", true), ("c", false)] {
            seen.insert(
                title,
                service
                    .clone()
                    .oneshot(Delivery::new(title, fail))
                    .await
                    .is_ok(),
            );
        }
        assert_eq!(
            count_titled(&db, "a").await + count_titled(&db, "c").await,
            2
        );
        assert_eq!(count_titled(&db, "b").await, 0);
        assert_eq!(seen.values().filter(|ok| **ok).count(), 2);
    })
    .await;
}

/// Under `Isolation::Serializable`, two units that both count and then insert cannot both
/// commit: one is answered 409 (at its insert or at its commit), and only one row is kept.
#[tokio::test]
async fn serializable_units_that_conflict_answer_409() {
    common::with_postgres(|db: Db| async move {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let capped = move |session: Session| {
            let barrier = Arc::clone(&barrier);
            async move {
                let mut count = Sql::new();
                count.push("SELECT count(*) FROM tasks WHERE title = 'capped'");
                let before = session.fetch_i64(&count).await?;
                // Both units have counted before either inserts.
                barrier.wait().await;
                if before > 0 {
                    return Ok::<_, QueryError>(StatusCode::GONE);
                }
                CrudOperations::<Task>::on(session)
                    .create(&Task::new("capped", 1))
                    .await?;
                Ok(StatusCode::CREATED)
            }
        };
        let app = Router::new().route("/capped", post(capped)).layer(
            ServiceBuilder::new().layer(UnitOfWorkLayer::new()).layer(
                TransactionLayer::new(db.clone())
                    .isolation(jararaca_query::Isolation::Serializable),
            ),
        );
        let call = || {
            app.clone()
                .oneshot(Request::post("/capped").body(Body::empty()).unwrap())
        };
        let (first, second) = tokio::join!(call(), call());
        let mut statuses = [first.unwrap().status(), second.unwrap().status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
        assert_eq!(count_titled(&db, "capped").await, 1);
    })
    .await;
}
