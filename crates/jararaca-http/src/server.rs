//! Serving a router or an [`App`]'s HTTP part with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use jararaca_di::{App, BoxError};

use crate::HttpApp;
use crate::head_error::HeadErrorBody;
use crate::limits::{Guarded, ServerLimits};

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
/// in-flight requests finish for up to `grace` before closing what remains; with the default
/// [`ServerLimits`].
pub async fn serve_router(
    router: axum::Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    serve_router_with_limits(router, listener, shutdown, grace, ServerLimits::default()).await
}

/// [`serve_router`] with the given [`ServerLimits`].
///
/// HTTP/1.1 with keep-alive and upgrades (WebSocket), over hyper; every connection holds one of
/// `max_connections` permits until it closes, and on shutdown each is asked to close after its
/// current request.
pub async fn serve_router_with_limits(
    router: axum::Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: ServerLimits,
) -> Result<(), ServeError> {
    let local = listener.local_addr()?;
    tracing::info!(%local, "listening");

    // `acquire_many` counts in `u32`: a cap above it is no cap at all in practice.
    let max = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let permits = Arc::new(Semaphore::new(max as usize));
    let (closing_tx, closing) = watch::channel(false);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let service = TowerToHyperService::new(Guarded::new(router, limits));
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Finished connections are reaped as new ones come, so the set stays as small as
        // what is open.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        // Responses are written whole; Nagle's delay would only hold them back.
        let _ = stream.set_nodelay(true);
        let connection = http1
            .serve_connection(TokioIo::new(HeadErrorBody::new(stream)), service.clone())
            .with_upgrades();
        let mut closing = closing.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                // The guard `wait_for` returns is not `Send`: dropped before the next await.
                () = async { drop(closing.wait_for(|closing| *closing).await) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    let _ = closing_tx.send(true);
    if tokio::time::timeout(grace, permits.acquire_many(max))
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "grace period over; closing the remaining connections"
        );
        connections.abort_all();
    }
    Ok(())
}

/// What to do when `accept` fails: a connection that went away before it was accepted is
/// nothing; anything else (out of file descriptors, above all) is logged and waited out, so
/// the loop neither spins nor stops serving.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(
        %error,
        "cannot accept a connection (file descriptors exhausted? lower --max-connections or \
         raise `ulimit -n`); retrying in 1 s"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
}

pub use jararaca_di::app::shutdown_signal;
