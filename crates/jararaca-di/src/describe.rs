//! What the core's extractors contribute to a route's description: nothing, since an
//! injected service or the unit of work is not part of the API contract.

use jararaca_api::RouteInput;

impl RouteInput for crate::UnitOfWork {}
impl RouteInput for crate::Scope {}
impl RouteInput for crate::Container {}
#[cfg(feature = "axum")]
impl<T: ?Sized> RouteInput for crate::Inject<T> {}
