//! The tasks service's binary: `cargo run -p tasks-service -- server --port 8000`.

use std::ffi::OsString;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let deployment = tasks_service::Deployment::from_env();
    let args = role_args(std::env::args_os().collect(), &deployment);
    jararaca::cli::run_from(tasks_service::service_on(deployment), args).await
}

/// The `worker`, `beat` and `declare` commands take the broker and Redis as
/// `--broker-url`/`--backend-url` (or `BROKER_URL`/`BACKEND_URL`); this service is configured
/// with the seed's `AMQP_URL` and `REDIS_URL`, so those are passed on when the options are
/// not given.
fn role_args(mut args: Vec<OsString>, deployment: &tasks_service::Deployment) -> Vec<OsString> {
    let Some(at) = args.iter().position(|a| {
        a.to_str()
            .is_some_and(|a| matches!(a, "worker" | "beat" | "declare"))
    }) else {
        return args;
    };
    let command = args[at].to_string_lossy().into_owned();
    let given = |name: &str| {
        args.iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == name || a.starts_with(&format!("{name}=")))
        })
    };
    let mut extra: Vec<OsString> = Vec::new();
    if let Some(url) = &deployment.amqp_url
        && !given("--broker-url")
    {
        extra.extend(["--broker-url".into(), url.into()]);
    }
    if let Some(url) = &deployment.redis_url
        && command != "declare"
        && !given("--backend-url")
    {
        extra.extend(["--backend-url".into(), url.into()]);
    }
    args.splice(at + 1..at + 1, extra);
    args
}
