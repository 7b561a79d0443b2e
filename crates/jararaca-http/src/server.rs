//! Serving a router or an [`App`]'s HTTP part with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use jararaca_di::{App, BoxError};

use crate::HttpApp;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A startup hook failed.
    #[error("startup failed: {0}")]
    Startup(#[source] BoxError),
    /// The server failed while running.
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `app` on `addr` until SIGINT or SIGTERM, then stops accepting, lets in-flight
/// requests finish for up to `grace`, and runs the shutdown hooks.
pub async fn serve(app: App, addr: SocketAddr, grace: Duration) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_with(app, listener, shutdown_signal(), grace).await
}

/// Serves `app`'s routes on `listener` until `shutdown` completes; see [`serve`].
///
/// Startup hooks run before the first request is accepted; shutdown hooks run after the last
/// request finished (or the grace period ran out). Only the HTTP part runs: to run every
/// capability of the service in one role, use [`App::run`].
pub async fn serve_with(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    app.container()
        .startup()
        .await
        .map_err(ServeError::Startup)?;
    let result = serve_router(app.router(), listener, shutdown, grace).await;
    if let Err(error) = app.container().shutdown().await {
        tracing::error!(%error, "shutdown hooks failed");
    }
    tracing::info!("stopped");
    result
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish for up to `grace` before closing what remains.
pub async fn serve_router(
    router: axum::Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    let local = listener.local_addr()?;
    tracing::info!(%local, "listening");

    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = signalled_tx.send(());
    };
    let mut server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .into_future(),
    );
    let result = tokio::select! {
        joined = &mut server => joined.map_err(|e| std::io::Error::other(e.to_string())).and_then(|r| r),
        () = async {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "grace period over; closing the remaining connections");
            server.abort();
            Ok(())
        }
    };
    result.map_err(ServeError::Io)
}

pub use jararaca_di::app::shutdown_signal;
