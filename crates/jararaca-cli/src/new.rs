//! `jararaca new NAME`: a service to start from, in a folder of its own.
//!
//! The service is the quick start's shape: a `Microservice` with an HTTP controller over a
//! `tasks` entity (jararaca-query, SQLite by default, PostgreSQL with `DATABASE_URL`), a
//! message published after the commit and its handler, a scheduled action, a WebSocket
//! message, the sqlx migrations, and tests: the API through the in-process router, the
//! handler's live update through a real socket, and the TypeScript client kept fresh.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::Error;

/// The files of a new service: where each goes and its template.
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("templates/new/Cargo.toml.tmpl")),
    ("README.md", include_str!("templates/new/README.md.tmpl")),
    (".gitignore", include_str!("templates/new/gitignore.tmpl")),
    (
        "src/main.rs",
        include_str!("templates/new/src/main.rs.tmpl"),
    ),
    ("src/lib.rs", include_str!("templates/new/src/lib.rs.tmpl")),
    (
        "src/tasks.rs",
        include_str!("templates/new/src/tasks.rs.tmpl"),
    ),
    (
        "src/events.rs",
        include_str!("templates/new/src/events.rs.tmpl"),
    ),
    (
        "src/jobs.rs",
        include_str!("templates/new/src/jobs.rs.tmpl"),
    ),
    (
        "src/live.rs",
        include_str!("templates/new/src/live.rs.tmpl"),
    ),
    (
        "tests/api.rs",
        include_str!("templates/new/tests/api.rs.tmpl"),
    ),
    (
        "tests/typescript_client.rs",
        include_str!("templates/new/tests/typescript_client.rs.tmpl"),
    ),
    (
        "migrations/sqlite/0001_create_tasks.sql",
        include_str!("templates/new/migrations/sqlite/0001_create_tasks.sql"),
    ),
    (
        "migrations/sqlite/0002_create_jararaca_outbox.sql",
        include_str!("templates/new/migrations/sqlite/0002_create_jararaca_outbox.sql"),
    ),
    (
        "migrations/postgres/0001_create_tasks.sql",
        include_str!("templates/new/migrations/postgres/0001_create_tasks.sql"),
    ),
    (
        "migrations/postgres/0002_create_jararaca_outbox.sql",
        include_str!("templates/new/migrations/postgres/0002_create_jararaca_outbox.sql"),
    ),
];

/// The Jararaca crates a new service depends on (each in its `Cargo.toml` as `{{crate}}`).
const JARARACA_CRATES: &[&str] = &["jararaca", "jararaca-query"];

/// Rust keywords, strict and reserved, in every edition: a crate named so has no usable name.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Names cargo refuses for a package (Rust's own crates, its build folders) and file names
/// Windows reserves.
const RESERVED: &[&str] = &[
    "alloc",
    "build",
    "core",
    "deps",
    "examples",
    "incremental",
    "proc_macro",
    "std",
    "test",
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
];

/// `jararaca new NAME [--path DIR] [--jararaca-path WORKSPACE_DIR | --jararaca-version VER]`.
#[derive(Debug, Clone, Args)]
pub struct New {
    /// The service's name: its crate, binary and service name (lower-case letters, digits,
    /// `-` and `_`, starting with a letter).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The folder to create the service in (default `./NAME`); it must be empty or not exist.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Depend on the Jararaca crates of a local checkout (its workspace folder) instead of the
    /// published ones; the checkout's Cargo.lock becomes the service's, so versions match.
    #[arg(
        long,
        value_name = "WORKSPACE_DIR",
        conflicts_with = "jararaca_version"
    )]
    pub jararaca_path: Option<PathBuf>,
    /// The published version of the Jararaca crates to depend on (default: this tool's).
    #[arg(long, value_name = "VER")]
    pub jararaca_version: Option<String>,
}

impl New {
    /// Writes the service; returns what to tell the user next.
    pub fn run(&self) -> Result<String, Error> {
        let name = ServiceName::parse(&self.name)?;
        let source = match (&self.jararaca_path, &self.jararaca_version) {
            (Some(path), _) => JararacaSource::local(path)?,
            (None, Some(version)) => JararacaSource::published(version)?,
            (None, None) => JararacaSource::published(env!("CARGO_PKG_VERSION"))?,
        };
        let dir = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(name.as_str()));
        let scaffold = Scaffold::new(name, source);
        scaffold.write(&dir)?;
        Ok(scaffold.next_steps(&dir))
    }
}

/// A new service's name, valid as a crate name: lower-case ASCII letters, digits, `-` and
/// `_`, starting with a letter; not a Rust keyword, a name cargo reserves, or a crate the
/// service depends on.
///
/// ```
/// use jararaca_cli::ServiceName;
///
/// let name = ServiceName::parse("order-service")?;
/// assert_eq!((name.as_str(), name.ident()), ("order-service", "order_service".to_string()));
/// assert!(ServiceName::parse("Orders").is_err());
/// # Ok::<_, jararaca_cli::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName(String);

impl ServiceName {
    /// Checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidServiceName {
            name: raw.to_owned(),
            reason,
        };
        let Some(first) = raw.chars().next() else {
            return Err(invalid("it is empty".into()));
        };
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
        {
            let hint = if bad.is_ascii_uppercase() {
                " (crate names are lower case)"
            } else {
                ""
            };
            return Err(invalid(format!(
                "{bad:?} is not allowed{hint}: use lower-case ASCII letters, digits, `-` or `_`"
            )));
        }
        if !first.is_ascii_lowercase() {
            return Err(invalid("it must start with a letter".into()));
        }
        if raw.len() > 64 {
            return Err(invalid("it is longer than 64 characters".into()));
        }
        let ident = raw.replace('-', "_");
        if KEYWORDS.contains(&ident.as_str()) {
            return Err(invalid("it is a Rust keyword".into()));
        }
        if RESERVED.contains(&ident.as_str()) {
            return Err(invalid("cargo or the file system reserves it".into()));
        }
        if ident.starts_with("jararaca") {
            return Err(invalid(
                "it would clash with the Jararaca crates; pick the service's own name".into(),
            ));
        }
        if let Some(dependency) = dependencies().find(|d| d.replace('-', "_") == ident) {
            return Err(invalid(format!(
                "the service depends on a crate named `{dependency}`"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as given: the crate's, the binary's and the service's.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as Rust code refers to the crate: `order_service`.
    pub fn ident(&self) -> String {
        self.0.replace('-', "_")
    }
}

/// The crates the new service's `Cargo.toml` names.
fn dependencies() -> impl Iterator<Item = &'static str> {
    let manifest = TEMPLATES[0].1;
    manifest
        .split_once("[dependencies]")
        .map_or("", |(_, rest)| rest)
        .lines()
        .take_while(|line| !line.starts_with("[workspace]"))
        .filter_map(|line| line.split_once(" = ").map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && !name.starts_with(['#', '[']))
}

/// Where the new service's Jararaca crates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JararacaSource {
    /// The package registry, at this version requirement.
    Published {
        /// A version requirement: `0.1.0`, `0.1`, `=0.1.2`.
        version: String,
    },
    /// A local checkout of the Jararaca workspace.
    Local {
        /// The workspace's folder (absolute).
        workspace: PathBuf,
    },
}

impl JararacaSource {
    /// The registry's crates at `version`.
    pub fn published(version: &str) -> Result<Self, Error> {
        let version = version.trim();
        if version.is_empty() || version.contains(['"', '\\', '\n']) {
            return Err(Error::Command(format!(
                "{version:?} is not a version requirement: give one like 0.1.0"
            )));
        }
        Ok(Self::Published {
            version: version.to_owned(),
        })
    }

    /// The crates of the checkout at `workspace`, which must hold them.
    pub fn local(workspace: &Path) -> Result<Self, Error> {
        let workspace = workspace.canonicalize().map_err(|source| Error::Io {
            path: workspace.to_owned(),
            source,
        })?;
        for name in JARARACA_CRATES {
            let manifest = workspace.join("crates").join(name).join("Cargo.toml");
            if !manifest.is_file() {
                return Err(Error::NotACheckout {
                    path: workspace,
                    missing: manifest,
                });
            }
        }
        Ok(Self::Local { workspace })
    }

    /// `version = "…"` or `path = "…"`: how `Cargo.toml` names `name`'s source.
    fn spec(&self, name: &str) -> String {
        match self {
            Self::Published { version } => format!("version = \"{version}\""),
            Self::Local { workspace } => {
                let path = workspace.join("crates").join(name);
                let path = path.to_string_lossy();
                format!(
                    "path = \"{}\"",
                    path.replace('\\', "\\\\").replace('"', "\\\"")
                )
            }
        }
    }
}

/// A new service: its files rendered for a name and a source of the Jararaca crates.
///
/// ```
/// use jararaca_cli::{JararacaSource, Scaffold, ServiceName};
///
/// let scaffold = Scaffold::new(ServiceName::parse("orders")?, JararacaSource::published("0.1.0")?);
/// let files = scaffold.files();
/// let (_, manifest) = files.iter().find(|(path, _)| *path == "Cargo.toml").unwrap();
/// assert!(manifest.contains("name = \"orders\""));
/// assert!(manifest.contains("jararaca = { version = \"0.1.0\", features = ["));
/// # Ok::<_, jararaca_cli::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Scaffold {
    name: ServiceName,
    source: JararacaSource,
}

impl Scaffold {
    /// The service `name`, depending on the Jararaca crates from `source`.
    pub fn new(name: ServiceName, source: JararacaSource) -> Self {
        Self { name, source }
    }

    /// Every file, with its path relative to the service's folder.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let mut markers = vec![
            ("{{crate}}".to_owned(), self.name.as_str().to_owned()),
            ("{{crate_ident}}".to_owned(), self.name.ident()),
        ];
        markers.extend(
            JARARACA_CRATES
                .iter()
                .map(|name| (format!("{{{{{name}}}}}"), self.source.spec(name))),
        );
        TEMPLATES
            .iter()
            .map(|(path, template)| {
                let text = markers
                    .iter()
                    .fold((*template).to_owned(), |text, (marker, value)| {
                        text.replace(marker, value)
                    });
                (*path, text)
            })
            .collect()
    }

    /// Writes the service into `dir`, which must be empty or not exist. With a local
    /// checkout, its `Cargo.lock` is copied too, so the service builds with the versions the
    /// checkout was tested with (and offline, when they are already downloaded).
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::NotEmpty {
                        path: dir.to_owned(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: dir.to_owned(),
                    source,
                });
            }
        }
        for (relative, text) in self.files() {
            let path = dir.join(relative);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            fs::write(&path, text).map_err(io(&path))?;
        }
        if let JararacaSource::Local { workspace } = &self.source {
            let lock = workspace.join("Cargo.lock");
            if lock.is_file() {
                fs::copy(&lock, dir.join("Cargo.lock")).map_err(io(&lock))?;
            }
        }
        Ok(())
    }

    /// What to do next, for the person who created the service in `dir`.
    pub fn next_steps(&self, dir: &Path) -> String {
        format!(
            "Created the {name} service in {dir}. Next:\n\
             \x20 cd {dir}\n\
             \x20 cargo run -- server   # http://localhost:8000/docs\n\
             \x20 cargo test            # also writes client/{name}.ts: commit it\n",
            name = self.name.as_str(),
            dir = dir.display(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(name: &str, source: JararacaSource) -> Vec<(&'static str, String)> {
        Scaffold::new(ServiceName::parse(name).unwrap(), source).files()
    }

    fn file<'a>(files: &'a [(&str, String)], path: &str) -> &'a str {
        &files.iter().find(|(p, _)| *p == path).unwrap().1
    }

    #[test]
    fn every_marker_is_replaced_with_the_names() {
        let files = files("order-service", JararacaSource::published("0.1.0").unwrap());
        assert_eq!(files.len(), TEMPLATES.len());
        for (path, text) in &files {
            assert!(!text.contains("{{"), "{path}: a marker is left");
        }
        let manifest = file(&files, "Cargo.toml");
        assert!(manifest.contains("name = \"order-service\""), "{manifest}");
        assert!(manifest.contains(
            "jararaca = { version = \"0.1.0\", features = [\"bus\", \"cron\", \"tsgen\", \"ws\"] }"
        ));
        assert!(manifest.contains("jararaca-query = { version = \"0.1.0\", features = ["));
        assert!(file(&files, "src/main.rs").contains("use order_service::service;"));
        assert!(file(&files, "src/lib.rs").contains("Microservice::new(\"order-service\")"));
        assert!(file(&files, "tests/api.rs").contains("use order_service::{TASKS_ROOM, service};"));
    }

    #[test]
    fn a_local_checkout_is_named_by_path() {
        let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let source = JararacaSource::local(Path::new(workspace)).unwrap();
        let JararacaSource::Local { workspace } = &source else {
            panic!("{source:?}");
        };
        assert!(workspace.is_absolute());
        let files = files("demo", source.clone());
        let manifest = file(&files, "Cargo.toml");
        let expected = format!(
            "jararaca = {{ path = \"{}\", features = [",
            workspace.join("crates/jararaca").display()
        );
        assert!(manifest.contains(&expected), "{manifest}");

        let err = JararacaSource::local(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
        assert!(matches!(err, Error::NotACheckout { .. }), "{err}");
        assert!(
            err.to_string().contains("crates/jararaca/Cargo.toml"),
            "{err}"
        );
    }

    #[test]
    fn names_that_cannot_be_crates_are_refused_with_the_reason() {
        for (raw, reason) in [
            ("", "empty"),
            ("Orders", "lower case"),
            ("order.service", "'.' is not allowed"),
            ("2fa", "start with a letter"),
            ("-x", "start with a letter"),
            ("fn", "keyword"),
            ("self", "keyword"),
            ("test", "reserves"),
            ("nul", "reserves"),
            ("jararaca-orders", "clash"),
            ("serde", "depends on a crate named `serde`"),
            ("ts_rs", "depends on a crate named `ts-rs`"),
            ("tokio-tungstenite", "depends on a crate named"),
        ] {
            let err = ServiceName::parse(raw).unwrap_err().to_string();
            assert!(err.contains(reason), "{raw:?}: {err}");
        }
        assert!(ServiceName::parse(&"a".repeat(65)).is_err());
        for raw in ["demo", "order-service", "orders_v2", "a"] {
            ServiceName::parse(raw).unwrap();
        }
    }

    #[test]
    fn the_dependencies_are_read_from_the_manifest_template() {
        let names: Vec<&str> = dependencies().collect();
        for expected in [
            "chrono",
            "jararaca",
            "serde",
            "sqlx",
            "tower",
            "futures-util",
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        assert!(
            !names.iter().any(|n| n.contains(' ') || n.contains('"')),
            "{names:?}"
        );
    }

    #[test]
    fn a_version_requirement_is_checked() {
        assert!(JararacaSource::published("").is_err());
        assert!(JararacaSource::published("1\", path = \"/x").is_err());
        assert_eq!(
            JararacaSource::published(" 0.2 ").unwrap(),
            JararacaSource::Published {
                version: "0.2".into()
            }
        );
    }
}
