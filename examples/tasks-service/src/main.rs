//! The tasks service's binary: `cargo run -p tasks-service -- server --port 8000`.
//!
//! Every role, `worker`, `beat` and `declare` included, uses the service's own `AMQP_URL` and
//! `REDIS_URL` (its `BusSettings`), unless `--broker-url`/`--backend-url` is given.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    jararaca::cli::run(tasks_service::service_on(
        tasks_service::Deployment::from_env(),
    ))
    .await
}
