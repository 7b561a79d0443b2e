//! Route metadata kept at run time: what each route takes and returns, for OpenAPI and the
//! TypeScript client, read from the handler's own signature.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use http::{Method, StatusCode};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use ts_rs::TS;

/// A Rust type that appears in the API, with the means to describe it as JSON Schema and as
/// TypeScript.
#[derive(Clone, Copy)]
pub struct TypeInfo {
    rust_name: fn() -> &'static str,
    schema: fn(&mut SchemaGenerator) -> Schema,
    ts_name: fn(&ts_rs::Config) -> String,
    ts_declarations: fn(&ts_rs::Config, &mut BTreeMap<String, String>),
}

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str((self.rust_name)())
    }
}

impl TypeInfo {
    /// The description of `T`.
    pub fn of<T: JsonSchema + TS + 'static>() -> Self {
        Self {
            rust_name: std::any::type_name::<T>,
            schema: |generator| generator.subschema_for::<T>(),
            ts_name: |cfg| T::name(cfg),
            ts_declarations: collect_declarations::<T>,
        }
    }

    /// The Rust type's full name.
    pub fn rust_name(&self) -> &'static str {
        (self.rust_name)()
    }

    /// Its JSON Schema (a `$ref` into the generator's definitions for named types).
    pub fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.schema)(generator)
    }

    /// Its TypeScript type expression, e.g. `Array<Task>`.
    pub fn ts_name(&self, cfg: &ts_rs::Config) -> String {
        (self.ts_name)(cfg)
    }

    /// Adds the TypeScript declarations of the type and everything it refers to, by name.
    pub fn ts_declarations(&self, cfg: &ts_rs::Config, out: &mut BTreeMap<String, String>) {
        (self.ts_declarations)(cfg, out)
    }
}

fn collect_declarations<T: TS + 'static + ?Sized>(
    cfg: &ts_rs::Config,
    out: &mut BTreeMap<String, String>,
) {
    struct Visitor<'a> {
        cfg: &'a ts_rs::Config,
        out: &'a mut BTreeMap<String, String>,
    }
    impl ts_rs::TypeVisitor for Visitor<'_> {
        fn visit<U: TS + 'static + ?Sized>(&mut self) {
            collect_declarations::<U>(self.cfg, self.out);
        }
    }
    // Only derived types have a declaration (and an output path); built-ins are inlined.
    if T::output_path().is_some() {
        let ident = <T::WithoutGenerics as TS>::ident(cfg);
        if out.contains_key(&ident) {
            return;
        }
        out.insert(ident, <T::WithoutGenerics as TS>::decl(cfg));
    }
    let mut visitor = Visitor { cfg, out };
    T::visit_dependencies(&mut visitor);
    T::visit_generics(&mut visitor);
}

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
}

impl RouteMeta {
    pub(crate) fn new(method: Method) -> Self {
        Self {
            method,
            path: String::new(),
            handler: String::new(),
            controller: String::new(),
            summary: None,
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
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

// Inputs.

impl<T: JsonSchema + TS + 'static> RouteInput for super::Json<T> {
    fn describe(route: &mut RouteMeta) {
        route.body = Some(TypeInfo::of::<T>());
    }
}

impl<T: JsonSchema + TS + 'static> RouteInput for super::Path<T> {
    fn describe(route: &mut RouteMeta) {
        route.params.push(ParamsMeta {
            location: ParamLocation::Path,
            ty: TypeInfo::of::<T>(),
            header: None,
        });
    }
}

impl<T: JsonSchema + TS + 'static> RouteInput for super::Query<T> {
    fn describe(route: &mut RouteMeta) {
        route.params.push(ParamsMeta {
            location: ParamLocation::Query,
            ty: TypeInfo::of::<T>(),
            header: None,
        });
    }
}

macro_rules! silent_input {
    ($($ty:ty),* $(,)?) => {$(impl RouteInput for $ty {})*};
}

silent_input!(
    jararaca_di::UnitOfWork,
    jararaca_di::Scope,
    jararaca_di::Container,
    http::HeaderMap,
    http::Method,
    http::Uri,
    http::request::Parts,
    axum::extract::Request,
    axum::extract::MatchedPath,
    axum::extract::OriginalUri,
    String,
    bytes::Bytes,
);

impl<T: ?Sized> RouteInput for jararaca_di::Inject<T> {}
impl<T> RouteInput for axum::extract::State<T> {}
impl<T> RouteInput for axum::extract::Extension<T> {}
impl<T: RouteInput> RouteInput for Option<T> {}

// Outputs.

impl<T: JsonSchema + TS + 'static> RouteOutput for super::Json<T> {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: Some(StatusCode::OK),
            body: Some(TypeInfo::of::<T>()),
            content_type: None,
        });
    }
}

impl<T: JsonSchema + TS + 'static> RouteOutput for super::Created<T> {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: Some(StatusCode::CREATED),
            body: Some(TypeInfo::of::<T>()),
            content_type: None,
        });
    }
}

impl RouteOutput for super::NoContent {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: Some(StatusCode::NO_CONTENT),
            body: None,
            content_type: None,
        });
    }
}

impl<T: JsonSchema + TS + 'static> RouteOutput for (StatusCode, super::Json<T>) {
    fn describe(route: &mut RouteMeta) {
        route.responses.push(ResponseMeta {
            status: None,
            body: Some(TypeInfo::of::<T>()),
            content_type: None,
        });
    }
}

impl<T: RouteOutput, E: RouteOutput> RouteOutput for Result<T, E> {
    fn describe(route: &mut RouteMeta) {
        T::describe(route);
        E::describe(route);
    }
}

/// The error body `{"detail": …}`, documented as the `default` response.
impl RouteOutput for super::ApiError {
    fn describe(route: &mut RouteMeta) {
        if !route.responses.iter().any(|r| r.status.is_none()) {
            route.responses.push(ResponseMeta {
                status: None,
                body: Some(TypeInfo::of::<ErrorBody>()),
                content_type: None,
            });
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
impl RouteOutput for axum::response::Response {}

/// The JSON body of every error response: `{"detail": …}` with a message or a list of
/// field errors.
#[derive(Debug, serde::Serialize, JsonSchema, TS)]
#[ts(rename = "ErrorResponse")]
#[schemars(rename = "ErrorResponse")]
pub struct ErrorBody {
    /// A message, or a list of `{loc, msg, type}` field errors for a 422.
    #[ts(type = "string | Array<{ loc: Array<string | number>, msg: string, type: string }>")]
    pub detail: serde_json::Value,
}
