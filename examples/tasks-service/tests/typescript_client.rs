//! The service's TypeScript client: written by `cargo test` (and checked under `CI=true`),
//! and compiled with the real `typescript` and `@jararaca/core` under the strict and Vite
//! flags the web front end builds with.

use jararaca_testing::typescript::{MAX, STRICT, VITE, typescript};

fn service() -> jararaca::Microservice {
    tasks_service::service_on(tasks_service::Deployment::embedded())
}

/// The ts-rs way: `cargo test` keeps `client/tasks.ts` up to date (and fails under
/// `CI=true` when the committed file is stale).
#[test]
fn the_typescript_client_is_up_to_date() {
    jararaca::tsgen::export(&service().api(), "client/tasks.ts").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_client_compiles_under_strict_vite_and_max_flags() {
    let Some(ts) = typescript() else { return };
    let dir = ts.work_dir("tasks-service");
    let client = jararaca::tsgen::generate(&service().api()).unwrap();
    assert!(client.contains("export class AuthController extends HttpService"));
    assert!(client.contains("\"task.notice\": TaskNotice;"));
    std::fs::write(dir.join("tasks.ts"), client).unwrap();
    for flags in [STRICT, VITE, MAX] {
        ts.tsc(&dir, flags, &["tasks.ts"])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let _ = std::fs::remove_dir_all(dir);
}
