//! The database transaction layer: one transaction per unit of work, decided by the unit.

use std::sync::Arc;
use std::task::{Context, Poll};

use jararaca_di::{Envelope, UnitOfWork, use_unit_of_work};
use tower_layer::Layer;
use tower_service::Service;

use crate::session::{Isolation, OptedOut, UnitTx};
use crate::{Db, QueryError, Session};

/// Gives every unit of work (HTTP request, bus delivery, scheduled tick) one database
/// transaction, begun lazily on the first statement and enlisted in the unit of work.
///
/// The [`UnitOfWorkLayer`](jararaca_di::UnitOfWorkLayer) must be outside this layer. It
/// commits the transaction when the unit succeeds — *before* the after-commit actions (message
/// publishes, WebSocket sends) run — and rolls it back when the unit fails or is cancelled;
/// a failed commit turns the unit into a failure and drops the actions.
///
/// Handlers reach the transaction through the [`Session`] extractor (axum), the request's
/// extensions (any [`Envelope`]) or [`use_session`].
///
/// Opting out: a unit whose envelope carries [`NoTransaction`] in its extensions when it
/// reaches this layer, or that passes through a [`NoTransactionLayer`] (on either side of this
/// layer), gets an autocommit session instead. [`TransactionLayer::autocommit`] opts out a
/// whole stack.
///
/// Only one database per unit: if two transaction layers wrap one unit, the outer one's
/// database wins.
#[derive(Debug, Clone)]
pub struct TransactionLayer {
    db: Db,
    autocommit: bool,
    outbox: bool,
    isolation: Option<Isolation>,
}

impl TransactionLayer {
    /// A transaction per unit on `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            autocommit: false,
            outbox: true,
            isolation: None,
        }
    }

    /// Sessions on `db` without a transaction: every statement commits at once.
    pub fn autocommit(db: Db) -> Self {
        Self {
            db,
            autocommit: true,
            outbox: true,
            isolation: None,
        }
    }

    /// Publishes the units' bus messages after their commit instead of writing them to the
    /// transactional outbox (feature `bus`): no outbox table and no extra statement per
    /// unit, but each unit waits for its broker's confirms, and a message whose publish still
    /// fails after the bus's retries is lost (it is reported, see
    /// `jararaca_bus::Bus::on_not_published`).
    #[must_use]
    pub fn after_commit_publishing(mut self) -> Self {
        self.outbox = false;
        self
    }

    /// Begins every unit's transaction at `level` instead of the database's default.
    #[must_use]
    pub fn isolation(mut self, level: Isolation) -> Self {
        self.isolation = Some(level);
        self
    }
}

impl<S> Layer<S> for TransactionLayer {
    type Service = Transaction<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Transaction {
            inner,
            db: self.db.clone(),
            autocommit: self.autocommit,
            outbox: self.outbox,
            isolation: self.isolation,
        }
    }
}

/// The service of [`TransactionLayer`].
#[derive(Debug, Clone)]
pub struct Transaction<S> {
    inner: S,
    db: Db,
    autocommit: bool,
    #[cfg_attr(not(feature = "bus"), allow(dead_code))]
    outbox: bool,
    isolation: Option<Isolation>,
}

impl<S, R> Service<R> for Transaction<S>
where
    S: Service<R>,
    R: Envelope,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        let unit = req
            .extensions()
            .get::<UnitOfWork>()
            .cloned()
            .or_else(|| use_unit_of_work().ok());
        match unit {
            Some(unit) => {
                let skip = self.autocommit || req.extensions().get::<NoTransaction>().is_some();
                // Nothing is begun here: the first statement begins the transaction.
                let state = unit.local(|| UnitTx::new(self.db.clone(), skip, self.isolation));
                if skip {
                    state.set_autocommit();
                }
                #[cfg(feature = "bus")]
                if !skip && self.outbox {
                    // The bus writes this unit's messages into its transaction.
                    let writer = crate::outbox::UnitWriter {
                        state: Arc::clone(&state),
                    };
                    unit.local(|| jararaca_bus::outbox::UnitOutbox::new(Arc::new(writer)));
                }
                req.extensions_mut().insert(Session::unit(state, unit));
            }
            None => tracing::debug!(
                "TransactionLayer without a unit of work: put UnitOfWorkLayer outside it"
            ),
        }
        self.inner.call(req)
    }
}

/// A marker in a unit's extensions: run this unit without a transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTransaction;

/// Opts the units it wraps out of the transaction (the reference's
/// `skip_persistence_session`): put it on the routes or handlers that must not run in one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTransactionLayer;

impl NoTransactionLayer {
    /// The opt-out layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for NoTransactionLayer {
    type Service = NoTransactionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NoTransactionService { inner }
    }
}

/// The service of [`NoTransactionLayer`].
#[derive(Debug, Clone)]
pub struct NoTransactionService<S> {
    inner: S,
}

impl<S, R> Service<R> for NoTransactionService<S>
where
    S: Service<R>,
    R: Envelope,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        // Outside the transaction layer the marker tells it; inside, the unit-local does
        // (checked before the first statement).
        if let Some(unit) = req.extensions().get::<UnitOfWork>() {
            unit.local(|| OptedOut);
            if let Some(state) = unit.get_local::<UnitTx>() {
                state.set_autocommit();
            }
        }
        req.extensions_mut().insert(NoTransaction);
        self.inner.call(req)
    }
}

fn unit_state() -> Result<(Arc<UnitTx>, UnitOfWork), QueryError> {
    let unit = use_unit_of_work()
        .map_err(|_| QueryError::NoSession("this task is not in a unit of work"))?;
    let state = unit.get_local::<UnitTx>().ok_or(QueryError::NoSession(
        "this unit of work has no TransactionLayer",
    ))?;
    Ok((state, unit))
}

/// The current unit of work's session (the reference's `use_session`): its transaction, or an
/// autocommit session if the unit opted out.
///
/// Fails outside a unit of work or in a unit without a [`TransactionLayer`].
pub fn use_session() -> Result<Session, QueryError> {
    let (state, unit) = unit_state()?;
    Ok(Session::unit(state, unit))
}

/// The current unit of work's transaction (the reference's `use_transaction`). Unlike
/// [`use_session`], fails when the unit opted out of the transaction.
pub fn use_transaction() -> Result<Session, QueryError> {
    let session = use_session()?;
    if session.is_transactional() {
        Ok(session)
    } else {
        Err(QueryError::NoSession(
            "this unit of work opted out of the transaction (NoTransaction)",
        ))
    }
}

impl Session {
    /// The session in `extensions`, put there by the [`TransactionLayer`]: for transports
    /// other than axum (bus handlers take it from the delivery's extensions).
    pub fn from_extensions(extensions: &http::Extensions) -> Result<Self, QueryError> {
        extensions
            .get::<Session>()
            .cloned()
            .ok_or(QueryError::NoSession(
                "the request's extensions hold no Session",
            ))
    }
}

/// The unit's transaction is not part of the API contract.
#[cfg(feature = "axum")]
impl jararaca_api::RouteInput for Session {}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Session {
    type Rejection = QueryError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::from_extensions(&parts.extensions)
    }
}
