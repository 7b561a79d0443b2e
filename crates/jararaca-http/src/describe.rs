//! What this crate's extractors and responses contribute to a route's description.

use http::StatusCode;
use jararaca_api::{
    ParamLocation, ParamsMeta, ResponseMeta, RouteInput, RouteMeta, RouteOutput, TypeInfo,
    describe_error_response,
};
use schemars::JsonSchema;
use ts_rs::TS;

impl<T: JsonSchema + TS + 'static> RouteInput for crate::Json<T> {
    fn describe(route: &mut RouteMeta) {
        route.body = Some(TypeInfo::of::<T>());
    }
}

impl<T: JsonSchema + TS + 'static> RouteInput for crate::Path<T> {
    fn describe(route: &mut RouteMeta) {
        route.params.push(ParamsMeta {
            location: ParamLocation::Path,
            ty: TypeInfo::of::<T>(),
            header: None,
        });
    }
}

impl<T: JsonSchema + TS + 'static> RouteInput for crate::Query<T> {
    fn describe(route: &mut RouteMeta) {
        route.params.push(ParamsMeta {
            location: ParamLocation::Query,
            ty: TypeInfo::of::<T>(),
            header: None,
        });
    }
}

impl<T: JsonSchema + TS + 'static> RouteOutput for crate::Json<T> {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: Some(StatusCode::OK),
            body: Some(TypeInfo::of::<T>()),
            content_type: None,
        });
    }
}

impl<T: JsonSchema + TS + 'static> RouteOutput for crate::Created<T> {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: Some(StatusCode::CREATED),
            body: Some(TypeInfo::of::<T>()),
            content_type: None,
        });
    }
}

impl RouteOutput for crate::NoContent {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: Some(StatusCode::NO_CONTENT),
            body: None,
            content_type: None,
        });
    }
}

/// The error body `{"detail": …}`, documented as the `default` response.
impl RouteOutput for crate::ApiError {
    fn describe(route: &mut RouteMeta) {
        describe_error_response(route);
    }
}
