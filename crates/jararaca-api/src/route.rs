//! Routes: what each one takes and returns, read from the handler's own signature through
//! [`RouteInput`] and [`RouteOutput`].

use std::borrow::Cow;
use std::future::Future;

use http::{Method, StatusCode};
use schemars::JsonSchema;
use ts_rs::TS;

use crate::TypeInfo;

/// Where a parameter comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLocation {
    /// A `{name}` segment of the path.
    Path,
    /// The query string.
    Query,
    /// A request header.
    Header,
}

/// A group of parameters read by one extractor: a `Path<T>`, a `Query<T>`, or one header.
#[derive(Debug, Clone)]
pub struct ParamsMeta {
    /// Where they come from.
    pub location: ParamLocation,
    /// The extracted type: a scalar, a tuple (path) or a struct whose fields are the names.
    pub ty: TypeInfo,
    /// For a single header: its name and whether it is required.
    pub header: Option<(Cow<'static, str>, bool)>,
}

/// A documented response.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    /// The status, or `None` for "whatever the handler decides" (OpenAPI's `default`).
    pub status: Option<StatusCode>,
    /// The JSON body type, if any.
    pub body: Option<TypeInfo>,
    /// The body's content type when it is not JSON.
    pub content_type: Option<&'static str>,
}

/// Everything known about one route.
#[derive(Debug, Clone)]
pub struct RouteMeta {
    /// The HTTP method.
    pub method: Method,
    /// The full path template with axum's `{param}` syntax, prefix included.
    pub path: String,
    /// The handler's name (the function name, or the name given to the route).
    pub handler: String,
    /// The owning controller's name.
    pub controller: String,
    /// A one-line summary for the docs.
    pub summary: Option<String>,
    /// Parameters, in extractor order.
    pub params: Vec<ParamsMeta>,
    /// The JSON request body, if the handler reads one.
    pub body: Option<TypeInfo>,
    /// The documented responses.
    pub responses: Vec<ResponseMeta>,
    /// The react-query hooks a generated TypeScript client offers for the route.
    pub hooks: ClientHooks,
}

/// The react-query hooks a generated TypeScript client offers for a route (the reference's
/// `QueryEndpoint` and `MutationEndpoint` marks): `use<Method>` through `@jararaca/core`'s
/// `createClassQueryHooks` / `createClassMutationHooks`, and `use<Method>Infinite` through
/// `createClassInfiniteQueryHooks` for a paginated list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientHooks {
    /// A query hook (a read the client caches).
    pub query: bool,
    /// An infinite-query hook: the route takes a `PaginatedFilter`-like query first and
    /// returns a `Paginated` page.
    pub infinite_query: bool,
    /// A mutation hook (a write).
    pub mutation: bool,
}

impl RouteMeta {
    /// A route for `method` with nothing described yet.
    pub fn new(method: Method) -> Self {
        Self {
            method,
            path: String::new(),
            handler: String::new(),
            controller: String::new(),
            summary: None,
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            hooks: ClientHooks::default(),
        }
    }

    /// The names of the `{params}` in the path template, in order.
    pub fn path_param_names(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|s| s.trim_start_matches('*'))
            .collect()
    }
}

/// What a handler argument contributes to the route's description. Extractors that are not
/// part of the API contract (injected services, the unit of work) contribute nothing.
///
/// Implement it (usually empty) for your own extractors: `impl RouteInput for Principal {}`.
pub trait RouteInput {
    /// Adds this argument's parameters or body to `route`.
    fn describe(route: &mut RouteMeta) {
        let _ = route;
    }
}

/// What a handler's return type contributes to the route's description.
pub trait RouteOutput {
    /// Adds this output's responses to `route`.
    fn describe(route: &mut RouteMeta) {
        let _ = route;
    }
}

/// A handler whose arguments and output can be described; implemented for async functions
/// of up to twelve [`RouteInput`] arguments returning a [`RouteOutput`].
pub trait HandlerMeta<Args> {
    /// Describes the handler's inputs and outputs.
    fn describe(route: &mut RouteMeta);
}

macro_rules! impl_handler_meta {
    ($($arg:ident),*) => {
        impl<F, Fut, Res, $($arg,)*> HandlerMeta<($($arg,)*)> for F
        where
            F: FnOnce($($arg),*) -> Fut,
            Fut: Future<Output = Res>,
            Res: RouteOutput,
            $($arg: RouteInput,)*
        {
            fn describe(route: &mut RouteMeta) {
                $($arg::describe(route);)*
                Res::describe(route);
            }
        }
    };
}

impl_handler_meta!();
impl_handler_meta!(A1);
impl_handler_meta!(A1, A2);
impl_handler_meta!(A1, A2, A3);
impl_handler_meta!(A1, A2, A3, A4);
impl_handler_meta!(A1, A2, A3, A4, A5);
impl_handler_meta!(A1, A2, A3, A4, A5, A6);
impl_handler_meta!(A1, A2, A3, A4, A5, A6, A7);
impl_handler_meta!(A1, A2, A3, A4, A5, A6, A7, A8);
impl_handler_meta!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
impl_handler_meta!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
impl_handler_meta!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
impl_handler_meta!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);

// What the HTTP types and the standard library contribute: nothing that belongs in the
// API contract. The extractors of the other crates describe themselves where they are
// defined.

macro_rules! silent_input {
    ($($ty:ty),* $(,)?) => {$(impl RouteInput for $ty {})*};
}

silent_input!(
    http::HeaderMap,
    http::Method,
    http::Uri,
    http::Extensions,
    http::request::Parts,
    String,
    bytes::Bytes,
);

impl<B> RouteInput for http::Request<B> {}
impl<T: RouteInput> RouteInput for Option<T> {}

impl<T: RouteOutput, E: RouteOutput> RouteOutput for Result<T, E> {
    fn describe(route: &mut RouteMeta) {
        T::describe(route);
        E::describe(route);
    }
}

/// A status chosen at run time with a body: documented as the `default` response.
impl<T: RouteOutput> RouteOutput for (StatusCode, T) {
    fn describe(route: &mut RouteMeta) {
        let before = route.responses.len();
        T::describe(route);
        for response in &mut route.responses[before..] {
            response.status = None;
        }
    }
}

impl RouteOutput for () {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: Some(StatusCode::OK),
            body: None,
            content_type: None,
        });
    }
}

impl RouteOutput for StatusCode {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: None,
            body: None,
            content_type: None,
        });
    }
}

macro_rules! text_output {
    ($($ty:ty),*) => {$(
        impl RouteOutput for $ty {
            fn describe(route: &mut RouteMeta) {
                route.responses.push(ResponseMeta {
                    status: Some(StatusCode::OK),
                    body: None,
                    content_type: Some("text/plain; charset=utf-8"),
                });
            }
        }
    )*};
}

text_output!(String, &'static str);

/// A response the handler builds itself; nothing can be said of it statically.
impl<B> RouteOutput for http::Response<B> {}

/// The error body `{"detail": …}` as the `default` response, once: for error types that
/// answer with [`ErrorBody`] (the HTTP crate's `ApiError`, the query crate's `QueryError`).
pub fn describe_error_response(route: &mut RouteMeta) {
    if !route.responses.iter().any(|r| r.status.is_none()) {
        route.responses.push(ResponseMeta {
            status: None,
            body: Some(TypeInfo::of::<ErrorBody>()),
            content_type: None,
        });
    }
}

/// The JSON body of every error response: `{"detail": …}` with a message or a list of
/// field errors.
#[derive(Debug, serde::Serialize, JsonSchema, TS)]
#[ts(rename = "ErrorResponse")]
#[schemars(rename = "ErrorResponse")]
pub struct ErrorBody {
    /// A message, or a list of `{loc, msg, type}` field errors for a 422.
    #[ts(type = "string | Array<{ loc: Array<string | number>, msg: string, type: string }>")]
    #[schemars(schema_with = "detail_schema")]
    pub detail: serde_json::Value,
}

fn detail_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A message, or a list of `{loc, msg, type}` field errors for a 422.",
        "anyOf": [
            { "type": "string" },
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": { "type": "array", "items": { "type": ["string", "integer"] } },
                        "msg": { "type": "string" },
                        "type": { "type": "string" },
                    },
                    "required": ["loc", "msg", "type"],
                },
            },
        ],
    })
}
