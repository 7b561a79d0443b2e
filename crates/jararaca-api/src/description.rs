//! [`ApiDescription`]: everything a service exposes, gathered from its capabilities.

use crate::{RouteMeta, TypeInfo};

/// The API's title, version and description.
#[derive(Debug, Clone)]
pub struct ApiInfo {
    /// The API's title (the service name by default).
    pub title: String,
    /// The API's version.
    pub version: String,
    /// A longer description, in CommonMark.
    pub description: Option<String>,
}

impl ApiInfo {
    /// Version `0.1.0` of the API titled `title`, with no description.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            version: "0.1.0".into(),
            description: None,
        }
    }
}

/// A message a server pushes to WebSocket clients: its `MESSAGE_ID` and its body's type.
#[derive(Debug, Clone)]
pub struct WebSocketMessageMeta {
    /// The id clients dispatch on (`MESSAGE_ID` on the wire).
    pub id: String,
    /// The body's type.
    pub ty: TypeInfo,
    /// The controller that registered it.
    pub controller: String,
}

/// What a service exposes: its routes, the WebSocket messages it pushes and the types it
/// exports on purpose. Capabilities add their parts; OpenAPI and the TypeScript generator
/// read it.
#[derive(Debug, Clone)]
pub struct ApiDescription {
    /// Title, version, description.
    pub info: ApiInfo,
    /// Every HTTP route, in registration order.
    pub routes: Vec<RouteMeta>,
    /// Every WebSocket message, in registration order.
    pub websocket_messages: Vec<WebSocketMessageMeta>,
    /// Types exported although no route mentions them (the reference's `ExposeType`).
    pub exposed_types: Vec<TypeInfo>,
}

impl ApiDescription {
    /// An empty description of the API titled as `info` says.
    pub fn new(info: ApiInfo) -> Self {
        Self {
            info,
            routes: Vec::new(),
            websocket_messages: Vec::new(),
            exposed_types: Vec::new(),
        }
    }
}
