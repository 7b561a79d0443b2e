//! The quick start's TypeScript client: written by `cargo test` (and checked under `CI=true`),
//! compiled with the real `typescript` and `@jararaca/core`, and run in Node against the
//! running service.

use jararaca::prelude::*;
use jararaca_testing::typescript::{MAX, STRICT, VITE, typescript};

/// The ts-rs way: `cargo test` keeps `client/tasks.ts` up to date.
#[test]
fn the_typescript_client_is_up_to_date() {
    jararaca::tsgen::export(&quickstart::service().api(), "client/tasks.ts")
        .unwrap_or_else(|e| panic!("{e}"));
}

fn client() -> String {
    jararaca::tsgen::generate(&quickstart::service().api()).unwrap()
}

#[test]
fn the_client_compiles_under_strict_and_vite_flags() {
    let Some(ts) = typescript() else { return };
    let dir = ts.work_dir("quickstart");
    std::fs::write(dir.join("tasks.ts"), client()).unwrap();
    std::fs::copy("tests/typescript/roundtrip.ts", dir.join("roundtrip.ts")).unwrap();
    let files = ["tasks.ts", "roundtrip.ts"];
    ts.tsc(&dir, STRICT, &files)
        .unwrap_or_else(|e| panic!("{e}"));
    ts.tsc(&dir, VITE, &files).unwrap_or_else(|e| panic!("{e}"));
    ts.tsc(&dir, MAX, &files).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Create, list (paginated and sorted), get, update and delete through `@jararaca/core`'s
/// `HttpService`, its axios backend and its case interceptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_round_trips_against_the_running_service() {
    let Some(ts) = typescript() else { return };
    let dir = ts.work_dir("quickstart-roundtrip");
    std::fs::write(dir.join("tasks.ts"), client()).unwrap();
    std::fs::copy("tests/typescript/roundtrip.ts", dir.join("roundtrip.ts")).unwrap();
    let emit = [
        "--strict",
        "--target",
        "ES2022",
        "--module",
        "ESNext",
        "--moduleResolution",
        "bundler",
        "--skipLibCheck",
        "--outDir",
        "out",
    ];
    ts.tsc(&dir, &emit, &["tasks.ts", "roundtrip.ts"])
        .unwrap_or_else(|e| panic!("{e}"));

    let app = quickstart::service().build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app.router()).await });

    let node = {
        let ts = ts.clone();
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            ts.node(&dir, "out/roundtrip.js", &[("BASE_URL", &url)])
        })
        .await
        .unwrap()
    };
    server.abort();
    let stdout = String::from_utf8_lossy(&node.stdout);
    let stderr = String::from_utf8_lossy(&node.stderr);
    assert!(node.status.success(), "node failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("round trip ok"), "{stdout}\n{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
