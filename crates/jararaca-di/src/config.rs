//! Typed configuration read from environment variables into serde structs.
//!
//! A configuration is a plain `#[derive(Deserialize)]` struct whose field names are the
//! variable names, as in the Python reference (`Model.model_validate(dict(os.environ))`).
//! Use `#[serde(rename_all = "SCREAMING_SNAKE_CASE")]` to keep snake_case Rust fields, and
//! `Option<T>` or `#[serde(default)]` for optional variables.
//!
//! Unlike a plain serde deserializer, which stops at the first error, [`from_vars`] reports
//! **every** missing and invalid variable at once, so one failed start tells the operator
//! everything to fix.
//!
//! Values are parsed from their text: numbers, `bool` (`true`/`false`/`1`/`0`/`yes`/`no`/`on`/
//! `off`), unit enum variants by name, sequences as comma-separated lists, and any type that
//! deserializes from a string (URLs, durations in your own newtypes, …). Nested structs are
//! not read from one variable; `#[serde(flatten)]` them instead.
//!
//! ```
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
//! struct AppConfig {
//!     database_url: String,
//!     port: u16,
//!     #[serde(default)]
//!     debug: bool,
//! }
//!
//! let err = jararaca_di::config::from_vars::<AppConfig, _>([("PORT", "eighty")]).unwrap_err();
//! assert_eq!(err.problems().len(), 2); // DATABASE_URL missing and PORT invalid, together
//!
//! let cfg: AppConfig =
//!     jararaca_di::config::from_vars([("DATABASE_URL", "sqlite::memory:"), ("PORT", "8080")]).unwrap();
//! assert_eq!(cfg.port, 8080);
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

/// What is wrong with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarProblem {
    /// A required variable is not set.
    Missing {
        /// The variable's name.
        var: String,
    },
    /// A variable is set but its value does not parse. The value itself is not repeated, as
    /// configuration often holds secrets.
    Invalid {
        /// The variable's name.
        var: String,
        /// Why the value was refused.
        reason: String,
    },
    /// The configuration type could not be read at all.
    Other {
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for VarProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { var } => write!(f, "missing variable `{var}`"),
            Self::Invalid { var, reason } => write!(f, "invalid variable `{var}`: {reason}"),
            Self::Other { reason } => f.write_str(reason),
        }
    }
}

/// Every problem found while reading one configuration type from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    type_name: &'static str,
    problems: Vec<VarProblem>,
}

impl ConfigError {
    /// The configuration type that failed.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Each missing or invalid variable, in field order.
    pub fn problems(&self) -> &[VarProblem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration `{}`: ", self.type_name)?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads `T` from the process environment.
pub fn from_env<T: DeserializeOwned>() -> Result<T, ConfigError> {
    from_vars(std::env::vars())
}

/// Reads `T` from the given variables, reporting every missing and invalid one at once.
pub fn from_vars<T, I>(vars: I) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
    I: IntoIterator,
    I::Item: VarPair,
{
    let vars: BTreeMap<String, String> = vars.into_iter().map(VarPair::into_pair).collect();
    let ctx = Ctx {
        vars,
        problems: RefCell::new(Vec::new()),
        placeholders: RefCell::new(BTreeSet::new()),
    };
    let error = |problems| ConfigError {
        type_name: std::any::type_name::<T>(),
        problems,
    };
    // Serde stops at the first error a visitor raises, so each pass that fails on a field
    // records it, stands a placeholder in for that field and runs again, until a pass finds
    // nothing new. Primitive parse failures are recorded without stopping the pass at all.
    loop {
        let known = ctx.problems.borrow().len();
        match T::deserialize(EnvDeserializer { ctx: &ctx }) {
            Ok(value) if ctx.problems.borrow().is_empty() => return Ok(value),
            Ok(_) => break,
            Err(DeError::MissingField(field)) => {
                ctx.record(field, |var| VarProblem::Missing { var })
            }
            Err(DeError::Field { field, reason }) => {
                ctx.record(&field, |var| VarProblem::Invalid { var, reason })
            }
            Err(DeError::Custom(reason)) => {
                ctx.problems.borrow_mut().push(VarProblem::Other { reason });
                break;
            }
        }
        if ctx.problems.borrow().len() == known {
            break;
        }
    }
    Err(error(ctx.problems.into_inner()))
}

/// A `(name, value)` pair of an environment variable; implemented for owned and borrowed
/// strings so both `std::env::vars()` and literal arrays can be read.
pub trait VarPair {
    /// The pair as owned strings.
    fn into_pair(self) -> (String, String);
}

impl<K: Into<String>, V: Into<String>> VarPair for (K, V) {
    fn into_pair(self) -> (String, String) {
        (self.0.into(), self.1.into())
    }
}

struct Ctx {
    vars: BTreeMap<String, String>,
    problems: RefCell<Vec<VarProblem>>,
    /// Fields already known to be wrong, given a placeholder value on later passes.
    placeholders: RefCell<BTreeSet<String>>,
}

impl Ctx {
    fn record(&self, field: &str, problem: impl FnOnce(String) -> VarProblem) {
        if self.placeholders.borrow_mut().insert(field.to_owned()) {
            self.problems.borrow_mut().push(problem(field.to_owned()));
        }
    }

    fn record_invalid(&self, field: &str, reason: String) {
        self.record(field, |var| VarProblem::Invalid { var, reason });
    }
}

#[derive(Debug)]
enum DeError {
    MissingField(&'static str),
    Field { field: String, reason: String },
    Custom(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingField(field) => write!(f, "missing variable `{field}`"),
            Self::Field { field, reason } => write!(f, "invalid variable `{field}`: {reason}"),
            Self::Custom(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Custom(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Self::MissingField(field)
    }
}

struct EnvDeserializer<'a> {
    ctx: &'a Ctx,
}

impl<'de> de::Deserializer<'de> for EnvDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let entries = self
            .ctx
            .vars
            .keys()
            .map(|k| (k.clone(), self.ctx.placeholders.borrow().contains(k)))
            .collect();
        visitor.visit_map(EnvMap::new(self.ctx, entries))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let placeholders = self.ctx.placeholders.borrow();
        let entries = fields
            .iter()
            .filter_map(|&f| {
                if placeholders.contains(f) {
                    Some((f.to_owned(), true))
                } else {
                    self.ctx.vars.contains_key(f).then(|| (f.to_owned(), false))
                }
            })
            .collect();
        drop(placeholders);
        visitor.visit_map(EnvMap::new(self.ctx, entries))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct enum identifier
        ignored_any
    }
}

struct EnvMap<'a> {
    ctx: &'a Ctx,
    entries: std::vec::IntoIter<(String, bool)>,
    current: Option<(String, bool)>,
}

impl<'a> EnvMap<'a> {
    fn new(ctx: &'a Ctx, entries: Vec<(String, bool)>) -> Self {
        Self {
            ctx,
            entries: entries.into_iter(),
            current: None,
        }
    }
}

impl<'de> MapAccess<'de> for EnvMap<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let key = seed.deserialize(StrDeserializer::<DeError>::new(&entry.0))?;
        self.current = Some(entry);
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (field, placeholder) = self
            .current
            .take()
            .ok_or_else(|| DeError::Custom("value asked before key".into()))?;
        let raw = if placeholder {
            None
        } else {
            self.ctx.vars.get(&field).map(String::as_str)
        };
        seed.deserialize(ValueDeserializer {
            ctx: self.ctx,
            field: &field,
            raw,
        })
        .map_err(|e| match e {
            DeError::Custom(reason) => DeError::Field {
                field: field.clone(),
                reason,
            },
            other => other,
        })
    }
}

/// One variable's value; `raw: None` stands in for a field already reported, with a zero value
/// of whatever type is asked for, so the rest of the struct can still be checked.
struct ValueDeserializer<'a> {
    ctx: &'a Ctx,
    field: &'a str,
    raw: Option<&'a str>,
}

macro_rules! parse_primitive {
    ($($method:ident => $visit:ident: $ty:ty = $zero:expr),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let value = match self.raw.map(str::trim).map(str::parse::<$ty>) {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    self.ctx.record_invalid(self.field, format!("expected {}: {e}", stringify!($ty)));
                    $zero
                }
                None => $zero,
            };
            visitor.$visit(value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.raw {
            Some(raw) => visitor.visit_str(raw),
            None => visitor.visit_unit(),
        }
    }

    parse_primitive! {
        deserialize_i8 => visit_i8: i8 = 0,
        deserialize_i16 => visit_i16: i16 = 0,
        deserialize_i32 => visit_i32: i32 = 0,
        deserialize_i64 => visit_i64: i64 = 0,
        deserialize_i128 => visit_i128: i128 = 0,
        deserialize_u8 => visit_u8: u8 = 0,
        deserialize_u16 => visit_u16: u16 = 0,
        deserialize_u32 => visit_u32: u32 = 0,
        deserialize_u64 => visit_u64: u64 = 0,
        deserialize_u128 => visit_u128: u128 = 0,
        deserialize_f32 => visit_f32: f32 = 0.0,
        deserialize_f64 => visit_f64: f64 = 0.0,
        deserialize_char => visit_char: char = '\0',
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = match self.raw.map(|r| r.trim().to_ascii_lowercase()) {
            None => false,
            Some(r) => match r.as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.ctx.record_invalid(
                        self.field,
                        "expected a boolean (true/false, 1/0, yes/no, on/off)".into(),
                    );
                    false
                }
            },
        };
        visitor.visit_bool(value)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.raw.unwrap_or_default())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_bytes(self.raw.unwrap_or_default().as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.raw {
            Some(_) => visitor.visit_some(self),
            None => visitor.visit_none(),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items: Vec<&str> = match self.raw.map(str::trim) {
            None | Some("") => Vec::new(),
            Some(raw) => raw.split(',').map(str::trim).collect(),
        };
        let ctx = self.ctx;
        let field = self.field;
        visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(move |raw| {
            ValueDeserializer {
                ctx,
                field,
                raw: Some(raw),
            }
        })))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // `KEY=VALUE` pairs separated by commas.
        let mut pairs = Vec::new();
        for item in self
            .raw
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match item.split_once('=') {
                Some((k, v)) => pairs.push((k.trim(), v.trim())),
                None => {
                    return Err(DeError::Custom(format!(
                        "expected comma-separated KEY=VALUE pairs, found `{item}`"
                    )));
                }
            }
        }
        let ctx = self.ctx;
        let field = self.field;
        visitor.visit_map(MapDeserializer::new(pairs.into_iter().map(
            move |(k, v)| {
                (
                    StrDeserializer::<DeError>::new(k),
                    ValueDeserializer {
                        ctx,
                        field,
                        raw: Some(v),
                    },
                )
            },
        )))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(DeError::Custom(
            "a nested struct cannot be read from one variable; use #[serde(flatten)]".into(),
        ))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let raw = self
            .raw
            .map(str::trim)
            .unwrap_or_else(|| variants.first().copied().unwrap_or(""));
        visitor.visit_enum(raw.into_deserializer())
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

impl<'de> IntoDeserializer<'de, DeError> for ValueDeserializer<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// The variables `T` reads, by the names it reads them under (`rename_all` applied), for
/// help texts. The fields of a `#[serde(flatten)]`ed struct are not listed: serde does not
/// name them before it reads.
pub fn variables<T: DeserializeOwned>() -> Vec<&'static str> {
    let mut found = Vec::new();
    let _ = T::deserialize(FieldProbe { found: &mut found });
    found
}

/// A deserializer that records the field names a struct asks for, and reads nothing.
struct FieldProbe<'a> {
    found: &'a mut Vec<&'static str>,
}

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's fields are probed"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.found.extend_from_slice(fields);
        Err(de::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// `url` with its password replaced by `***`, for logs and error messages: the user, host,
/// path and query stay, so the reader can tell which server was meant.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Dev,
        Prod,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    struct Settings {
        database_url: String,
        port: u16,
        debug: bool,
        mode: Mode,
        #[serde(default)]
        workers: Option<u32>,
        #[serde(default = "default_hosts")]
        hosts: Vec<String>,
    }

    fn default_hosts() -> Vec<String> {
        vec!["localhost".into()]
    }

    #[test]
    fn reads_every_type_of_field() {
        let s: Settings = from_vars([
            ("DATABASE_URL", "postgres://x"),
            ("PORT", " 8080 "),
            ("DEBUG", "yes"),
            ("MODE", "prod"),
            ("WORKERS", "4"),
            ("HOSTS", "a, b"),
            ("UNRELATED", "ignored"),
        ])
        .unwrap();
        assert_eq!(
            s,
            Settings {
                database_url: "postgres://x".into(),
                port: 8080,
                debug: true,
                mode: Mode::Prod,
                workers: Some(4),
                hosts: vec!["a".into(), "b".into()],
            }
        );
    }

    #[test]
    fn optional_and_defaulted_fields_may_be_absent() {
        let s: Settings = from_vars([
            ("DATABASE_URL", "x"),
            ("PORT", "1"),
            ("DEBUG", "0"),
            ("MODE", "dev"),
        ])
        .unwrap();
        assert_eq!(s.workers, None);
        assert_eq!(s.hosts, vec!["localhost".to_string()]);
    }

    #[test]
    fn reports_every_missing_and_invalid_variable_at_once() {
        let err =
            from_vars::<Settings, _>([("PORT", "http"), ("DEBUG", "maybe"), ("WORKERS", "-1")])
                .unwrap_err();
        let mut vars: Vec<String> = err
            .problems()
            .iter()
            .map(|p| match p {
                VarProblem::Missing { var } => format!("missing {var}"),
                VarProblem::Invalid { var, .. } => format!("invalid {var}"),
                VarProblem::Other { reason } => format!("other {reason}"),
            })
            .collect();
        vars.sort();
        assert_eq!(
            vars,
            [
                "invalid DEBUG",
                "invalid PORT",
                "invalid WORKERS",
                "missing DATABASE_URL",
                "missing MODE"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("Settings"), "{text}");
        assert!(!text.contains("http"), "values must not be echoed: {text}");
    }

    #[test]
    fn an_unknown_enum_variant_is_reported_with_the_rest() {
        let err = from_vars::<Settings, _>([
            ("DATABASE_URL", "x"),
            ("PORT", "99999"),
            ("DEBUG", "1"),
            ("MODE", "staging"),
        ])
        .unwrap_err();
        let vars: BTreeSet<_> = err
            .problems()
            .iter()
            .map(|p| match p {
                VarProblem::Invalid { var, .. } => var.as_str(),
                other => panic!("unexpected {other}"),
            })
            .collect();
        assert_eq!(vars, BTreeSet::from(["PORT", "MODE"]));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("amqp://guest:pw@h:1/v?x=1"),
            "amqp://guest:***@h:1/v?x=1"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@db/test"),
            "postgres://u:***@db/test"
        );
        assert_eq!(redact_url("amqp://h/v"), "amqp://h/v");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn a_configurations_variables_are_listed_by_their_names() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        #[allow(dead_code)]
        struct App {
            database_url: String,
            #[serde(default)]
            max_tasks: Option<u32>,
        }
        assert_eq!(variables::<App>(), ["DATABASE_URL", "MAX_TASKS"]);
    }
}
