//! HTTP as a capability: its controllers, the `server` and `openapi` commands, and the
//! built router.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use clap::{Arg, ArgMatches};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca_api::{ApiDescription, RouteMeta};
use jararaca_di::{
    App, BoxError, BuildContext, Capabilities, Capability, CommandSpec, Contribution,
    InterceptLayer, Part, Role, ScopeLayer, SetupContext, Stop, ToolContext, UnitOfWorkLayer,
};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::MapResponseLayer;

use crate::{CatchPanicLayer, Controller, TraceLayer, openapi};

type RouterFn = Box<dyn FnOnce(Router) -> Router + Send>;

/// Gives a bodiless 404 or 405 its documented error body.
pub(crate) type ErrorBodyLayer =
    MapResponseLayer<fn(axum::response::Response) -> axum::response::Response>;

/// What every route runs in, from the outside in: the error body of a bodiless 405, the
/// request span and request id, the unit of work, the DI scope, the service's interceptors,
/// the catch-panic layer.
pub(crate) type UnitStack = ServiceBuilder<
    Stack<
        CatchPanicLayer,
        Stack<
            InterceptLayer<axum::extract::Request>,
            Stack<
                ScopeLayer,
                Stack<UnitOfWorkLayer, Stack<TraceLayer, Stack<ErrorBodyLayer, Identity>>>,
            >,
        >,
    >,
>;

/// The HTTP capability of a service: its controllers, served by the `server` command.
///
/// A service rarely names it: giving the service a [`Controller`] (or a [`RouterFactory`],
/// or a [`TraceLayer`]) adds it. Each route runs as a unit of work inside, from the outside
/// in: the request span and request id, the unit of work, the DI scope, the service's
/// interceptors, a catch-panic layer — wrapped around each handler before axum boxes it (or
/// once around a route that has layers of its own).
#[derive(Default)]
pub struct Http {
    controllers: Vec<Controller>,
    router_factory: Option<RouterFn>,
    trace: TraceLayer,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("controllers", &self.controllers)
            .field("router_factory", &self.router_factory.is_some())
            .finish_non_exhaustive()
    }
}

impl Contribution for Controller {
    fn contribute(self, capabilities: &mut Capabilities) {
        capabilities
            .get_or_insert_with(Http::default)
            .controllers
            .push(self);
    }
}

/// The request span's configuration (its level, for instance).
impl Contribution for TraceLayer {
    fn contribute(self, capabilities: &mut Capabilities) {
        capabilities.get_or_insert_with(Http::default).trace = self;
    }
}

/// Customises the finished HTTP router: nest it under `/api`, add CORS or other tower-http
/// layers around everything.
pub struct RouterFactory(RouterFn);

impl RouterFactory {
    /// A factory applying `factory` to the finished router.
    pub fn new(factory: impl FnOnce(Router) -> Router + Send + 'static) -> Self {
        Self(Box::new(factory))
    }
}

impl fmt::Debug for RouterFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RouterFactory")
    }
}

impl Contribution for RouterFactory {
    fn contribute(self, capabilities: &mut Capabilities) {
        capabilities
            .get_or_insert_with(Http::default)
            .router_factory = Some(self.0);
    }
}

/// Why the routes of a service cannot be served together.
#[derive(Debug, thiserror::Error)]
#[error(
    "{method} {path} is answered by both {first} and {second}: give one of them another path or method"
)]
pub struct DuplicateRoute {
    /// The method.
    pub method: http::Method,
    /// The path of the second route.
    pub path: String,
    /// `Controller.handler` of the first.
    pub first: String,
    /// `Controller.handler` of the second.
    pub second: String,
}

/// Every pair of routes that would answer the same method and path (`/a/{x}` and `/a/{y}`
/// are the same path), instead of the panic axum raises for them.
fn check_routes<'a>(routes: impl Iterator<Item = &'a RouteMeta>) -> Result<(), DuplicateRoute> {
    let mut seen: HashMap<(http::Method, String), String> = HashMap::new();
    for route in routes {
        let shape = route
            .path
            .split('/')
            .map(|segment| {
                if segment.starts_with("{*") {
                    "{*}"
                } else if segment.starts_with('{') {
                    "{}"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let owner = format!("{}.{}", route.controller, route.handler);
        if let Some(first) = seen.insert((route.method.clone(), shape), owner.clone()) {
            return Err(DuplicateRoute {
                method: route.method.clone(),
                path: route.path.clone(),
                first,
                second: owner,
            });
        }
    }
    Ok(())
}

fn server_command() -> clap::Command {
    clap::Command::new(Role::SERVER)
        .about("Serve the HTTP API (and, with no broker, run the handlers in this process)")
        .arg(
            Arg::new("host")
                .long("host")
                .env("HOST")
                .default_value("0.0.0.0")
                .value_parser(clap::value_parser!(IpAddr))
                .help("Address to listen on"),
        )
        .arg(
            Arg::new("port")
                .long("port")
                .env("PORT")
                .default_value("8000")
                .value_parser(clap::value_parser!(u16))
                .help("Port to listen on"),
        )
        .args(crate::ServerLimits::args())
        .arg(jararaca_di::app::grace_arg())
}

fn openapi_command() -> clap::Command {
    clap::Command::new("openapi")
        .about("Print the OpenAPI 3.1 document")
        .arg(
            Arg::new("output")
                .long("output")
                .short('o')
                .value_name("FILE")
                .help("Write to FILE instead of standard output"),
        )
}

impl Capability for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![
            CommandSpec::role(server_command()),
            CommandSpec::tool(openapi_command()),
        ]
    }

    fn describe(&self, api: &mut ApiDescription) {
        api.routes.extend(
            self.controllers
                .iter()
                .flat_map(Controller::documented_routes)
                .cloned(),
        );
    }

    fn setup(&mut self, _cx: &mut SetupContext<'_>) -> Result<(), BoxError> {
        check_routes(self.controllers.iter().flat_map(Controller::routes))?;
        Ok(())
    }

    fn build(
        self: Box<Self>,
        cx: BuildContext,
    ) -> BoxFuture<'static, Result<Box<dyn Part>, BoxError>> {
        let this = *self;
        async move {
            let part = this.into_part(cx)?;
            Ok(Box::new(part) as Box<dyn Part>)
        }
        .boxed()
    }

    fn run_tool<'a>(
        &'a self,
        command: &'a str,
        matches: &'a ArgMatches,
        cx: ToolContext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        let result = match command {
            "openapi" => print_openapi(cx.description, matches),
            other => Err(format!("http has no command `{other}`").into()),
        };
        async move { result }.boxed()
    }
}

impl Http {
    fn into_part(self, cx: BuildContext) -> Result<HttpPart, BoxError> {
        check_routes(self.controllers.iter().flat_map(Controller::routes))?;
        // The panic is caught inside the unit of work, so it is a failed unit that rolls back.
        let stack = ServiceBuilder::new()
            // A 405 the method router answers with no body gets the documented error body.
            .layer(ErrorBodyLayer::new(
                crate::error::with_error_body as fn(axum::response::Response) -> _,
            ))
            .layer(self.trace)
            .layer(UnitOfWorkLayer::new())
            .layer(ScopeLayer::new(cx.container.clone()))
            .layer(cx.interceptors.layer_for::<axum::extract::Request>())
            .layer(CatchPanicLayer::new());
        let mut api = Router::new();
        for controller in self.controllers {
            api = api.merge(controller.into_units(&stack));
        }
        let openapi = openapi::document(&cx.description);
        let spec = Bytes::from(serde_json::to_vec(&openapi)?);
        let router = api
            .route(
                "/openapi.json",
                get(move || {
                    let spec = spec.clone();
                    async move { ([(http::header::CONTENT_TYPE, "application/json")], spec) }
                }),
            )
            .merge(crate::docs_router(&cx.description.info.title))
            .merge(crate::health_router(cx.readiness.clone(), cx.container))
            .fallback(|| async { crate::ApiError::new(http::StatusCode::NOT_FOUND, "Not Found") });
        let router = match self.router_factory {
            Some(factory) => factory(router),
            None => router,
        };
        Ok(HttpPart {
            router,
            openapi: Arc::new(openapi),
        })
    }
}

fn print_openapi(api: &ApiDescription, matches: &ArgMatches) -> Result<(), BoxError> {
    let text = serde_json::to_string_pretty(&openapi::document(api))?;
    match matches.get_one::<String>("output") {
        Some(path) => {
            std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {path}: {e}"))?
        }
        None => println!("{text}"),
    }
    Ok(())
}

/// The built HTTP capability: the router, served in the `server` role.
#[derive(Debug)]
pub struct HttpPart {
    router: Router,
    openapi: Arc<serde_json::Value>,
}

impl HttpPart {
    /// The router, ready for `axum::serve` or any hyper server (or `oneshot` in tests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The OpenAPI 3.1 document.
    pub fn openapi(&self) -> &serde_json::Value {
        &self.openapi
    }
}

impl Part for HttpPart {
    fn run(&self, role: &Role, stop: Stop) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        if !role.is(Role::SERVER) {
            return None;
        }
        let host = role
            .arg::<IpAddr>("host")
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let port = role.arg::<u16>("port").unwrap_or(8000);
        let addr = SocketAddr::new(host, port);
        let router = self.router();
        let limits = crate::ServerLimits::from_matches(role.matches());
        Some(
            async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| crate::server::ServeError::Bind { addr, source })?;
                let grace = stop.grace();
                crate::server::serve_router_with_limits(
                    router,
                    listener,
                    async move { stop.requested().await },
                    grace,
                    limits,
                )
                .await?;
                Ok(())
            }
            .boxed(),
        )
    }
}

/// The HTTP side of a built [`App`].
pub trait HttpApp {
    /// The router (one answering 404 to everything when the service has no controller).
    fn router(&self) -> Router;

    /// The OpenAPI 3.1 document of the service.
    fn openapi(&self) -> serde_json::Value;
}

impl HttpApp for App {
    fn router(&self) -> Router {
        self.part::<HttpPart>()
            .map(HttpPart::router)
            .unwrap_or_default()
    }

    fn openapi(&self) -> serde_json::Value {
        match self.part::<HttpPart>() {
            Some(part) => part.openapi().clone(),
            None => openapi::document(self.description()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one() {}
    async fn two() {}

    #[test]
    fn two_routes_with_one_method_and_path_shape_are_refused_by_name() {
        let a: Controller = Controller::new("A", "/things").get("/{id}", one);
        let b: Controller = Controller::new("B", "/things").get("/{thing_id}", two);
        let error = check_routes(a.routes().chain(b.routes())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GET /things/{thing_id} is answered by both A.one and B.two: give one of them another path or method"
        );
        let c: Controller = Controller::new("C", "/things").post("/{id}", two);
        assert!(check_routes(a.routes().chain(c.routes())).is_ok());
    }
}
