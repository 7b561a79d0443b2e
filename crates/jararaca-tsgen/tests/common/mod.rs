//! A fixture service, described by hand: what the quick start does not show.

#![allow(dead_code, unreachable_pub)]

use jararaca_api::{
    ApiDescription, ApiInfo, ParamLocation, ParamsMeta, ResponseMeta, RouteMeta, TypeInfo,
    WebSocketMessageMeta,
};
use jararaca_query::{Paginated, PaginatedFilter};
use schemars::JsonSchema;
use serde::Serialize;
use ts_rs::TS;

/// Where a task stands.
#[derive(Serialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Todo,
    InProgress,
    Done,
}

/// How urgent a task is, sent as a number.
#[derive(JsonSchema, TS)]
#[ts(repr(enum))]
#[repr(u8)]
pub enum Priority {
    Low = 1,
    Normal = 2,
    High = 3,
}

/// A task.
#[derive(JsonSchema, TS)]
pub struct Task {
    /// Its id.
    pub id: u64,
    /// What to do.
    pub title: String,
    pub status: Status,
    pub priority: Priority,
    /// Its category, if any.
    pub category: Option<Category>,
    /// `line_1` keeps its name on the wire and in TypeScript.
    pub line_1: String,
}

/// A tree of categories (a recursive type).
#[derive(JsonSchema, TS)]
pub struct Category {
    pub name: String,
    pub children: Vec<Category>,
}

/// A value at a version (a generic type).
#[derive(JsonSchema, TS)]
pub struct Revision<T> {
    pub version: u64,
    pub value: T,
}

/// The body that creates a task.
#[derive(JsonSchema, TS)]
pub struct CreateTask {
    pub title: String,
    pub priority: Priority,
    /// Defaults to `todo`.
    #[serde(default = "todo")]
    pub status: Status,
    pub due_on: Option<String>,
}

fn todo() -> Status {
    Status::Todo
}

/// A search over tasks: every field optional.
#[derive(JsonSchema, TS)]
pub struct Search {
    pub text: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// A reserved word as a field.
    #[serde(default)]
    pub default: bool,
}

/// Path parameters by name.
#[derive(JsonSchema, TS)]
pub struct MemberPath {
    pub project_id: u32,
    pub user: String,
}

/// Pushed when a task changes.
#[derive(JsonSchema, TS)]
pub struct TaskChanged {
    pub task_id: u64,
    pub status: Status,
}

/// Pushed to say something.
#[derive(JsonSchema, TS)]
pub struct Notice {
    pub text: String,
}

/// An externally tagged enum with data.
#[derive(JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Circle { radius: f64 },
    Square(f64),
    Empty,
}

/// An internally tagged enum.
#[derive(JsonSchema, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    Manual,
    Scheduled { cron_expression: String },
}

/// Free-form and keyed values, tagged enums and a flattened struct.
#[derive(JsonSchema, TS)]
pub struct Settings {
    pub extra: serde_json::Value,
    pub labels: std::collections::HashMap<String, String>,
    pub shape: Shape,
    pub trigger: Trigger,
    #[serde(flatten)]
    pub paging: PaginatedFilter,
}

/// A bus message, exported on purpose.
#[derive(JsonSchema, TS)]
pub struct TaskArchived {
    pub task_id: u64,
}

fn route(method: http::Method, path: &str, handler: &str, controller: &str) -> RouteMeta {
    let mut route = RouteMeta::new(method);
    route.path = path.into();
    route.handler = handler.into();
    route.controller = controller.into();
    route
}

fn param<T: JsonSchema + TS + 'static>(location: ParamLocation) -> ParamsMeta {
    ParamsMeta {
        location,
        ty: TypeInfo::of::<T>(),
        header: None,
    }
}

fn header<T: JsonSchema + TS + 'static>(name: &'static str, required: bool) -> ParamsMeta {
    ParamsMeta {
        location: ParamLocation::Header,
        ty: TypeInfo::of::<T>(),
        header: Some((name.into(), required)),
    }
}

fn ok<T: JsonSchema + TS + 'static>() -> ResponseMeta {
    ResponseMeta {
        status: Some(http::StatusCode::OK),
        body: Some(TypeInfo::of::<T>()),
        content_type: None,
    }
}

/// The fixture: a tasks API under `/api/v1` covering every parameter location, optional and
/// header parameters, enums, a generic, a recursive type, reserved words, path parameters
/// that prefix one another, the WebSocket message map and every hook bundle.
pub fn fixture() -> ApiDescription {
    let mut api = ApiDescription::new(ApiInfo::new("fixture"));
    let c = "TasksController";

    let mut r = route(http::Method::GET, "/api/v1/tasks", "list_tasks", c);
    r.params
        .push(param::<PaginatedFilter>(ParamLocation::Query));
    r.params.push(header::<String>("x-tenant-id", true));
    r.responses.push(ok::<Paginated<Task>>());
    r.hooks.query = true;
    r.hooks.infinite_query = true;
    api.routes.push(r);

    let mut r = route(http::Method::GET, "/api/v1/tasks/search", "search_tasks", c);
    r.params.push(param::<Search>(ParamLocation::Query));
    r.responses.push(ok::<Vec<Task>>());
    r.hooks.query = true;
    api.routes.push(r);

    let mut r = route(http::Method::GET, "/api/v1/tasks/{id}", "get_task", c);
    r.params.push(param::<u64>(ParamLocation::Path));
    r.params
        .push(header::<Option<String>>("x-request-id", false));
    r.responses.push(ok::<Revision<Task>>());
    r.hooks.query = true;
    api.routes.push(r);

    let mut r = route(http::Method::POST, "/api/v1/tasks", "create_task", c);
    r.params.push(header::<String>("x-tenant-id", true));
    r.params.push(header::<u32>("x-retry-attempt", false));
    r.body = Some(TypeInfo::of::<CreateTask>());
    r.responses.push(ResponseMeta {
        status: Some(http::StatusCode::CREATED),
        body: Some(TypeInfo::of::<Task>()),
        content_type: None,
    });
    r.responses.push(ResponseMeta {
        status: None,
        body: Some(TypeInfo::of::<jararaca_api::ErrorBody>()),
        content_type: None,
    });
    r.hooks.mutation = true;
    api.routes.push(r);

    let mut r = route(http::Method::DELETE, "/api/v1/tasks/{id}", "delete", c);
    r.params.push(param::<u64>(ParamLocation::Path));
    r.responses.push(ResponseMeta {
        status: Some(http::StatusCode::NO_CONTENT),
        body: None,
        content_type: None,
    });
    r.hooks.mutation = true;
    api.routes.push(r);

    let mut r = route(
        http::Method::PUT,
        "/api/v1/tasks/{id}/links/{id_2}",
        "link_tasks",
        c,
    );
    r.params.push(param::<(u64, u64)>(ParamLocation::Path));
    api.routes.push(r);

    let mut r = route(
        http::Method::PATCH,
        "/api/v1/settings",
        "update_settings",
        c,
    );
    r.body = Some(TypeInfo::of::<Settings>());
    r.responses.push(ok::<Settings>());
    r.hooks.mutation = true;
    api.routes.push(r);

    let p = "ProjectsController";
    let mut r = route(
        http::Method::GET,
        "/api/v1/projects/{project_id}/members/{user}",
        "get_member",
        p,
    );
    r.params.push(param::<MemberPath>(ParamLocation::Path));
    r.responses.push(ResponseMeta {
        status: Some(http::StatusCode::OK),
        body: None,
        content_type: Some("text/plain; charset=utf-8"),
    });
    api.routes.push(r);

    let mut r = route(http::Method::GET, "/api/v1/classes/{class}", "get_class", p);
    r.params.push(param::<String>(ParamLocation::Path));
    r.responses.push(ok::<Category>());
    r.hooks.query = true;
    r.hooks.mutation = true;
    api.routes.push(r);

    api.websocket_messages.push(WebSocketMessageMeta {
        id: "task.changed".into(),
        ty: TypeInfo::of::<TaskChanged>(),
        controller: "TasksSocket".into(),
    });
    api.websocket_messages.push(WebSocketMessageMeta {
        id: "notice".into(),
        ty: TypeInfo::of::<Notice>(),
        controller: "TasksSocket".into(),
    });
    api.exposed_types.push(TypeInfo::of::<TaskArchived>());
    api
}
