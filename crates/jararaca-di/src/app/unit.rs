//! [`Unit`] and [`UnitOutcome`]: any unit of work and its outcome with their types erased,
//! so that one interceptor stack can wrap every transport.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;

use http::Extensions;

use crate::{BoxError, Envelope, Outcome, UnitKind};

/// The object-safe face of an [`Envelope`].
trait DynEnvelope: Send {
    fn kind(&self) -> UnitKind;
    fn extensions(&self) -> &Extensions;
    fn extensions_mut(&mut self) -> &mut Extensions;
    fn header(&self, name: &str) -> Option<Cow<'_, str>>;
    fn type_name(&self) -> &'static str;
    fn unit_type(&self) -> TypeId;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<R: Envelope> DynEnvelope for R {
    fn kind(&self) -> UnitKind {
        Envelope::kind(self)
    }

    fn extensions(&self) -> &Extensions {
        Envelope::extensions(self)
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        Envelope::extensions_mut(self)
    }

    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        Envelope::header(self, name)
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<R>()
    }

    fn unit_type(&self) -> TypeId {
        TypeId::of::<R>()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// Any unit of work — an HTTP request, a delivery, a tick — with its type erased: the request
/// type of the shared interceptor stack (see [`Interceptors`](crate::Interceptors)).
///
/// It is itself an [`Envelope`], so a layer written for any `R: Envelope` wraps it like any
/// other unit. The transport that made it takes its own request back out with
/// [`Unit::downcast`].
pub struct Unit {
    inner: Box<dyn DynEnvelope>,
}

impl fmt::Debug for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unit")
            .field("kind", &self.inner.kind())
            .field("type", &self.inner.type_name())
            .finish()
    }
}

impl Unit {
    /// Erases `unit`'s type (a `Unit` stays as it is).
    pub fn new<R: Envelope>(unit: R) -> Self {
        let mut slot = Some(unit);
        if let Some(unit) = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<Unit>>()
            .and_then(Option::take)
        {
            return unit;
        }
        match slot {
            Some(unit) => Self {
                inner: Box::new(unit),
            },
            None => unreachable!("the slot is only emptied when it held a Unit"),
        }
    }

    /// The unit as the `R` it was made from, or itself if it is not one.
    pub fn downcast<R: Envelope>(self) -> Result<R, Self> {
        if self.inner.unit_type() != TypeId::of::<R>() {
            return Err(self);
        }
        match self.inner.into_any().downcast::<R>() {
            Ok(unit) => Ok(*unit),
            Err(_) => unreachable!("the type ids matched"),
        }
    }

    /// The Rust type of the unit inside.
    pub fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }
}

impl Envelope for Unit {
    fn kind(&self) -> UnitKind {
        self.inner.kind()
    }

    fn extensions(&self) -> &Extensions {
        self.inner.extensions()
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        self.inner.extensions_mut()
    }

    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.inner.header(name)
    }
}

trait DynOutcome: Send {
    fn is_success(&self) -> bool;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<O: Outcome> DynOutcome for O {
    fn is_success(&self) -> bool {
        Outcome::is_success(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// What a [`Unit`]'s service returned, with its type erased: the transport's own outcome, or
/// a failure an interceptor decided on.
pub struct UnitOutcome {
    repr: Repr,
}

enum Repr {
    Typed(Box<dyn DynOutcome>),
    Failed(BoxError),
}

impl fmt::Debug for UnitOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Typed(outcome) => f
                .debug_struct("UnitOutcome")
                .field("success", &outcome.is_success())
                .finish(),
            Repr::Failed(error) => f
                .debug_struct("UnitOutcome")
                .field("failed", &error.to_string())
                .finish(),
        }
    }
}

impl UnitOutcome {
    /// Erases the type of a transport's outcome.
    pub fn new<O: Outcome>(outcome: O) -> Self {
        Self {
            repr: Repr::Typed(Box::new(outcome)),
        }
    }

    /// A failure: the transport turns it into its own ([`Outcome::failure`]).
    pub fn failed(error: impl Into<BoxError>) -> Self {
        Self {
            repr: Repr::Failed(error.into()),
        }
    }

    /// Whether the unit succeeded.
    pub fn is_success(&self) -> bool {
        match &self.repr {
            Repr::Typed(outcome) => outcome.is_success(),
            Repr::Failed(_) => false,
        }
    }

    /// The transport's outcome, if it is an `O`: to look at an HTTP response, for instance.
    pub fn downcast_ref<O: Outcome>(&self) -> Option<&O> {
        match &self.repr {
            Repr::Typed(outcome) => outcome.as_any().downcast_ref::<O>(),
            Repr::Failed(_) => None,
        }
    }

    /// The outcome as the transport's `O`; a failure (or an outcome of another type, which
    /// only a faulty interceptor produces) becomes `O`'s failure.
    pub fn into_outcome<O: Outcome>(self) -> O {
        match self.repr {
            Repr::Typed(outcome) => match outcome.into_any().downcast::<O>() {
                Ok(outcome) => *outcome,
                Err(_) => O::failure(
                    format!(
                        "an interceptor answered a unit with an outcome other than {}",
                        std::any::type_name::<O>()
                    )
                    .into(),
                ),
            },
            Repr::Failed(error) => O::failure(error),
        }
    }
}

impl Outcome for Result<UnitOutcome, Infallible> {
    fn is_success(&self) -> bool {
        match self {
            Ok(outcome) => outcome.is_success(),
            Err(never) => match *never {},
        }
    }

    fn failure(error: BoxError) -> Self {
        Ok(UnitOutcome::failed(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_keep_their_type_and_do_not_nest() {
        let mut request = http::Request::new(());
        request.extensions_mut().insert(7u8);
        let unit = Unit::new(Unit::new(request));
        assert_eq!(Envelope::kind(&unit), UnitKind::Http);
        assert_eq!(Envelope::extensions(&unit).get::<u8>(), Some(&7));
        let unit = match unit.downcast::<http::Request<String>>() {
            Ok(_) => panic!("a request of another body type"),
            Err(unit) => unit,
        };
        let request = unit.downcast::<http::Request<()>>().unwrap();
        assert_eq!(request.extensions().get::<u8>(), Some(&7));
    }

    #[test]
    fn outcomes_come_back_as_the_transport_type_or_its_failure() {
        let ok: Result<u32, BoxError> = Ok(3);
        let outcome = UnitOutcome::new(ok);
        assert!(outcome.is_success());
        assert_eq!(
            outcome
                .downcast_ref::<Result<u32, BoxError>>()
                .map(|r| r.is_ok()),
            Some(true)
        );
        assert_eq!(outcome.into_outcome::<Result<u32, BoxError>>().unwrap(), 3);

        let failed = UnitOutcome::failed("denied");
        assert!(!failed.is_success());
        let back: Result<u32, BoxError> = failed.into_outcome();
        assert_eq!(back.unwrap_err().to_string(), "denied");

        let wrong = UnitOutcome::new(Ok::<u8, BoxError>(1));
        let back: Result<u32, BoxError> = wrong.into_outcome();
        assert!(back.unwrap_err().to_string().contains("other than"));
    }
}
