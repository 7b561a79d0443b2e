//! What can go wrong generating or writing a client.

use std::path::PathBuf;

/// Why a client could not be generated or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsGenError {
    /// A field the client sends would reach the server under another name.
    #[error(
        "field `{field}` of `{ty}` is sent by the client, but @jararaca/core would send it back as `{sent}` \
         (it writes `{camel}` in TypeScript and turns each capital into `_` + lowercase): \
         name the field in snake_case on the wire (`#[serde(rename = \"…\")]`)"
    )]
    RoundTrip {
        /// The type.
        ty: String,
        /// The field's wire name.
        field: String,
        /// Its TypeScript name.
        camel: String,
        /// What the runtime would send.
        sent: String,
    },
    /// Two different Rust types would have the same TypeScript name.
    #[error(
        "two types are both named `{name}` in TypeScript: `{first}` and `{second}`; rename one with `#[ts(rename = \"…\")]`"
    )]
    DuplicateType {
        /// The TypeScript name.
        name: String,
        /// One Rust type.
        first: String,
        /// The other.
        second: String,
    },
    /// ts-rs wrote something this generator cannot read.
    #[error("cannot read the TypeScript of `{ty}` ({reason}): {text}")]
    Syntax {
        /// The type.
        ty: String,
        /// What went wrong.
        reason: String,
        /// The text.
        text: String,
    },
    /// A name that cannot be used in the generated file.
    #[error("{0}")]
    Name(String),
    /// A route that cannot be called the way it is described.
    #[error("route {method} {path} ({handler}): {reason}")]
    Route {
        /// Its method.
        method: String,
        /// Its path.
        path: String,
        /// Its handler.
        handler: String,
        /// What is wrong.
        reason: String,
    },
    /// Two WebSocket messages share an id with different types.
    #[error("WebSocket message `{id}` is registered with two types: `{first}` and `{second}`")]
    DuplicateMessage {
        /// The `MESSAGE_ID`.
        id: String,
        /// One type.
        first: String,
        /// The other.
        second: String,
    },
    /// The file on disk differs from what would be generated, and `CI` forbids writing it.
    #[error(
        "{} is out of date with the API: run `cargo test` without CI=true to regenerate it, then commit it",
        .0.display()
    )]
    Stale(PathBuf),
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The post-processing command failed.
    #[error("post-processing command `{command}` {outcome}")]
    PostProcess {
        /// The command run.
        command: String,
        /// How it ended.
        outcome: String,
    },
}
