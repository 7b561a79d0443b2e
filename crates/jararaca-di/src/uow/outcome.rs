use std::convert::Infallible;

use crate::BoxError;

/// A resource could not commit because a concurrent unit of work won (a database's
/// serialization failure or deadlock): nothing of the unit was kept, and running it again may
/// succeed. A resource returns it from [`Resource::commit`](crate::Resource::commit) so that
/// the unit's failure says so: an HTTP unit is answered `409 Conflict` instead of `500`, and
/// a bus handler's failure is retried by the worker like any other.
#[derive(Debug, thiserror::Error)]
#[error("the unit of work conflicted with a concurrent one and was undone: {source}")]
pub struct UnitConflict {
    #[source]
    source: BoxError,
}

impl UnitConflict {
    /// The conflict `source` reported.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

/// Whether `error`, or an error it was caused by, is a [`UnitConflict`].
fn is_conflict(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<UnitConflict>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// What a unit of work's service returns, judged and, when a commit fails or the handler
/// panics, turned into a failure.
///
/// A generic layer cannot create an error of an arbitrary type, so the outcome converts
/// itself. Implemented for HTTP (`Result<Response<B>, Infallible>`: success below status 400,
/// failure a JSON 500) and for handlers (`Result<T, BoxError>`: success is `Ok`, failure
/// `Err`).
pub trait Outcome: Sized + Send + 'static {
    /// Whether the unit succeeded.
    fn is_success(&self) -> bool;

    /// A failed outcome made from nothing but its cause, for a layer that has no outcome to
    /// convert (the handler panicked, so it returned none).
    fn failure(error: BoxError) -> Self;

    /// The failure to report instead, when the unit could not be committed. Defaults to
    /// [`Outcome::failure`].
    fn into_failure(self, error: BoxError) -> Self {
        Self::failure(error)
    }
}

impl<B> Outcome for Result<http::Response<B>, Infallible>
where
    B: From<&'static str> + Send + 'static,
{
    fn is_success(&self) -> bool {
        match self {
            Ok(response) => response.status().as_u16() < 400,
            Err(never) => match *never {},
        }
    }

    fn failure(error: BoxError) -> Self {
        // The cause is logged where it happened; the client learns nothing internal.
        let (status, body) = if is_conflict(&*error) {
            (
                http::StatusCode::CONFLICT,
                r#"{"detail":"the request conflicted with a concurrent one and was undone: send it again"}"#,
            )
        } else {
            (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"detail":"Internal Server Error"}"#,
            )
        };
        let mut response = http::Response::new(B::from(body));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    fn into_failure(self, error: BoxError) -> Self {
        tracing::debug!(%error, "unit of work failed after the handler succeeded");
        Self::failure(error)
    }
}

impl<T: Send + 'static> Outcome for Result<T, BoxError> {
    fn is_success(&self) -> bool {
        self.is_ok()
    }

    fn failure(error: BoxError) -> Self {
        Err(error)
    }
}

/// Decides whether an outcome is a success; the layer's configurable half of [`Outcome`].
///
/// Implemented by [`DefaultJudge`] and by any `Fn(&O) -> bool`, for instance to count only
/// 2xx responses as success:
///
/// ```
/// # use std::convert::Infallible;
/// # type Body = String;
/// let layer = jararaca_di::UnitOfWorkLayer::new()
///     .judge(|res: &Result<http::Response<Body>, Infallible>| {
///         res.as_ref().is_ok_and(|r| r.status().is_success())
///     });
/// ```
pub trait Judge<O>: Clone + Send + Sync + 'static {
    /// Whether `outcome` is a success.
    fn is_success(&self, outcome: &O) -> bool;
}

/// Uses [`Outcome::is_success`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultJudge;

impl<O: Outcome> Judge<O> for DefaultJudge {
    fn is_success(&self, outcome: &O) -> bool {
        outcome.is_success()
    }
}

impl<O, F> Judge<O> for F
where
    F: Fn(&O) -> bool + Clone + Send + Sync + 'static,
{
    fn is_success(&self, outcome: &O) -> bool {
        self(outcome)
    }
}
