//! `gen-entity`: a Rust module with an entity, its DTOs, a list filter and a CRUD controller.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{EntityName, Error};

const TEMPLATE: &str = include_str!("templates/entity.rs.tmpl");

/// Renders the module for `name`: an entity implementing jararaca-query's `Entity` (id,
/// `name`, `created_at`, `updated_at`) with its PostgreSQL and SQLite migrations; the
/// `<Name>`, `Create<Name>` and `Update<Name>` DTOs; a `<Name>Filter` with its field
/// whitelist; a `<Name>Page`; and a `#[controller("/<plural-kebab-name>")]` with create, get,
/// list (`POST …/query` with the filter), replace and delete.
///
/// ```
/// use jararaca_cli::{EntityName, render_entity};
///
/// let module = render_entity(&EntityName::parse("order_line")?);
/// assert!(module.contains("pub struct OrderLineEntity {"));
/// assert!(module.contains(r#"const TABLE: &'static str = "order_lines";"#));
/// assert!(module.contains(r#"#[controller("/order-lines")]"#));
/// # Ok::<_, jararaca_cli::Error>(())
/// ```
pub fn render_entity(name: &EntityName) -> String {
    let a_human = with_article(&name.human());
    let replacements = [
        ("{{Name}}", name.pascal()),
        ("{{name}}", name.snake()),
        ("{{names}}", name.plural_snake()),
        ("{{route}}", name.plural_kebab()),
        ("{{human}}", name.human()),
        ("{{humans}}", name.plural_human()),
        ("{{Humans}}", capitalize(&name.plural_human())),
        ("{{a_human}}", a_human.clone()),
        ("{{A_human}}", capitalize(&a_human)),
    ];
    replacements
        .iter()
        .fold(TEMPLATE.to_string(), |text, (marker, value)| {
            text.replace(marker, value)
        })
}

/// Where `gen-entity` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output (`-`).
    Stdout,
    /// A file; its parent directories are created.
    File {
        /// The file.
        path: PathBuf,
        /// Whether an existing file may be replaced.
        overwrite: bool,
    },
}

impl Output {
    /// `-` is standard output; anything else a file.
    pub fn new(path: &Path, overwrite: bool) -> Self {
        if path == Path::new("-") {
            Self::Stdout
        } else {
            Self::File {
                path: path.to_path_buf(),
                overwrite,
            }
        }
    }

    /// Writes `text`. A file that exists is an error unless overwriting was asked for (the
    /// check and the creation are one step, so nothing is overwritten by a race).
    pub fn write(&self, text: &str) -> Result<(), Error> {
        match self {
            Self::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(|source| Error::Io {
                        path: PathBuf::from("-"),
                        source,
                    })
            }
            Self::File { path, overwrite } => {
                let io = |source| Error::Io {
                    path: path.clone(),
                    source,
                };
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(|source| Error::Io {
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                let mut options = OpenOptions::new();
                options.write(true);
                if *overwrite {
                    options.create(true).truncate(true);
                } else {
                    options.create_new(true);
                }
                let mut file = options.open(path).map_err(|source| {
                    if source.kind() == std::io::ErrorKind::AlreadyExists {
                        Error::Exists { path: path.clone() }
                    } else {
                        io(source)
                    }
                })?;
                file.write_all(text.as_bytes()).map_err(io)
            }
        }
    }
}

/// What to do with the module next, for the person who generated it.
pub fn next_steps(name: &EntityName, output: &Output) -> String {
    let module = name.snake();
    let file = match output {
        Output::Stdout => "the module".to_string(),
        Output::File { path, .. } => path.display().to_string(),
    };
    format!(
        "Next steps for {file}:\n\
         \x20 1. declare it: `mod {module};`\n\
         \x20 2. register it: `.providers(|c| c.value(db.clone()).injectable::<{module}::{name}Controller>())`\n\
         \x20    and `.controller({module}::{name}Controller::controller())`\n\
         \x20 3. give requests a transaction: `.interceptor(jararaca_query::TransactionLayer::new(db))`\n\
         \x20 4. create the `{table}` table: `{name}Entity::POSTGRES_MIGRATION` / `SQLITE_MIGRATION`\n\
         \x20 5. run `cargo fmt`\n",
        table = name.plural_snake(),
    )
}

/// `a task item`, `an order`: the indefinite article by the sound of the first word, with
/// the common exceptions (`a user`, `an hour`).
fn with_article(phrase: &str) -> String {
    const A_BEFORE_VOWEL: &[&str] = &["one", "uni", "use", "usa", "usu", "uti", "eu", "ewe"];
    const AN_BEFORE_H: &[&str] = &["hour", "honest", "honor", "honour", "heir"];
    let vowel = phrase.starts_with(['a', 'e', 'i', 'o', 'u']);
    let an = if vowel {
        !A_BEFORE_VOWEL.iter().any(|p| phrase.starts_with(p))
    } else {
        AN_BEFORE_H.iter().any(|p| phrase.starts_with(p))
    };
    format!("{} {phrase}", if an { "an" } else { "a" })
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(raw: &str) -> String {
        render_entity(&EntityName::parse(raw).unwrap())
    }

    #[test]
    fn every_marker_is_replaced() {
        for raw in ["TaskItem", "order", "HTTPRequestLog", "x"] {
            let module = render(raw);
            assert!(!module.contains("{{"), "{raw}: a marker is left");
            assert!(!module.contains("}}"), "{raw}: a marker is left");
        }
    }

    #[test]
    fn names_land_in_their_cases() {
        let module = render("order-line");
        for expected in [
            "pub struct OrderLineEntity {",
            "pub struct OrderLine {",
            "pub struct CreateOrderLine {",
            "pub struct UpdateOrderLine {",
            "pub enum OrderLineField {",
            "pub struct OrderLineFilter {",
            "pub struct OrderLinePage {",
            "pub struct OrderLineController {",
            r#"const TABLE: &'static str = "order_lines";"#,
            "CREATE TABLE order_lines (",
            "CREATE INDEX order_lines_created_at_id ON order_lines (created_at, id);",
            r#"#[controller("/order-lines")]"#,
            "async fn create_order_line(",
            "async fn query_order_lines(",
            "async fn get_order_line(",
            "async fn update_order_line(",
            "async fn delete_order_line(",
            r#"summary = "Create an order line""#,
            r#"ApiError::not_found(format!("order line {id} not found"))"#,
            "//! Order lines: the `order_lines` table",
            "/// An order line as the API returns it.",
        ] {
            assert!(module.contains(expected), "missing {expected:?}");
        }
    }

    #[test]
    fn both_migrations_create_every_entity_column() {
        let module = render("TaskItem");
        let columns_block = module
            .split("const COLUMNS: &'static [Column] = &[")
            .nth(1)
            .and_then(|rest| rest.split("];").next())
            .unwrap();
        let columns: Vec<&str> = columns_block
            .split("Column::new(\"")
            .skip(1)
            .filter_map(|c| c.split('"').next())
            .collect();
        assert_eq!(columns, ["id", "name", "created_at", "updated_at"]);
        for migration in ["POSTGRES_MIGRATION", "SQLITE_MIGRATION"] {
            let sql = module
                .split(&format!("pub const {migration}: &'static str = \"\\\n"))
                .nth(1)
                .and_then(|rest| rest.split("\";").next())
                .unwrap();
            for column in &columns {
                assert!(
                    sql.lines()
                        .any(|l| l.trim_start().starts_with(&format!("{column} "))),
                    "{migration} lacks {column}"
                );
            }
        }
    }

    #[test]
    fn articles_follow_the_sound() {
        for (phrase, expected) in [
            ("task item", "a task item"),
            ("order", "an order"),
            ("user", "a user"),
            ("hour log", "an hour log"),
            ("invoice", "an invoice"),
        ] {
            assert_eq!(with_article(phrase), expected);
        }
    }

    #[test]
    fn a_file_is_never_overwritten_without_asking() {
        let dir = std::env::temp_dir().join(format!(
            "jararaca-cli-unit-{}-{}",
            std::process::id(),
            line!()
        ));
        let path = dir.join("nested/deeper/entity.rs");
        Output::new(&path, false).write("first").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        let err = Output::new(&path, false).write("second").unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        Output::new(&path, true).write("third").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "third");
        assert_eq!(Output::new(Path::new("-"), false), Output::Stdout);
        fs::remove_dir_all(&dir).unwrap();
    }
}
