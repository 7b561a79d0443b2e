//! Generation refuses, saying what to change, what would break at run time.

#![allow(dead_code, unreachable_pub)]

use jararaca_api::{
    ApiDescription, ApiInfo, ParamLocation, ParamsMeta, ResponseMeta, RouteMeta, TypeInfo,
    WebSocketMessageMeta,
};
use jararaca_tsgen::TsGenError;
use schemars::JsonSchema;
use ts_rs::TS;

fn api_with(route: RouteMeta) -> ApiDescription {
    let mut api = ApiDescription::new(ApiInfo::new("errors"));
    api.routes.push(route);
    api
}

fn route(method: http::Method, path: &str, handler: &str) -> RouteMeta {
    let mut route = RouteMeta::new(method);
    route.path = path.into();
    route.handler = handler.into();
    route.controller = "ThingsController".into();
    route
}

fn ok<T: JsonSchema + TS + 'static>() -> ResponseMeta {
    ResponseMeta {
        status: Some(http::StatusCode::OK),
        body: Some(TypeInfo::of::<T>()),
        content_type: None,
    }
}

#[derive(JsonSchema, TS)]
#[serde(rename_all = "camelCase")]
struct CamelBody {
    owner_id: u32,
}

#[derive(JsonSchema, TS)]
struct Frame {
    #[serde(rename = "MESSAGE_ID")]
    message_id: String,
}

#[test]
fn a_request_field_that_would_not_round_trip_is_refused() {
    let mut r = route(http::Method::POST, "/things", "create");
    r.body = Some(TypeInfo::of::<CamelBody>());
    let err = jararaca_tsgen::generate(&api_with(r)).unwrap_err();
    assert!(
        matches!(&err, TsGenError::RoundTrip { field, sent, .. } if field == "ownerId" && sent == "owner_id"),
        "{err:?}"
    );
    assert!(err.to_string().contains("snake_case on the wire"), "{err}");
}

#[test]
fn the_same_field_in_a_response_only_is_accepted() {
    let mut r = route(http::Method::GET, "/things", "list");
    r.responses.push(ok::<CamelBody>());
    r.responses.push(ok::<Frame>());
    let ts = jararaca_tsgen::generate(&api_with(r)).unwrap();
    assert!(ts.contains("  ownerId: number;"), "{ts}");
    let mut r = route(http::Method::POST, "/frames", "send");
    r.body = Some(TypeInfo::of::<Frame>());
    let err = jararaca_tsgen::generate(&api_with(r)).unwrap_err();
    assert!(err.to_string().contains("`_m_e_s_s_a_g_e__i_d`"), "{err}");
}

mod one {
    #[derive(schemars::JsonSchema, ts_rs::TS)]
    pub struct Item {
        pub a: u32,
    }
}

mod two {
    #[derive(schemars::JsonSchema, ts_rs::TS)]
    pub struct Item {
        pub b: u32,
    }
}

#[test]
fn two_types_with_one_name_are_refused() {
    let mut r = route(http::Method::GET, "/things", "list");
    r.params.push(ParamsMeta {
        location: ParamLocation::Query,
        ty: TypeInfo::of::<one::Item>(),
        header: None,
    });
    r.responses.push(ok::<two::Item>());
    let err = jararaca_tsgen::generate(&api_with(r)).unwrap_err();
    assert!(
        matches!(err, TsGenError::DuplicateType { ref name, .. } if name == "Item"),
        "{err}"
    );
    assert!(err.to_string().contains("#[ts(rename"), "{err}");
}

#[derive(JsonSchema, TS)]
struct Promise {
    done: bool,
}

#[test]
fn a_type_named_like_what_the_client_uses_is_refused() {
    let mut r = route(http::Method::GET, "/things", "list");
    r.responses.push(ok::<Promise>());
    let err = jararaca_tsgen::generate(&api_with(r)).unwrap_err();
    assert!(err.to_string().contains("type `Promise`"), "{err}");
}

#[test]
fn an_infinite_query_needs_a_paging_filter_and_a_page() {
    let mut r = route(http::Method::GET, "/things", "list");
    r.responses.push(ok::<Vec<u32>>());
    r.hooks.infinite_query = true;
    let err = jararaca_tsgen::generate(&api_with(r.clone())).unwrap_err();
    assert!(err.to_string().contains("must take a `Query<…>`"), "{err}");
    r.params.push(ParamsMeta {
        location: ParamLocation::Query,
        ty: TypeInfo::of::<jararaca_query::PaginatedFilter>(),
        header: None,
    });
    let err = jararaca_tsgen::generate(&api_with(r)).unwrap_err();
    assert!(err.to_string().contains("must return a page"), "{err}");
}

#[test]
fn path_parameters_must_match_the_template() {
    let mut r = route(http::Method::GET, "/things/{a}/{b}", "get");
    r.params.push(ParamsMeta {
        location: ParamLocation::Path,
        ty: TypeInfo::of::<u32>(),
        header: None,
    });
    let err = jararaca_tsgen::generate(&api_with(r)).unwrap_err();
    assert!(
        err.to_string().contains("GET /things/{a}/{b} (get)"),
        "{err}"
    );
    let r = route(http::Method::GET, "/things/{a}", "get");
    assert!(jararaca_tsgen::generate(&api_with(r)).is_err());
}

#[test]
fn two_routes_with_one_method_name_are_refused() {
    let mut api = api_with(route(http::Method::GET, "/a", "list"));
    api.routes.push(route(http::Method::GET, "/b", "list"));
    let err = jararaca_tsgen::generate(&api).unwrap_err();
    assert!(err.to_string().contains("two routes named `list`"), "{err}");
}

#[test]
fn a_message_id_with_two_types_is_refused() {
    let mut api = ApiDescription::new(ApiInfo::new("ws"));
    for ty in [TypeInfo::of::<one::Item>(), TypeInfo::of::<Promise>()] {
        api.websocket_messages.push(WebSocketMessageMeta {
            id: "changed".into(),
            ty,
            controller: "Socket".into(),
        });
    }
    let err = jararaca_tsgen::generate(&api).unwrap_err();
    assert!(matches!(err, TsGenError::DuplicateMessage { .. }), "{err}");
}

#[test]
fn a_prefix_goes_before_every_path() {
    let mut r = route(http::Method::GET, "/things/{id}", "get");
    r.params.push(ParamsMeta {
        location: ParamLocation::Path,
        ty: TypeInfo::of::<u32>(),
        header: None,
    });
    let ts = jararaca_tsgen::generate_with(
        &api_with(r),
        &jararaca_tsgen::Options::new().prefix("/api/"),
    )
    .unwrap();
    assert!(ts.contains("path: \"/api/things/:id\","), "{ts}");
    assert!(
        !ts.contains("import {") || !ts.contains("recursiveCamelToSnakeCase"),
        "no unused imports"
    );
}
