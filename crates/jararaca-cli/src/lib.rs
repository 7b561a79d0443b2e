//! The `jararaca` developer tool: scaffolding for services built on the Jararaca crates.
//!
//! `jararaca new orders` creates a service to start from in `./orders` (`new`): a
//! `Microservice` with an HTTP controller over a `tasks` entity on SQLite, a message and its
//! handler, a scheduled action, a WebSocket message, migrations and tests, building on its
//! own (`--jararaca-path` points it at a local checkout of the Jararaca crates).
//!
//! `jararaca gen-entity TaskItem src/task_item.rs` writes a Rust module with everything a
//! CRUD resource needs: an entity implementing jararaca-query's `Entity` with its PostgreSQL
//! and SQLite migrations, the DTOs the API exchanges (serde, `schemars::JsonSchema`,
//! `ts_rs::TS`), a list filter with its field whitelist, and a `#[controller]` with create,
//! get, list, replace and delete. The name may be given in any case (`TaskItem`,
//! `task_item`, `task-item`).
//!
//! `jararaca dlq stats|list|requeue|purge` inspects and repairs the dead-letter queue that
//! services share with Python jararaca (`dlq`), with the reference's options.
//!
//! `jararaca gen-tsi FILE_PATH --watch` rebuilds the service in the current folder and runs its
//! own `gen-tsi` (`cargo run -- gen-tsi FILE_PATH`) on every change under `src` (`gen_tsi`),
//! with the watcher a service's `worker --reload` uses (`jararaca::reload::Watch`).
//!
//! The same is available as a library:
//!
//! ```
//! use jararaca_cli::{EntityName, render_entity};
//!
//! let name = EntityName::parse("task-item")?;
//! assert_eq!((name.pascal(), name.snake()), ("TaskItem".to_string(), "task_item".to_string()));
//! let module = render_entity(&name);
//! assert!(module.contains(r#"#[controller("/task-items")]"#));
//! # Ok::<_, jararaca_cli::Error>(())
//! ```

pub mod cli;
pub mod dlq;
mod entity;
pub mod gen_tsi;
mod names;
mod new;

pub use entity::{Output, next_steps, render_entity};
pub use names::EntityName;
pub use new::{JararacaSource, New, Scaffold, ServiceName};

use std::path::PathBuf;

/// What can go wrong in a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The entity name cannot be used.
    #[error("invalid entity name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// The service name cannot be a crate's name.
    #[error("invalid service name {name:?}: {reason}")]
    InvalidServiceName {
        /// The name as given.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// The folder for a new service already holds something.
    #[error("{} exists and is not empty: give another --path, or empty it", path.display())]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },

    /// `--jararaca-path` is not a checkout of the Jararaca workspace.
    #[error("{} is not a Jararaca checkout: it has no {}", path.display(), missing.display())]
    NotACheckout {
        /// The folder given.
        path: PathBuf,
        /// The file it lacks.
        missing: PathBuf,
    },

    /// The output file exists and overwriting was not asked for.
    #[error("{} already exists: pass --force to overwrite it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },

    /// Talking to the broker failed, or its URL is wrong.
    #[error("{0}")]
    Bus(#[from] jararaca_bus::BusError),

    /// A destructive command needs a confirmation nobody can give (no terminal).
    #[error("{question} Refused: standard input is not a terminal; pass -f/--force to confirm")]
    NotConfirmed {
        /// The question that could not be asked.
        question: String,
    },

    /// A command this tool runs failed, or cannot run as asked.
    #[error("{0}")]
    Command(String),

    /// Reading or writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
