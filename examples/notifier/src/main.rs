//! The notifier's binary: `cargo run -p notifier -- server --port 8001`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    jararaca::cli::run(notifier::service()).await
}
