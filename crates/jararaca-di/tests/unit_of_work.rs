//! One interceptor stack around HTTP routes and a non-HTTP service; the unit of work decides.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt;
use jararaca_di::{
    BoxError, Container, Envelope, Inject, Resource, ScopeLayer, UnitError, UnitKind, UnitOfWork,
    UnitOfWorkLayer, inject, use_unit_of_work,
};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

/// A non-HTTP unit of work, shaped like a bus delivery.
struct Delivery {
    topic: &'static str,
    headers: HashMap<String, String>,
    extensions: http::Extensions,
}

impl Delivery {
    fn new(topic: &'static str) -> Self {
        Self {
            topic,
            headers: HashMap::from([("traceparent".to_string(), "00-1-2-01".to_string())]),
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
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// A per-unit value: a new number for every unit of work.
#[derive(Debug)]
struct UnitNumber(u64);

type Log = Arc<Mutex<Vec<String>>>;

async fn container() -> Container {
    let next = Arc::new(AtomicU64::new(1));
    Container::builder()
        .value(next)
        .scoped(|next: Arc<Arc<AtomicU64>>| async move {
            Ok::<_, Infallible>(UnitNumber(next.fetch_add(1, Ordering::SeqCst)))
        })
        .build()
        .await
        .unwrap()
}

fn stack(
    container: Container,
) -> ServiceBuilder<
    tower::layer::util::Stack<
        ScopeLayer,
        tower::layer::util::Stack<UnitOfWorkLayer, tower::layer::util::Identity>,
    >,
> {
    ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(ScopeLayer::new(container))
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

struct Recorder {
    name: &'static str,
    log: Log,
    fail_commit: bool,
}

impl Resource for Recorder {
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), BoxError>> {
        async move {
            if self.fail_commit {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("commit {} failed", self.name));
                Err("disk full".into())
            } else {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("commit {}", self.name));
                Ok(())
            }
        }
        .boxed()
    }
    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<(), BoxError>> {
        async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("rollback {}", self.name));
            Ok(())
        }
        .boxed()
    }
}

fn record(
    log: &Log,
    entry: &'static str,
) -> impl FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send + 'static {
    let log = Arc::clone(log);
    move || {
        async move {
            log.lock().unwrap().push(entry.to_string());
            Ok(())
        }
        .boxed()
    }
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn one_stack_wraps_an_axum_router_and_a_non_http_service() {
    let container = container().await;
    let layers = stack(container);

    // The handler reads the scoped value through the extractor and through the ambient
    // accessor: both are the same value of this unit.
    let router = Router::new()
        .route(
            "/unit",
            get(|Inject(number): Inject<UnitNumber>| async move {
                let ambient = inject::<UnitNumber>().await.unwrap();
                assert!(Arc::ptr_eq(&number, &ambient));
                number.0.to_string()
            }),
        )
        .layer(layers.clone());
    let first = router
        .clone()
        .oneshot(Request::get("/unit").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = router
        .oneshot(Request::get("/unit").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_ne!(
        body_text(first).await,
        body_text(second).await,
        "one scoped value per request"
    );

    let consumer = layers.service(service_fn(|delivery: Delivery| async move {
        assert_eq!(delivery.header("traceparent").as_deref(), Some("00-1-2-01"));
        let from_extensions = Inject::<UnitNumber>::from_extensions(delivery.extensions()).await?;
        let ambient = inject::<UnitNumber>().await?;
        assert!(Arc::ptr_eq(&from_extensions.0, &ambient));
        assert_eq!(use_unit_of_work()?.kind(), UnitKind::Message);
        Ok::<_, BoxError>(format!("{} #{}", delivery.topic, ambient.0))
    }));
    assert_eq!(
        consumer
            .oneshot(Delivery::new("task.created"))
            .await
            .unwrap(),
        "task.created #3"
    );
}

#[tokio::test]
async fn the_same_stack_works_outside_the_router_and_before_with_state() {
    let container = container().await;
    #[derive(Clone)]
    struct AppState;
    // Wrapped outside the whole router, and applied to a router that still has state.
    let inner: Router = Router::new()
        .route(
            "/n",
            get(|Inject(n): Inject<UnitNumber>| async move { n.0.to_string() }),
        )
        .layer(stack(container.clone()))
        .with_state(AppState);
    let outside = stack(container).service(Router::new().route(
        "/n",
        get(|Inject(n): Inject<UnitNumber>| async move { n.0.to_string() }),
    ));
    for response in [
        inner
            .oneshot(Request::get("/n").body(Body::empty()).unwrap())
            .await
            .unwrap(),
        outside
            .oneshot(Request::get("/n").body(Body::empty()).unwrap())
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status(), StatusCode::OK);
    }
}

fn uow_router(log: &Log) -> Router {
    let log = Arc::clone(log);
    Router::new().route(
        "/{status}",
        get(move |Path(status): Path<u16>, unit: UnitOfWork| {
            let log = Arc::clone(&log);
            async move {
                unit.enlist(Recorder {
                    name: "db",
                    log: Arc::clone(&log),
                    fail_commit: false,
                })
                .unwrap();
                unit.after_commit("publish", record(&log, "publish"))
                    .unwrap();
                StatusCode::from_u16(status).unwrap()
            }
        }),
    )
}

#[tokio::test]
async fn http_success_commits_then_runs_actions_and_a_500_drops_them() {
    let container = container().await;
    let log: Log = Log::default();
    let app = uow_router(&log).layer(stack(container));

    let ok = app
        .clone()
        .oneshot(Request::get("/201").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    assert_eq!(entries(&log), ["commit db", "publish"]);

    log.lock().unwrap().clear();
    let failed = app
        .clone()
        .oneshot(Request::get("/500").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(entries(&log), ["rollback db"]);

    log.lock().unwrap().clear();
    let client_error = app
        .oneshot(Request::get("/422").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(client_error.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        entries(&log),
        ["rollback db"],
        "a status of 400 and above is a failure"
    );
}

#[tokio::test]
async fn a_failing_commit_turns_a_200_into_a_500_and_drops_the_actions() {
    let container = container().await;
    let log: Log = Log::default();
    let handler_log = Arc::clone(&log);
    let app = Router::new()
        .route(
            "/",
            get(move |unit: UnitOfWork| {
                let log = Arc::clone(&handler_log);
                async move {
                    unit.enlist(Recorder {
                        name: "first",
                        log: Arc::clone(&log),
                        fail_commit: true,
                    })
                    .unwrap();
                    unit.enlist(Recorder {
                        name: "second",
                        log: Arc::clone(&log),
                        fail_commit: false,
                    })
                    .unwrap();
                    unit.after_commit("publish", record(&log, "publish"))
                        .unwrap();
                    "ok"
                }
            }),
        )
        .layer(stack(container));
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "application/json"
    );
    let body = body_text(response).await;
    assert!(
        !body.contains("disk full"),
        "internals must not leak: {body}"
    );
    assert_eq!(entries(&log), ["commit first failed", "rollback second"]);
}

#[tokio::test]
async fn handlers_commit_on_ok_roll_back_on_err_and_a_failing_commit_becomes_err() {
    let container = container().await;
    let log: Log = Log::default();
    let consumer = {
        let log = Arc::clone(&log);
        stack(container).service(service_fn(move |delivery: Delivery| {
            let log = Arc::clone(&log);
            async move {
                let unit = use_unit_of_work()?;
                unit.enlist(Recorder {
                    name: "db",
                    log: Arc::clone(&log),
                    fail_commit: delivery.topic == "bad.commit",
                })?;
                unit.after_commit("publish", record(&log, "publish"))?;
                if delivery.topic == "bad.handler" {
                    return Err::<(), BoxError>("handler failed".into());
                }
                Ok(())
            }
        }))
    };

    consumer
        .clone()
        .oneshot(Delivery::new("good"))
        .await
        .unwrap();
    assert_eq!(entries(&log), ["commit db", "publish"]);

    log.lock().unwrap().clear();
    let err = consumer
        .clone()
        .oneshot(Delivery::new("bad.handler"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "handler failed");
    assert_eq!(entries(&log), ["rollback db"]);

    log.lock().unwrap().clear();
    let err = consumer
        .oneshot(Delivery::new("bad.commit"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(entries(&log), ["commit db failed"]);
}

#[tokio::test]
async fn resources_roll_back_in_reverse_order() {
    let log: Log = Log::default();
    let unit = UnitOfWork::new(UnitKind::Scheduled);
    for name in ["a", "b", "c"] {
        unit.enlist(Recorder {
            name,
            log: Arc::clone(&log),
            fail_commit: false,
        })
        .unwrap();
    }
    unit.finish(false).await.unwrap();
    assert_eq!(entries(&log), ["rollback c", "rollback b", "rollback a"]);
}

#[tokio::test]
async fn a_cancelled_unit_rolls_back_and_drops_its_actions() {
    let log: Log = Log::default();
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = Arc::new(Mutex::new(Some(entered_tx)));
    let service = {
        let log = Arc::clone(&log);
        UnitOfWorkLayer::new().layer(service_fn(move |_d: Delivery| {
            let log = Arc::clone(&log);
            let entered = entered_tx.lock().unwrap().take();
            async move {
                let unit = use_unit_of_work()?;
                unit.enlist(Recorder {
                    name: "db",
                    log: Arc::clone(&log),
                    fail_commit: false,
                })?;
                unit.after_commit("publish", record(&log, "publish"))?;
                if let Some(tx) = entered {
                    let _ = tx.send(());
                }
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(())
            }
        }))
    };
    let call = tokio::spawn(service.oneshot(Delivery::new("slow")));
    entered_rx.await.unwrap();
    call.abort();
    let _ = call.await;
    // The rollback is spawned by the drop guard; let it run.
    for _ in 0..10 {
        if !entries(&log).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(entries(&log), ["rollback db"]);
}

#[tokio::test]
async fn registering_after_the_unit_is_decided_is_an_error_and_outside_a_unit_too() {
    let kept: Arc<Mutex<Option<UnitOfWork>>> = Arc::default();
    let service = {
        let kept = Arc::clone(&kept);
        UnitOfWorkLayer::new().layer(service_fn(move |_d: Delivery| {
            let kept = Arc::clone(&kept);
            async move {
                *kept.lock().unwrap() = Some(use_unit_of_work()?);
                Ok::<_, BoxError>(())
            }
        }))
    };
    service.oneshot(Delivery::new("t")).await.unwrap();
    let unit = kept.lock().unwrap().take().unwrap();
    assert!(unit.is_decided());
    let err = unit.after_commit("late", || async { Ok(()) }).unwrap_err();
    assert!(matches!(err, UnitError::Decided { kind: "message" }));
    assert!(err.to_string().contains("already decided"));

    let outside = use_unit_of_work().unwrap_err();
    assert!(outside.to_string().contains("UnitOfWorkLayer"), "{outside}");
    assert!(
        inject::<UnitNumber>()
            .await
            .unwrap_err()
            .to_string()
            .contains("ScopeLayer")
    );
}

#[tokio::test]
async fn spawned_work_joins_the_unit_through_scope() {
    let log: Log = Log::default();
    let service = {
        let log = Arc::clone(&log);
        UnitOfWorkLayer::new().layer(service_fn(move |_d: Delivery| {
            let log = Arc::clone(&log);
            async move {
                let unit = use_unit_of_work()?;
                let spawned = tokio::spawn(unit.scope(async move {
                    use_unit_of_work()?.after_commit("from a task", record(&log, "from a task"))?;
                    Ok::<_, BoxError>(())
                }));
                spawned.await??;
                Ok::<_, BoxError>(())
            }
        }))
    };
    service.oneshot(Delivery::new("t")).await.unwrap();
    assert_eq!(entries(&log), ["from a task"]);
}

#[tokio::test]
async fn a_failing_action_is_reported_and_the_rest_still_run() {
    let log: Log = Log::default();
    let reported: Arc<Mutex<Vec<String>>> = Arc::default();
    let service = {
        let log = Arc::clone(&log);
        let reported = Arc::clone(&reported);
        UnitOfWorkLayer::new()
            .inline()
            .on_action_error(move |name, error| {
                reported.lock().unwrap().push(format!("{name}: {error}"))
            })
            .layer(service_fn(move |_d: Delivery| {
                let log = Arc::clone(&log);
                async move {
                    let unit = use_unit_of_work()?;
                    unit.after_commit("broken", || async {
                        Err::<(), BoxError>("broker down".into())
                    })?;
                    unit.after_commit("second", record(&log, "second"))?;
                    Ok::<_, BoxError>("done")
                }
            }))
    };
    assert_eq!(service.oneshot(Delivery::new("t")).await.unwrap(), "done");
    assert_eq!(entries(&log), ["second"]);
    assert_eq!(*reported.lock().unwrap(), ["broken: broker down"]);
}

#[tokio::test]
async fn a_custom_judge_decides_success() {
    let log: Log = Log::default();
    let app = uow_router(&log).layer(UnitOfWorkLayer::new().judge(
        |res: &Result<http::Response<Body>, Infallible>| {
            res.as_ref().is_ok_and(|r| r.status().is_success())
        },
    ));
    let redirect = app
        .oneshot(Request::get("/302").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::FOUND);
    assert_eq!(
        entries(&log),
        ["rollback db"],
        "only 2xx counts under this judge"
    );
}
