//! The paginated filter a client sends and the page it gets back, in the reference's JSON.

use std::future::Future;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::QueryError;

/// Default page size when `JARARACA_PAGINATION_DEFAULT_PAGE_SIZE` is not set.
pub const DEFAULT_PAGE_SIZE: u32 = 10;
/// Largest page size when `JARARACA_PAGINATION_MAX_PAGE_SIZE` is not set.
pub const DEFAULT_MAX_PAGE_SIZE: u32 = 100;

/// Pagination bounds, from `JARARACA_PAGINATION_DEFAULT_PAGE`,
/// `JARARACA_PAGINATION_DEFAULT_PAGE_SIZE` and `JARARACA_PAGINATION_MAX_PAGE_SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaginationConfig {
    /// The page when the client sends none (0).
    pub default_page: u32,
    /// The page size when the client sends none (10).
    pub default_page_size: u32,
    /// The largest page size a client may ask for (100).
    pub max_page_size: u32,
}

impl Default for PaginationConfig {
    fn default() -> Self {
        Self {
            default_page: 0,
            default_page_size: DEFAULT_PAGE_SIZE,
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
        }
    }
}

impl PaginationConfig {
    /// Reads the variables; every invalid one is reported in the error.
    pub fn from_env() -> Result<Self, QueryError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, QueryError> {
        let mut config = Self::default();
        let mut problems = Vec::new();
        for (name, slot, min) in [
            (
                "JARARACA_PAGINATION_DEFAULT_PAGE",
                &mut config.default_page,
                0,
            ),
            (
                "JARARACA_PAGINATION_DEFAULT_PAGE_SIZE",
                &mut config.default_page_size,
                1,
            ),
            (
                "JARARACA_PAGINATION_MAX_PAGE_SIZE",
                &mut config.max_page_size,
                1,
            ),
        ] {
            if let Some(raw) = lookup(name) {
                match raw.trim().parse::<u32>() {
                    Ok(v) if v >= min => *slot = v,
                    _ => problems.push(format!("{name}={raw:?} must be an integer >= {min}")),
                }
            }
        }
        if config.default_page_size > config.max_page_size {
            problems.push(format!(
                "the default page size {} exceeds the maximum {}",
                config.default_page_size, config.max_page_size
            ));
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(QueryError::Config(problems.join("; ")))
        }
    }

    /// The process-wide configuration, read once. Invalid variables are logged and the
    /// defaults used instead (call [`PaginationConfig::from_env`] at startup to fail on them).
    pub fn global() -> Self {
        static GLOBAL: OnceLock<PaginationConfig> = OnceLock::new();
        *GLOBAL.get_or_init(|| {
            Self::from_env().unwrap_or_else(|error| {
                tracing::warn!(%error, "using the default pagination settings");
                Self::default()
            })
        })
    }
}

fn default_page() -> u32 {
    PaginationConfig::global().default_page
}

fn default_page_size() -> u32 {
    PaginationConfig::global().default_page_size
}

/// The bounds a page size is checked against ([`PaginatedFilter::validate`] with the
/// process-wide [`PaginationConfig::global`]), stated in the schema: 1 to the maximum.
#[cfg(feature = "schema")]
fn page_size_bounds(schema: &mut schemars::Schema) {
    let config = PaginationConfig::global();
    schema.insert("minimum".into(), 1.into());
    schema.insert("maximum".into(), config.max_page_size.into());
    schema.insert(
        "description".into(),
        format!("Items per page, 1 to {}.", config.max_page_size).into(),
    );
}

/// A sort direction: `"asc"` or `"desc"`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

impl Direction {
    /// Whether this is [`Direction::Desc`].
    pub fn is_desc(self) -> bool {
        self == Self::Desc
    }
}

/// One sort rule: `{"field", "direction"}` (MUI DataGrid's sort model).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortModel {
    /// A field name from the whitelist.
    pub field: String,
    /// `"asc"` or `"desc"`.
    pub direction: Direction,
}

/// A filter value: one string or a list (`isAnyOf`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FilterValue {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl Default for FilterValue {
    fn default() -> Self {
        Self::One(String::new())
    }
}

impl FilterValue {
    /// Whether the value is `""` or `[]`: such a filter is ignored, as in the reference
    /// (except the value-less `isEmpty`/`isNotEmpty`).
    pub fn is_empty(&self) -> bool {
        match self {
            Self::One(s) => s.is_empty(),
            Self::Many(v) => v.is_empty(),
        }
    }

    /// The first value.
    pub fn first(&self) -> Option<&str> {
        match self {
            Self::One(s) => Some(s),
            Self::Many(v) => v.first().map(String::as_str),
        }
    }
}

/// One filter rule: `{"field", "operator", "value"}` (MUI DataGrid's filter item). The
/// operators per column type are listed on [`FilterOperator`](crate::FilterOperator).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterModel {
    /// A field name from the whitelist.
    pub field: String,
    /// An operator of the field's type.
    pub operator: String,
    /// The operand(s); `""` by default.
    #[serde(default)]
    pub value: FilterValue,
}

/// What a client sends to list a page: `{"page", "page_size", "sort_models",
/// "filter_models"}` (the reference's `PaginatedFilter`).
///
/// Embed it with `#[serde(flatten)]` in a filter of your own and implement
/// `AsRef<PaginatedFilter>` to add fields for [`QueryInjector`](crate::QueryInjector)s.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaginatedFilter {
    /// The page, from 0.
    #[serde(default = "default_page")]
    pub page: u32,
    /// Items per page, 1 to the maximum (100).
    #[serde(default = "default_page_size")]
    #[cfg_attr(feature = "schema", schemars(transform = page_size_bounds))]
    pub page_size: u32,
    /// Sort rules, applied in order.
    #[serde(default)]
    pub sort_models: Vec<SortModel>,
    /// Filter rules, all of which must hold.
    #[serde(default)]
    pub filter_models: Vec<FilterModel>,
}

impl Default for PaginatedFilter {
    fn default() -> Self {
        Self {
            page: default_page(),
            page_size: default_page_size(),
            sort_models: Vec::new(),
            filter_models: Vec::new(),
        }
    }
}

impl AsRef<PaginatedFilter> for PaginatedFilter {
    fn as_ref(&self) -> &PaginatedFilter {
        self
    }
}

impl PaginatedFilter {
    /// Page `page` of `page_size` items.
    pub fn page(page: u32, page_size: u32) -> Self {
        Self {
            page,
            page_size,
            ..Self::default()
        }
    }

    /// Adds a sort rule.
    pub fn sort(mut self, field: impl Into<String>, direction: Direction) -> Self {
        self.sort_models.push(SortModel {
            field: field.into(),
            direction,
        });
        self
    }

    /// Adds a filter rule.
    pub fn filter(
        mut self,
        field: impl Into<String>,
        operator: impl Into<String>,
        value: FilterValue,
    ) -> Self {
        self.filter_models.push(FilterModel {
            field: field.into(),
            operator: operator.into(),
            value,
        });
        self
    }

    /// Checks the page size against `config`'s bounds.
    pub fn validate(&self, config: &PaginationConfig) -> Result<(), QueryError> {
        if self.page_size == 0 || self.page_size > config.max_page_size {
            return Err(QueryError::InvalidPagination(format!(
                "page_size {} is out of bounds: use 1 to {}",
                self.page_size, config.max_page_size
            )));
        }
        Ok(())
    }

    /// The number of rows before this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page) * u64::from(self.page_size)
    }
}

/// A page of results: `{"items", "total", "unpaginated_total", "total_pages"}` (the
/// reference's `Paginated[T]`). `total` counts the items on this page; without a count
/// ([`CountStrategy::None`](crate::CountStrategy::None)) `unpaginated_total` is -1 and
/// `total_pages` 0.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paginated<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items this page has.
    pub total: i64,
    /// How many items match the filters, over all pages (-1 when not counted).
    pub unpaginated_total: i64,
    /// How many pages there are: `ceil(unpaginated_total / page_size)`.
    pub total_pages: i64,
}

impl<T> Paginated<T> {
    /// A page of `items` out of `unpaginated_total` (-1 if unknown) with `page_size` per page.
    pub fn new(items: Vec<T>, unpaginated_total: i64, page_size: u32) -> Self {
        let total_pages = if unpaginated_total < 0 || page_size == 0 {
            0
        } else {
            (unpaginated_total + i64::from(page_size) - 1) / i64::from(page_size)
        };
        Self {
            total: items.len() as i64,
            items,
            unpaginated_total,
            total_pages,
        }
    }

    /// Transforms every item, keeping the counts (the reference's `transform`).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paginated<U> {
        Paginated {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            unpaginated_total: self.unpaginated_total,
            total_pages: self.total_pages,
        }
    }

    /// Transforms every item with a fallible function.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Paginated<U>, E> {
        Ok(Paginated {
            items: self.items.into_iter().map(f).collect::<Result<_, _>>()?,
            total: self.total,
            unpaginated_total: self.unpaginated_total,
            total_pages: self.total_pages,
        })
    }

    /// Transforms every item with an async function, one after another (the reference's
    /// `transform_async`).
    pub async fn map_async<U, Fut>(self, mut f: impl FnMut(T) -> Fut) -> Paginated<U>
    where
        Fut: Future<Output = U>,
    {
        let mut items = Vec::with_capacity(self.items.len());
        for item in self.items {
            items.push(f(item).await);
        }
        Paginated {
            items,
            total: self.total,
            unpaginated_total: self.unpaginated_total,
            total_pages: self.total_pages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_and_defaults_match_the_reference() {
        let filter: PaginatedFilter = serde_json::from_str("{}").unwrap();
        assert_eq!(filter, PaginatedFilter::page(0, 10));
        let filter: PaginatedFilter = serde_json::from_value(serde_json::json!({
            "page": 2, "page_size": 5,
            "sort_models": [{"field": "title", "direction": "desc"}],
            "filter_models": [
                {"field": "title", "operator": "contains", "value": "a"},
                {"field": "n", "operator": "isAnyOf", "value": ["1", "2"]},
                {"field": "n", "operator": "isEmpty"}
            ]
        }))
        .unwrap();
        assert_eq!(filter.offset(), 10);
        assert_eq!(filter.sort_models[0].direction, Direction::Desc);
        assert_eq!(
            filter.filter_models[1].value,
            FilterValue::Many(vec!["1".into(), "2".into()])
        );
        assert!(filter.filter_models[2].value.is_empty());
        assert!(serde_json::from_str::<SortModel>(r#"{"field":"a","direction":"up"}"#).is_err());

        let page = Paginated::new(vec![1, 2], 12, 5);
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            serde_json::json!({"items": [1, 2], "total": 2, "unpaginated_total": 12, "total_pages": 3})
        );
        assert_eq!(page.map(|i| i * 10).items, [10, 20]);
        assert_eq!(Paginated::<i32>::new(vec![], -1, 5).total_pages, 0);
        assert_eq!(Paginated::<i32>::new(vec![], 0, 5).total_pages, 0);
        assert_eq!(Paginated::new(vec![1], 10, 5).total_pages, 2);
    }

    #[test]
    fn page_size_bounds_come_from_the_config() {
        let config = PaginationConfig::default();
        assert!(PaginatedFilter::page(0, 0).validate(&config).is_err());
        assert!(PaginatedFilter::page(0, 101).validate(&config).is_err());
        assert!(PaginatedFilter::page(0, 100).validate(&config).is_ok());
        let err = PaginatedFilter::page(0, 101).validate(&config).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn the_environment_overrides_the_bounds() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let config = PaginationConfig::from_lookup(env(&[
            ("JARARACA_PAGINATION_DEFAULT_PAGE", "1"),
            ("JARARACA_PAGINATION_DEFAULT_PAGE_SIZE", "25"),
            ("JARARACA_PAGINATION_MAX_PAGE_SIZE", "500"),
        ]))
        .unwrap();
        assert_eq!(
            config,
            PaginationConfig {
                default_page: 1,
                default_page_size: 25,
                max_page_size: 500
            }
        );
        let err = PaginationConfig::from_lookup(env(&[
            ("JARARACA_PAGINATION_DEFAULT_PAGE_SIZE", "0"),
            ("JARARACA_PAGINATION_MAX_PAGE_SIZE", "many"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("JARARACA_PAGINATION_DEFAULT_PAGE_SIZE"),
            "{err}"
        );
        assert!(err.contains("JARARACA_PAGINATION_MAX_PAGE_SIZE"), "{err}");
    }
}
