//! The quick start's binary: `cargo run -p quickstart -- server`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    jararaca::cli::run(quickstart::service()).await
}
