//! Controllers: routes grouped under a path prefix, each registered once for the router and
//! for its description.

use std::convert::Infallible;
use std::fmt;

use axum::Router;
use axum::handler::Handler;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter};
use http::Method;
use tower_layer::Layer;
use tower_service::Service;

use jararaca_api::{HandlerMeta, RouteMeta};

use crate::capability::UnitStack;

type RouterLayer<S> = Box<dyn FnOnce(Router<S>) -> Router<S> + Send>;

/// Builds a route's method router with the unit stack around the handler itself.
type InUnit<S> = Box<dyn FnOnce(&UnitStack, S) -> MethodRouter<S> + Send>;

/// A tower layer that can wrap axum routes: what [`Route::layer`] and [`Controller::layer`]
/// take (the service's interceptors, which wrap every transport, are given to the service
/// instead). Implemented for every
/// layer meeting axum's bounds (`Clone + Send + Sync`, a cloneable service whose error
/// converts to `Infallible` and whose response is a response).
pub trait RouteLayer: Clone + Send + Sync + 'static {
    /// Wraps the handlers of one route.
    fn wrap_method_router<S: Clone + Send + Sync + 'static>(
        self,
        router: MethodRouter<S>,
    ) -> MethodRouter<S>;

    /// Wraps every route of a router.
    fn wrap_router<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S>;
}

impl<L> RouteLayer for L
where
    L: Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: Service<axum::extract::Request> + Clone + Send + Sync + 'static,
    <L::Service as Service<axum::extract::Request>>::Response: IntoResponse + 'static,
    <L::Service as Service<axum::extract::Request>>::Error: Into<Infallible> + 'static,
    <L::Service as Service<axum::extract::Request>>::Future: Send + 'static,
{
    fn wrap_method_router<S: Clone + Send + Sync + 'static>(
        self,
        router: MethodRouter<S>,
    ) -> MethodRouter<S> {
        router.layer(self)
    }

    fn wrap_router<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(self)
    }
}

/// One route: a method, a path, a handler and what the handler's signature says about it.
pub struct Route<S = ()> {
    meta: RouteMeta,
    method_router: MethodRouter<S>,
    /// While the route has no layer of its own: the unit stack can wrap the handler before
    /// axum boxes it, instead of wrapping (and boxing again) the boxed route.
    in_unit: Option<InUnit<S>>,
    /// Whether the route is part of the API description (OpenAPI, the TypeScript client).
    documented: bool,
}

impl<S> fmt::Debug for Route<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

macro_rules! method_shortcuts {
    ($($name:ident => $method:ident),*) => {$(
        #[doc = concat!("A `", stringify!($method), "` route.")]
        pub fn $name<H, T, A>(path: &str, handler: H) -> Self
        where
            H: Handler<T, S> + HandlerMeta<A>,
            T: 'static,
        {
            Self::new(Method::$method, path, handler)
        }
    )*};
}

impl<S: Clone + Send + Sync + 'static> Route<S> {
    /// A route for `method` at `path` (relative to its controller's prefix; `{name}`
    /// segments are path parameters).
    ///
    /// # Panics
    /// If `method` is not one axum can route (a custom extension method).
    pub fn new<H, T, A>(method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, S> + HandlerMeta<A>,
        T: 'static,
    {
        let filter = match MethodFilter::try_from(method.clone()) {
            Ok(filter) => filter,
            Err(e) => panic!("cannot route {method}: {e}"),
        };
        let mut meta = RouteMeta::new(method);
        meta.path = path.to_owned();
        meta.handler = handler_name::<H>();
        H::describe(&mut meta);
        let direct = handler.clone();
        Self {
            meta,
            method_router: axum::routing::on(filter, handler),
            in_unit: Some(Box::new(move |stack: &UnitStack, state: S| {
                // `MethodRouter::layer` on a router with no method yet wraps only its 405
                // fallback, which so stays a unit of work as with `Router::layer`.
                MethodRouter::<S, Infallible>::new()
                    .layer::<_, Infallible>(stack.clone())
                    .on_service(filter, stack.layer(direct.with_state(state)))
            })),
            documented: true,
        }
    }

    method_shortcuts!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE);

    /// Names the handler (the default is the function's name); the name becomes the OpenAPI
    /// `operationId` and the TypeScript client method.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.meta.handler = name.into();
        self
    }

    /// A one-line summary for the docs.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.meta.summary = Some(summary.into());
        self
    }

    /// Offers the route as a react-query query hook (`use<Method>`) in the generated
    /// TypeScript client (the reference's `QueryEndpoint`); `#[get("/", query)]` with the
    /// macro.
    pub fn query_hook(mut self) -> Self {
        self.meta.hooks.query = true;
        self
    }

    /// Offers the route as an infinite-query hook (`use<Method>Infinite`) that pages through
    /// its `PaginatedFilter` query (the reference's `QueryEndpoint(has_infinite_query=True)`);
    /// `#[get("/", infinite_query)]` with the macro.
    pub fn infinite_query_hook(mut self) -> Self {
        self.meta.hooks.infinite_query = true;
        self
    }

    /// Offers the route as a react-query mutation hook (`use<Method>`) in the generated
    /// TypeScript client (the reference's `MutationEndpoint`); `#[post("/", mutation)]` with
    /// the macro.
    pub fn mutation_hook(mut self) -> Self {
        self.meta.hooks.mutation = true;
        self
    }

    /// Leaves the route out of the API description (OpenAPI and the TypeScript client),
    /// as a WebSocket endpoint is: it is still served, in the unit stack, like any route.
    pub fn undocumented(mut self) -> Self {
        self.documented = false;
        self
    }

    /// Wraps this route's handler in a tower layer (a per-route interceptor).
    pub fn layer<L: RouteLayer>(mut self, layer: L) -> Self {
        self.method_router = layer.wrap_method_router(self.method_router);
        self.in_unit = None;
        self
    }

    /// What is known about the route.
    pub fn meta(&self) -> &RouteMeta {
        &self.meta
    }
}

/// `my_crate::tasks::create_task` → `create_task`; closures keep their enclosing function's
/// name, to be replaced with [`Route::name`].
fn handler_name<H>() -> String {
    let full = std::any::type_name::<H>();
    let trimmed = full.trim_end_matches("::{{closure}}");
    trimmed.rsplit("::").next().unwrap_or(trimmed).to_owned()
}

/// Routes grouped under a path prefix, like the reference's `@RestController("/tasks")`.
///
/// Handlers get their dependencies from the container through extractors
/// ([`Inject<T>`](jararaca_di::Inject)); the controller only groups and names them.
///
/// ```
/// use jararaca_http::{Controller, Json};
///
/// async fn list() -> Json<Vec<String>> {
///     Json(vec!["write docs".into()])
/// }
///
/// let tasks: Controller = Controller::new("TasksController", "/tasks").get("/", list);
/// assert_eq!(tasks.routes().next().unwrap().path, "/tasks");
/// ```
pub struct Controller<S = ()> {
    name: String,
    prefix: String,
    routes: Vec<Route<S>>,
    layers: Vec<RouterLayer<S>>,
}

impl<S> fmt::Debug for Controller<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("routes", &self.routes)
            .field("layers", &self.layers.len())
            .finish()
    }
}

macro_rules! controller_shortcuts {
    ($($name:ident),*) => {$(
        #[doc = concat!("Adds a `", stringify!($name), "` route at `path` under the prefix.")]
        pub fn $name<H, T, A>(self, path: &str, handler: H) -> Self
        where
            H: Handler<T, S> + HandlerMeta<A>,
            T: 'static,
        {
            self.route(Route::$name(path, handler))
        }
    )*};
}

impl<S: Clone + Send + Sync + 'static> Controller<S> {
    /// A controller named `name` serving under `prefix` (`""` or `"/"` for the root).
    pub fn new(name: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            prefix: prefix.into(),
            routes: Vec::new(),
            layers: Vec::new(),
        }
    }

    /// Adds a route; its path is joined to the prefix (`"/tasks"` + `"/"` serves `/tasks`).
    pub fn route(mut self, mut route: Route<S>) -> Self {
        route.meta.path = join_path(&self.prefix, &route.meta.path);
        route.meta.controller = self.name.clone();
        self.routes.push(route);
        self
    }

    controller_shortcuts!(get, post, put, patch, delete);

    /// Wraps every route of this controller in a tower layer (a per-controller interceptor).
    pub fn layer<L: RouteLayer>(mut self, layer: L) -> Self {
        self.layers
            .push(Box::new(move |router| layer.wrap_router(router)));
        self
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptions of its routes, with full paths.
    pub fn routes(&self) -> impl Iterator<Item = &RouteMeta> {
        self.routes.iter().map(|r| &r.meta)
    }

    /// The descriptions of its routes that are part of the API description (all but the
    /// [`Route::undocumented`] ones).
    pub fn documented_routes(&self) -> impl Iterator<Item = &RouteMeta> {
        self.routes.iter().filter(|r| r.documented).map(|r| &r.meta)
    }

    /// The controller as a router, with its layers applied, and its routes' descriptions.
    pub fn into_router(self) -> (Router<S>, Vec<RouteMeta>) {
        let mut router = Router::new();
        let mut metas = Vec::with_capacity(self.routes.len());
        for route in self.routes {
            router = router.route(&route.meta.path, route.method_router);
            metas.push(route.meta);
        }
        for layer in self.layers {
            router = layer(router);
        }
        (router, metas)
    }
}

impl Controller {
    /// The controller as a router whose routes each run in `stack`: as
    /// `into_router().0.layer(stack)` would, but boxing a route without layers of its own only
    /// once.
    pub(crate) fn into_units(self, stack: &UnitStack) -> Router {
        if !self.layers.is_empty() {
            return self.into_router().0.layer(stack.clone());
        }
        let mut router = Router::new();
        for route in self.routes {
            let method_router = match route.in_unit {
                Some(in_unit) => in_unit(stack, ()),
                None => route.method_router.layer(stack.clone()),
            };
            router = router.route(&route.meta.path, method_router);
        }
        router
    }
}

fn join_path(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    match (prefix.is_empty(), path.is_empty()) {
        (true, true) => "/".to_owned(),
        (_, true) => format!("/{}", prefix.trim_start_matches('/')),
        (true, false) => format!("/{path}"),
        (false, false) => format!("/{}/{path}", prefix.trim_start_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_without_doubled_or_trailing_slashes() {
        assert_eq!(join_path("/tasks", "/"), "/tasks");
        assert_eq!(join_path("/tasks/", "/{id}"), "/tasks/{id}");
        assert_eq!(join_path("tasks", "{id}/done"), "/tasks/{id}/done");
        assert_eq!(join_path("", "/health"), "/health");
        assert_eq!(join_path("/", "/"), "/");
    }

    async fn create_task() {}

    #[test]
    fn handler_names_come_from_the_function() {
        assert_eq!(handler_name::<fn()>(), "fn()");
        fn name_of<H>(_: &H) -> String {
            handler_name::<H>()
        }
        assert_eq!(name_of(&create_task), "create_task");
    }
}
