//! The container: registration styles, validation at startup, lifetimes, lifecycle.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jararaca_di::{BuildError, Container, Injectable, Key, Problem, Provider, ResolveError, Token};
use jararaca_macros::Injectable;
use serde::Deserialize;

struct Db {
    url: String,
}

struct Repo {
    db: Arc<Db>,
}

#[derive(Injectable)]
struct Service {
    repo: Arc<Repo>,
    #[inject(token = APP_NAME)]
    name: Arc<String>,
    #[inject(default)]
    calls: AtomicUsize,
}

const APP_NAME: Token<String> = Token::new("APP_NAME");
const REPLICA: Token<Db> = Token::new("replica");

trait Clock: Send + Sync {
    fn now(&self) -> u64;
}

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        42
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct Settings {
    database_url: String,
    port: u16,
}

#[tokio::test]
async fn every_registration_style_resolves() {
    let container = Container::builder()
        .config::<Settings>()
        .env([("DATABASE_URL", "postgres://primary"), ("PORT", "8000")])
        .factory(|s: Arc<Settings>| async move {
            Ok::<_, Infallible>(Db {
                url: s.database_url.clone(),
            })
        })
        .provide(
            Provider::value(Db {
                url: "postgres://replica".into(),
            })
            .named(REPLICA),
        )
        .factory(|db: Arc<Db>| async move { Ok::<_, Infallible>(Repo { db }) })
        .token_value(APP_NAME, "tasks".to_string())
        .injectable::<Service>()
        .value(FixedClock)
        .bind::<dyn Clock, FixedClock>(|c| c)
        .build()
        .await
        .unwrap();

    let service = container.get::<Service>().unwrap();
    assert_eq!(service.repo.db.url, "postgres://primary");
    assert_eq!(*service.name, "tasks");
    assert_eq!(service.calls.load(Ordering::Relaxed), 0);
    assert_eq!(
        container.get_token(REPLICA).unwrap().url,
        "postgres://replica"
    );
    assert_eq!(container.get::<dyn Clock>().unwrap().now(), 42);
    assert_eq!(container.get::<Settings>().unwrap().port, 8000);
    // Singletons are shared handles.
    assert!(Arc::ptr_eq(
        &container.get::<Repo>().unwrap(),
        &container.get::<Repo>().unwrap()
    ));
    assert_eq!(
        Service::dependencies(),
        vec![Key::of::<Repo>(), APP_NAME.key()]
    );
}

#[tokio::test]
async fn a_missing_provider_names_it_and_who_needs_it_and_all_problems_come_together() {
    let err = Container::builder()
        .factory(|db: Arc<Db>| async move { Ok::<_, Infallible>(Repo { db }) })
        .injectable::<Service>()
        .config::<Settings>()
        .env([("PORT", "x")])
        .build()
        .await
        .unwrap_err();
    let problems = err.problems();
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::Missing { key, needed_by }
        if *key == Key::of::<Db>() && *needed_by == Key::of::<Repo>()))
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::Missing { key, needed_by }
        if *key == APP_NAME.key() && *needed_by == Key::of::<Service>()))
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::Config(c) if c.problems().len() == 2))
    );
    let text = err.to_string();
    assert!(text.contains("3 problems"), "{text}");
    assert!(
        text.contains("no provider for `container::Db`, needed by `container::Repo`"),
        "{text}"
    );
    assert!(text.contains("missing variable `DATABASE_URL`"), "{text}");
}

struct A;
struct B;
struct C;

#[tokio::test]
async fn a_cycle_is_reported_with_its_path() {
    let err = Container::builder()
        .factory(|_: Arc<B>| async { Ok::<_, Infallible>(A) })
        .factory(|_: Arc<C>| async { Ok::<_, Infallible>(B) })
        .factory(|_: Arc<A>| async { Ok::<_, Infallible>(C) })
        .build()
        .await
        .unwrap_err();
    let cycles: Vec<_> = err
        .problems()
        .iter()
        .filter_map(|p| match p {
            Problem::Cycle { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        cycles,
        vec![vec![
            Key::of::<A>(),
            Key::of::<B>(),
            Key::of::<C>(),
            Key::of::<A>()
        ]]
    );
    assert!(
        err.to_string().contains(
            "dependency cycle: `container::A` -> `container::B` -> `container::C` -> `container::A`"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn duplicates_token_mismatches_and_scoped_in_singleton_are_rejected() {
    let err = Container::builder()
        .value(A)
        .value(A)
        .provide(Provider::value(1_u32).named(APP_NAME))
        .scoped(|| async { Ok::<_, Infallible>(B) })
        .factory(|_: Arc<B>| async { Ok::<_, Infallible>(C) })
        .build()
        .await
        .unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 3, "{err}");
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::TokenMismatch { token, provided }
        if *token == APP_NAME.key() && *provided == Key::of::<u32>()))
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::Duplicate { key } if *key == Key::of::<A>()))
    );
    assert!(problems.iter().any(
        |p| matches!(p, Problem::ScopedInSingleton { singleton, scoped }
        if *singleton == Key::of::<C>() && *scoped == Key::of::<B>())
    ));
}

#[tokio::test]
async fn a_failing_factory_fails_startup() {
    let err = Container::builder()
        .factory(|| async { Err::<A, _>("database unreachable") })
        .build()
        .await
        .unwrap_err();
    assert!(matches!(&err, BuildError::Factory { key, .. } if *key == Key::of::<A>()));
    assert!(err.to_string().contains("database unreachable"));
}

#[tokio::test]
async fn an_undeclared_dependency_is_refused() {
    let err = Container::builder()
        .value(A)
        .provide(Provider::from_fn([], |r| async move {
            r.get::<A>().await?;
            Ok::<_, ResolveError>(B)
        }))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("without declaring it"), "{err}");
}

#[tokio::test]
async fn scoped_values_are_one_per_scope_and_not_resolvable_outside_one() {
    let built = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&built);
    let container = Container::builder()
        .value(A)
        .provide(
            Provider::from_fn([Key::of::<A>()], move |r| {
                let counter = Arc::clone(&counter);
                async move {
                    r.get::<A>().await?;
                    Ok::<_, ResolveError>(counter.fetch_add(1, Ordering::SeqCst))
                }
            })
            .scoped(),
        )
        .build()
        .await
        .unwrap();
    assert!(matches!(
        container.get::<usize>(),
        Err(ResolveError::ScopedOutsideUnit(_))
    ));

    let first = container.new_scope();
    let (x, y) = tokio::join!(first.resolve::<usize>(), first.resolve::<usize>());
    assert!(
        Arc::ptr_eq(&x.unwrap(), &y.unwrap()),
        "one value per scope, even when raced"
    );
    let second = container.new_scope();
    assert_eq!(*second.resolve::<usize>().await.unwrap(), 1);
    assert_eq!(built.load(Ordering::SeqCst), 2);
    // Singletons resolve through a scope too.
    assert!(first.resolve::<A>().await.is_ok());
}

#[tokio::test]
async fn startup_runs_in_order_and_shutdown_in_reverse() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let hook = |log: &Arc<Mutex<Vec<&'static str>>>, entry: &'static str| {
        let log = Arc::clone(log);
        move |_c: Container| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().push(entry);
                Ok(())
            }
        }
    };
    let container = Container::builder()
        .on_startup("db", hook(&log, "start db"))
        .on_shutdown("db", hook(&log, "stop db"))
        .on_startup("broker", hook(&log, "start broker"))
        .on_shutdown("broker", hook(&log, "stop broker"))
        .build()
        .await
        .unwrap();
    container.startup().await.unwrap();
    container.shutdown().await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["start db", "start broker", "stop broker", "stop db"]
    );
}

#[tokio::test]
async fn a_failed_startup_stops_only_what_started() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let push = |entry: &'static str, fail: bool| {
        let log = Arc::clone(&log);
        move |_c: Container| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().push(entry);
                if fail { Err("boom".into()) } else { Ok(()) }
            }
        }
    };
    let container = Container::builder()
        .on_shutdown("first", push("stop first", false))
        .on_startup("second", push("start second", true))
        .on_shutdown("third", push("stop third", false))
        .build()
        .await
        .unwrap();
    let err = container.startup().await.unwrap_err();
    assert!(err.to_string().contains("`second` failed: boom"), "{err}");
    assert_eq!(*log.lock().unwrap(), ["start second", "stop first"]);
}
