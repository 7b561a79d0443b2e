//! Serving an [`App`] over HTTP with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::{App, BoxError};

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

/// Serves `app` on `listener` until `shutdown` completes; see [`serve`].
///
/// Startup hooks run before the first request is accepted; shutdown hooks run after the last
/// request finished (or the grace period ran out).
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
    let local = listener.local_addr()?;
    tracing::info!(service = app.name(), %local, "listening");

    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = signalled_tx.send(());
    };
    let mut server = tokio::spawn(
        axum::serve(listener, app.router())
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
    if let Err(error) = app.container().shutdown().await {
        tracing::error!(%error, "shutdown hooks failed");
    }
    tracing::info!("stopped");
    result.map_err(ServeError::Io)
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
