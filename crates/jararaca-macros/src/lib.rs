//! Derives and attributes for Jararaca.
//!
//! Everything generated here can be written by hand with the public APIs of the other crates;
//! the macros only save typing.
//!
//! * `#[derive(Injectable)]` implements `jararaca_di::Injectable` (constructor injection).
//! * `#[controller("/prefix")]` on an `impl` block turns its `#[get]`/`#[post]`/`#[put]`/
//!   `#[patch]`/`#[delete]` methods into a `jararaca::http::Controller`.
//! * `#[derive(Message)]` gives a type its bus topic and kind (`jararaca_bus::Message`).
//! * `#[rest_client("/base")]` on a trait of `async fn` routes implements it over a
//!   `jararaca_rpc::RestClient`.
//! * `#[scheduled("cron", …)]` on an `async fn` makes it a `jararaca_cron::ScheduledAction`.
//! * `#[derive(WebSocketMessage)]` gives a type its `MESSAGE_ID`, and
//!   `#[websocket_controller("/prefix")]` turns its `#[websocket("/path")]` methods into a
//!   `jararaca_ws::WebSocketController`.

mod controller;
mod message;
mod rest_client;
mod scheduled;
mod websocket;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Fields, GenericArgument, Path, PathArguments, Type, parse_macro_input,
};

/// Implements `jararaca_di::Injectable` for a struct, so the container builds it from its
/// dependencies.
///
/// Each field is one of:
/// * `Arc<T>` — resolved by type;
/// * `#[inject(token = CONST)] Arc<T>` — resolved under a `Token<T>` constant;
/// * `#[inject(default)] T` — `T::default()`, not injected.
///
/// The generated code names `jararaca_di` directly, or `jararaca::di` when the crate depends
/// only on the facade; `#[inject(crate = path)]` on the struct names it explicitly.
///
/// ```ignore
/// #[derive(Injectable)]
/// struct TaskService {
///     repo: Arc<TaskRepository>,
///     #[inject(token = APP_NAME)]
///     app_name: Arc<String>,
///     #[inject(default)]
///     counter: AtomicU64,
/// }
/// ```
#[proc_macro_derive(Injectable, attributes(inject))]
pub fn derive_injectable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match injectable(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Turns an `impl` block into a REST controller: `Self::controller()` returns a
/// `jararaca::http::Controller` with one route per annotated method.
///
/// ```text
/// #[derive(Injectable)]
/// pub struct TasksController {
///     repo: Arc<TaskRepository>,
/// }
///
/// #[controller("/tasks", layer = AuditLayer)]
/// impl TasksController {
///     // An associated function: extractors only.
///     #[get("/")]
///     async fn list(Inject(repo): Inject<TaskRepository>) -> Json<Vec<Task>> { … }
///
///     // A method: the controller itself is injected (register it with `.injectable()`).
///     #[post("/", name = "createTask", summary = "Create a task", layer = TimeoutLayer::new(…))]
///     async fn create(&self, Json(new): Json<CreateTask>) -> Result<Created<Task>, ApiError> { … }
/// }
/// ```
///
/// expands to what can be written by hand:
///
/// ```text
/// impl TasksController {
///     pub fn controller() -> jararaca::http::Controller {
///         jararaca::http::Controller::new("TasksController", "/tasks")
///             .route(jararaca::http::Route::get("/", Self::list).name("list"))
///             .route(
///                 jararaca::http::Route::post("/", |Inject(this): Inject<Self>, a0: Json<CreateTask>| async move {
///                     this.create(a0).await
///                 })
///                 .name("createTask")
///                 .summary("Create a task")
///                 .layer(TimeoutLayer::new(…)),
///             )
///             .layer(AuditLayer)
///     }
/// }
/// ```
///
/// Controller options: `name = "…"` (default: the type's name), `layer = expr` (repeatable).
/// Route options: `name`, `summary`, `layer` (repeatable), and the TypeScript client's
/// react-query hooks for the route: `query`, `infinite_query`, `mutation` (bare words, e.g.
/// `#[get("/", query, infinite_query)]`, for `Route::query_hook()` and the like).
#[proc_macro_attribute]
pub fn controller(args: TokenStream, item: TokenStream) -> TokenStream {
    match controller::expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Implements a trait of REST routes over `jararaca_rpc::RestClient`, as a struct
/// `<Trait>Client<S>` (or `client = Name`) that wraps a `RestClient<S, E>` and implements the
/// trait with the public `RestRequest` builder.
///
/// Each method is an `async fn` taking `&self`, with one route attribute — `#[get("/path")]`,
/// `#[post]`, `#[put]`, `#[patch]`, `#[delete]` — and optionally `#[timeout(ms)]`. Each argument
/// says where it goes:
///
/// * `#[path]` / `#[path("id")]` — the `{id}` of the path, percent-encoded as one segment;
/// * `#[query]` / `#[query("q")]` — a query parameter; an `Option` is left out when `None`;
/// * `#[header]` / `#[header("X-Name")]` — a header (by default the argument's name with
///   `_` as `-`);
/// * `#[body]` — the JSON body;
/// * `#[form]` / `#[form("name")]` — a form field (`multipart/form-data` when there are files);
/// * `#[file]` / `#[file("name")]` — a `FilePart` of a multipart body.
///
/// The return type is `Result<T, RpcError<E>>`, the same `E` on every route (the client's
/// error type), and `T` picks what the response becomes: `()` ignores the body, `Bytes` is the
/// body, `RpcResponse` the whole response, anything else is decoded from JSON. In the trait,
/// `async fn` becomes `fn … -> impl Future<Output = …> + Send`, so code generic over the trait
/// can spawn its calls and tests can implement it with a fake.
///
/// ```text
/// #[rest_client("/orders")]
/// pub trait Orders {
///     #[get("/{id}")]
///     #[timeout(500)]
///     async fn get(&self, #[path] id: u32) -> Result<Order, RpcError<OrdersError>>;
///
///     #[post("/")]
///     async fn create(&self, #[header("Idempotency-Key")] key: &str, #[body] order: &NewOrder)
///         -> Result<Order, RpcError<OrdersError>>;
/// }
///
/// let orders = OrdersClient::new(rest_client); // a RestClient<S, OrdersError>
/// let order = orders.get(7).await?;
/// ```
///
/// expands to what can be written by hand:
///
/// ```text
/// pub trait Orders {
///     fn get(&self, id: u32) -> impl Future<Output = Result<Order, RpcError<OrdersError>>> + Send;
///     fn create(&self, key: &str, order: &NewOrder)
///         -> impl Future<Output = Result<Order, RpcError<OrdersError>>> + Send;
/// }
///
/// #[derive(Clone, Debug)]
/// pub struct OrdersClient<S> {
///     client: RestClient<S, OrdersError>,
/// }
///
/// impl<S> OrdersClient<S> {
///     pub fn new(client: RestClient<S, OrdersError>) -> Self {
///         Self { client: client.nest("/orders") }
///     }
/// }
///
/// impl<S, B> Orders for OrdersClient<S>
/// where
///     S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync,
///     S::Future: Send,
///     S::Error: Into<BoxError>,
///     B: http_body::Body + Send,
///     B::Data: Send,
///     B::Error: Into<BoxError>,
/// {
///     fn get(&self, id: u32) -> impl Future<Output = Result<Order, RpcError<OrdersError>>> + Send {
///         let request = RestRequest::get("/{id}")
///             .path("id", id)
///             .timeout(Duration::from_millis(500));
///         let client = &self.client;
///         async move { client.json::<Order>(request).await }
///     }
///     // `create` likewise, with `.header("Idempotency-Key", key).json(&order)`.
/// }
/// ```
///
/// Mistakes are compile errors on the offending span: a `#[path]` argument whose `{name}` is
/// not in the path (or the reverse), an unknown or missing argument attribute, two bodies, a
/// return type that is not `Result<_, RpcError<_>>`.
#[proc_macro_attribute]
pub fn rest_client(args: TokenStream, item: TokenStream) -> TokenStream {
    match rest_client::expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Implements `jararaca_bus::Message`: `#[message(topic = "task.created", kind = "event")]`
/// (the kind is `"task"` by default, as in the reference).
///
/// ```ignore
/// #[derive(Serialize, Deserialize, Message)]
/// #[message(topic = "task.created", kind = "event")]
/// struct TaskCreated { id: Uuid }
/// ```
///
/// is the same as implementing the trait by hand:
///
/// ```ignore
/// impl jararaca_bus::Message for TaskCreated {
///     const TOPIC: &'static str = "task.created";
///     const KIND: jararaca_bus::MessageKind = jararaca_bus::MessageKind::Event;
/// }
/// ```
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match message::expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Turns an `async fn` (taking nothing, one `ScheduleDispatchData` or one `Tick`, returning
/// `Result<(), BoxError>`) into a function of the same name returning its
/// `jararaca_cron::ScheduledAction`.
///
/// The first argument is the cron expression in the reference's syntax (seconds, when
/// given, last); then the reference's options: `name = "…"`, `group = "…"`,
/// `channel_id = "…"`, `id = "…"` (queue and Redis keys), `allow_overlap = bool`,
/// `exclusive = bool`, `timeout = seconds`, `on_error = handler`.
///
/// ```text
/// #[scheduled("0 * * * *", name = "purge_done", timeout = 60)]
/// async fn purge_done(tick: ScheduleDispatchData) -> Result<(), BoxError> { … }
///
/// ScheduledController::new("TasksJobs").action("purge_done", purge_done())
/// ```
///
/// expands to what can be written by hand:
///
/// ```text
/// fn purge_done() -> jararaca_cron::ScheduledAction {
///     async fn __purge_done_run(tick: ScheduleDispatchData) -> Result<(), BoxError> { … }
///     jararaca_cron::ScheduledAction::new("0 * * * *", |data| __purge_done_run(data))
///         .name("purge_done")
///         .timeout(Duration::from_secs_f64(60.0))
/// }
/// ```
#[proc_macro_attribute]
pub fn scheduled(args: TokenStream, item: TokenStream) -> TokenStream {
    match scheduled::expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Implements `jararaca_ws::WebSocketMessage`: `#[websocket_message(id = "task.updated")]`
/// gives its `MESSAGE_ID`.
///
/// ```ignore
/// #[derive(Serialize, WebSocketMessage)]
/// #[websocket_message(id = "task.updated")]
/// struct TaskUpdated { task_id: Uuid }
/// ```
///
/// is the same as implementing the trait by hand:
///
/// ```ignore
/// impl jararaca_ws::WebSocketMessage for TaskUpdated {
///     const MESSAGE_ID: &'static str = "task.updated";
/// }
/// ```
#[proc_macro_derive(WebSocketMessage, attributes(websocket_message))]
pub fn derive_websocket_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match websocket::expand_message(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Turns an `impl` block into WebSocket endpoints (the reference's `@WebSocketEndpoint`
/// methods and `@RegisterWebSocketMessage`): `Self::websocket_controller()` returns a
/// `jararaca_ws::WebSocketController`.
///
/// ```text
/// #[websocket_controller("/ws", messages(TaskUpdated, TaskDeleted))]
/// impl TasksSocket {
///     #[websocket("/tasks/{project}")]
///     async fn tasks(upgrade: WsUpgrade, Path(project): Path<String>) -> Result<Response, ApiError> { … }
/// }
/// ```
///
/// expands to what can be written by hand:
///
/// ```text
/// impl TasksSocket {
///     pub fn websocket_controller() -> jararaca_ws::WebSocketController {
///         jararaca_ws::WebSocketController::new("TasksSocket", "/ws")
///             .route(jararaca_http::Route::get("/tasks/{project}", Self::tasks).name("tasks"))
///             .message::<TaskUpdated>()
///             .message::<TaskDeleted>()
///     }
/// }
/// ```
///
/// Controller options: `name = "…"`, `messages(…)`. Endpoint options (`#[websocket("/p",
/// …)]`): `name`, `layer` (repeatable). A method taking `&self` gets the controller injected,
/// as with `#[controller]`.
#[proc_macro_attribute]
pub fn websocket_controller(args: TokenStream, item: TokenStream) -> TokenStream {
    match websocket::expand_controller(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

enum FieldSource {
    Type(Type),
    Token(syn::Expr),
    Default,
}

/// Where `jararaca_di` is for the calling crate: itself, or through the `jararaca` facade.
fn di_path() -> Path {
    use proc_macro_crate::{FoundCrate, crate_name};
    let found = crate_name("jararaca-di")
        .map(|c| (c, false))
        .or_else(|_| crate_name("jararaca").map(|c| (c, true)));
    match found {
        Ok((FoundCrate::Itself, _)) => syn::parse_quote!(crate),
        Ok((FoundCrate::Name(name), facade)) => {
            let ident = syn::Ident::new(&name, proc_macro2::Span::call_site());
            if facade {
                syn::parse_quote!(::#ident::di)
            } else {
                syn::parse_quote!(::#ident)
            }
        }
        Err(_) => syn::parse_quote!(::jararaca_di),
    }
}

/// Where the `jararaca` facade is for the calling crate.
pub(crate) fn facade_path() -> Path {
    use proc_macro_crate::{FoundCrate, crate_name};
    match crate_name("jararaca") {
        Ok(FoundCrate::Itself) => syn::parse_quote!(crate),
        Ok(FoundCrate::Name(name)) => {
            let ident = syn::Ident::new(&name, proc_macro2::Span::call_site());
            syn::parse_quote!(::#ident)
        }
        Err(_) => syn::parse_quote!(::jararaca),
    }
}

/// A capability crate (`jararaca-http`) as the caller names it, or, when the caller only
/// depends on the facade, the facade's module re-exporting it (`jararaca::http`).
pub(crate) fn capability_path(krate: &str, facade_module: &str) -> Path {
    use proc_macro_crate::{FoundCrate, crate_name};
    match crate_name(krate) {
        Ok(FoundCrate::Itself) => syn::parse_quote!(crate),
        Ok(FoundCrate::Name(name)) => {
            let ident = syn::Ident::new(&name, proc_macro2::Span::call_site());
            syn::parse_quote!(::#ident)
        }
        Err(_) => {
            let facade = facade_path();
            let module = syn::Ident::new(facade_module, proc_macro2::Span::call_site());
            syn::parse_quote!(#facade::#module)
        }
    }
}

fn crate_path(attrs: &[syn::Attribute]) -> syn::Result<Path> {
    let mut path: Path = di_path();
    for attr in attrs.iter().filter(|a| a.path().is_ident("inject")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                path = meta.value()?.parse()?;
                Ok(())
            } else {
                Err(meta.error("expected `crate = path` on the struct"))
            }
        })?;
    }
    Ok(path)
}

fn arc_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Arc" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(inner) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

fn field_source(field: &syn::Field) -> syn::Result<FieldSource> {
    let mut source = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("inject")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("default") {
                source = Some(FieldSource::Default);
                Ok(())
            } else if meta.path.is_ident("token") {
                source = Some(FieldSource::Token(meta.value()?.parse()?));
                Ok(())
            } else {
                Err(meta.error("expected `token = CONST` or `default`"))
            }
        })?;
    }
    match source {
        Some(FieldSource::Default) => Ok(FieldSource::Default),
        Some(FieldSource::Token(token)) => {
            arc_inner(&field.ty).ok_or_else(|| arc_error(field))?;
            Ok(FieldSource::Token(token))
        }
        _ => arc_inner(&field.ty)
            .cloned()
            .map(FieldSource::Type)
            .ok_or_else(|| arc_error(field)),
    }
}

fn arc_error(field: &syn::Field) -> syn::Error {
    syn::Error::new(
        field.ty.span(),
        "an Injectable field must be `Arc<T>` (resolved by type), `#[inject(token = TOKEN)] Arc<T>` \
         or `#[inject(default)]`",
    )
}

fn injectable(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let krate = crate_path(&input.attrs)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "Injectable can only be derived for structs",
        ));
    };
    let mut deps = Vec::new();
    let mut values = Vec::new();
    for field in data.fields.iter() {
        let span = field.ty.span();
        let value = match field_source(field)? {
            FieldSource::Type(inner) => {
                deps.push(quote_spanned!(span=> #krate::Key::of::<#inner>()));
                quote_spanned!(span=> resolver.get::<#inner>().await?)
            }
            FieldSource::Token(token) => {
                deps.push(quote_spanned!(span=> (#token).key()));
                quote_spanned!(span=> resolver.get_token(#token).await?)
            }
            FieldSource::Default => quote_spanned!(span=> ::core::default::Default::default()),
        };
        values.push((field.ident.clone(), value));
    }
    let construct = match &data.fields {
        Fields::Named(_) => {
            let fields = values.iter().map(|(ident, value)| quote!(#ident: #value));
            quote!(Self { #(#fields),* })
        }
        Fields::Unnamed(_) => {
            let fields = values.iter().map(|(_, value)| value);
            quote!(Self(#(#fields),*))
        }
        Fields::Unit => quote!(Self),
    };
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #krate::Injectable for #name #ty_generics #where_clause {
            fn dependencies() -> ::std::vec::Vec<#krate::Key> {
                ::std::vec![#(#deps),*]
            }

            async fn inject(resolver: #krate::Resolver) -> ::core::result::Result<Self, #krate::BoxError> {
                ::core::result::Result::Ok(#construct)
            }
        }
    })
}
