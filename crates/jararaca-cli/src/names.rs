//! Entity names in the cases generated code needs: `task_item`, `TaskItem`, `task-item`, and
//! their plurals for tables and routes.

use std::fmt;

use crate::Error;

/// Names that would collide with what a generated module imports or with the prelude it
/// relies on, so an entity cannot be called that.
const RESERVED: &[&str] = &[
    // Rust keywords in PascalCase.
    "Self",
    // Prelude types and variants the generated code uses.
    "Box",
    "Err",
    "From",
    "Into",
    "None",
    "Ok",
    "Option",
    "Result",
    "Some",
    "String",
    "Vec",
    // Names the generated module imports.
    "ApiError",
    "Column",
    "ColumnType",
    "Created",
    "CrudOperations",
    "DateTime",
    "Deserialize",
    "Dialect",
    "Direction",
    "Entity",
    "Fields",
    "FilterModel",
    "FilterValue",
    "Injectable",
    "Json",
    "JsonSchema",
    "NoContent",
    "Paginated",
    "PaginatedFilter",
    "PaginationConfig",
    "Path",
    "QueryError",
    "QueryOperations",
    "Schema",
    "SchemaGenerator",
    "Serialize",
    "SortModel",
    "TS",
    "Utc",
    "Uuid",
];

/// An entity's name split into lower-case words, accepted in any case: `TaskItem`,
/// `taskItem`, `task_item`, `task-item` and `task item` are the same name.
///
/// ```
/// use jararaca_cli::EntityName;
///
/// let name = EntityName::parse("HTTPRequestLog")?;
/// assert_eq!(name.pascal(), "HttpRequestLog");
/// assert_eq!(name.snake(), "http_request_log");
/// assert_eq!(name.plural_kebab(), "http-request-logs");
/// # Ok::<_, jararaca_cli::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityName {
    words: Vec<String>,
}

impl EntityName {
    /// Splits `raw` into words at `_`, `-`, spaces and case changes (`HTTPServer` is `http`
    /// `server`; digits stay with the word before them).
    ///
    /// The name must start with a letter and hold only ASCII letters, digits and separators,
    /// so every case of it is a Rust identifier and a SQL name that needs no quoting.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidName {
            name: raw.to_string(),
            reason,
        };
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ')))
        {
            return Err(invalid(format!(
                "{bad:?} is not allowed: use ASCII letters, digits, `_`, `-` or spaces"
            )));
        }
        let words = split_words(raw);
        match words.first().and_then(|w| w.chars().next()) {
            None => return Err(invalid("it has no letters".into())),
            Some(c) if !c.is_ascii_alphabetic() => {
                return Err(invalid(
                    "it must start with a letter (it becomes a Rust type name)".into(),
                ));
            }
            Some(_) => {}
        }
        let name = Self { words };
        let pascal = name.pascal();
        if RESERVED.contains(&pascal.as_str()) {
            return Err(invalid(format!(
                "`{pascal}` would clash with a name the generated module uses; pick a more specific one"
            )));
        }
        Ok(name)
    }

    /// The lower-case words.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// `task_item`
    pub fn snake(&self) -> String {
        self.words.join("_")
    }

    /// `TaskItem`
    pub fn pascal(&self) -> String {
        self.words.iter().map(|w| capitalize(w)).collect()
    }

    /// `task-item`
    pub fn kebab(&self) -> String {
        self.words.join("-")
    }

    /// `task item`, for prose.
    pub fn human(&self) -> String {
        self.words.join(" ")
    }

    /// `task_items`: the table's name.
    pub fn plural_snake(&self) -> String {
        self.plural_words().join("_")
    }

    /// `task-items`: the route prefix.
    pub fn plural_kebab(&self) -> String {
        self.plural_words().join("-")
    }

    /// `task items`, for prose.
    pub fn plural_human(&self) -> String {
        self.plural_words().join(" ")
    }

    fn plural_words(&self) -> Vec<String> {
        let mut words = self.words.clone();
        if let Some(last) = words.last_mut() {
            *last = plural(last);
        }
        words
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pascal())
    }
}

/// Splits at separators and at case changes: a new word starts at an upper-case letter that
/// follows a lower-case letter or digit, or that is followed by a lower-case letter after
/// another upper-case one (the `S` of `HTTPServer`).
fn split_words(raw: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in raw.split(['_', '-', ' ']).filter(|p| !p.is_empty()) {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = c.is_ascii_uppercase()
                && match previous {
                    Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                    Some(p) if p.is_ascii_uppercase() => {
                        next.is_some_and(|n| n.is_ascii_lowercase())
                    }
                    _ => false,
                };
            if boundary && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.push(c.to_ascii_lowercase());
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The English plural of a lower-case word, by the regular rules: `-s/-x/-z/-ch/-sh` add
/// `es`, a consonant and `y` become `ies`, the rest add `s`.
fn plural(word: &str) -> String {
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| word.ends_with(end))
    {
        return format!("{word}es");
    }
    if let Some(stem) = word.strip_suffix('y')
        && stem
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphabetic() && !"aeiou".contains(c))
    {
        return format!("{stem}ies");
    }
    format!("{word}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(raw: &str) -> (String, String, String) {
        let name = EntityName::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (name.snake(), name.pascal(), name.kebab())
    }

    #[test]
    fn every_spelling_of_a_name_gives_the_same_cases() {
        let want = ("task_item".into(), "TaskItem".into(), "task-item".into());
        for raw in [
            "TaskItem",
            "taskItem",
            "task_item",
            "task-item",
            "TASK_ITEM",
            "Task Item",
            "__task__item-",
        ] {
            assert_eq!(cases(raw), want, "{raw}");
        }
    }

    #[test]
    fn acronyms_and_digits_split_where_a_reader_would() {
        assert_eq!(
            cases("HTTPServer"),
            (
                "http_server".into(),
                "HttpServer".into(),
                "http-server".into()
            )
        );
        assert_eq!(cases("userID").0, "user_id");
        assert_eq!(cases("Oauth2Token").0, "oauth2_token");
        assert_eq!(cases("v2beta").1, "V2beta");
        assert_eq!(cases("item").1, "Item");
        assert_eq!(cases("X").2, "x");
    }

    #[test]
    fn plurals_follow_the_regular_rules_on_the_last_word() {
        for (raw, table, route) in [
            ("TaskItem", "task_items", "task-items"),
            ("Category", "categories", "categories"),
            ("Day", "days", "days"),
            ("Address", "addresses", "addresses"),
            ("Fox", "foxes", "foxes"),
            ("Branch", "branches", "branches"),
            ("Wish", "wishes", "wishes"),
            ("UserKey", "user_keys", "user-keys"),
        ] {
            let name = EntityName::parse(raw).unwrap();
            assert_eq!(name.plural_snake(), table, "{raw}");
            assert_eq!(name.plural_kebab(), route, "{raw}");
        }
        assert_eq!(
            EntityName::parse("task_item").unwrap().plural_human(),
            "task items"
        );
    }

    #[test]
    fn names_that_cannot_become_identifiers_are_refused_with_the_reason() {
        for (raw, reason) in [
            ("", "no letters"),
            ("__", "no letters"),
            ("2fa", "start with a letter"),
            ("task.item", "'.' is not allowed"),
            ("tâche", "'â' is not allowed"),
            ("self", "clash"),
            ("path", "clash"),
            ("String", "clash"),
        ] {
            let err = EntityName::parse(raw).unwrap_err().to_string();
            assert!(err.contains(reason), "{raw}: {err}");
        }
    }
}
