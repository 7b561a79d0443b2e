//! The crate's error type.

use http::StatusCode;

/// Everything that can go wrong in this crate.
///
/// [`QueryError::status`] tells the HTTP layer how to answer: a filter, sort, cursor or
/// pagination problem is the client's (422), a missing row is a 404, the rest is a 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The database reported an error. One caused by a value the column cannot hold
    /// (PostgreSQL's SQLSTATE class 22, "data exception": too long, out of range, not valid
    /// for the type) is the client's (422); the rest are the server's (500).
    #[error("{}", database_message(.0))]
    Database(#[from] sqlx::Error),

    /// A value the database cannot store, refused before it was sent: a NUL character in
    /// text or JSON on PostgreSQL, whose text types cannot hold one.
    #[error("{0}")]
    Unstorable(String),

    /// No row has this id.
    #[error("{entity} with id {id} was not found")]
    NotFound {
        /// The entity's table.
        entity: &'static str,
        /// The id that was looked for.
        id: uuid::Uuid,
    },

    /// A sort or filter named a field that is not in the whitelist.
    #[error("unknown field `{field}` for {purpose}: use one of {}", allowed.join(", "))]
    UnknownField {
        /// The field as the client sent it.
        field: String,
        /// `"sorting"` or `"filtering"`.
        purpose: &'static str,
        /// The fields that are allowed.
        allowed: Vec<String>,
    },

    /// A filter used an operator that its field's type does not support.
    #[error("unsupported operator `{operator}` for field `{field}` of type {column_type}: use one of {}", allowed.join(", "))]
    UnknownOperator {
        /// The field the filter is on.
        field: String,
        /// The operator as the client sent it.
        operator: String,
        /// The field's column type.
        column_type: &'static str,
        /// The operators the type supports.
        allowed: Vec<&'static str>,
    },

    /// A filter value could not be read as the field's type.
    #[error("invalid value `{value}` for field `{field}`: expected {expected}")]
    InvalidValue {
        /// The field the filter is on.
        field: String,
        /// The value as the client sent it (a list as its JSON text).
        value: String,
        /// What the value should look like.
        expected: &'static str,
    },

    /// `page` or `page_size` is out of bounds.
    #[error("invalid pagination: {0}")]
    InvalidPagination(String),

    /// A keyset cursor is malformed or belongs to another ordering.
    #[error("invalid cursor: {0}; start again without a cursor")]
    InvalidCursor(String),

    /// The entity's serialized form does not match its declared columns.
    #[error("entity `{entity}` does not match its columns: {message}")]
    EntityShape {
        /// The entity's table.
        entity: &'static str,
        /// What does not match.
        message: String,
    },

    /// No database session is available in this task.
    #[error(
        "no database session here: {0} (wrap the handler in TransactionLayer inside UnitOfWorkLayer, or pass a Session explicitly)"
    )]
    NoSession(&'static str),

    /// The unit's transaction was already committed or rolled back.
    #[error(
        "the unit of work's transaction is already finished: use the session only while the handler runs"
    )]
    TransactionFinished,

    /// The unit of work refused the transaction (it is already decided).
    #[error(transparent)]
    Unit(#[from] jararaca_di::UnitError),

    /// No connection to the database could be opened.
    #[error(
        "cannot connect to the database at {url}: {reason} (check DATABASE_URL and that the database is up)"
    )]
    Unreachable {
        /// The database URL, its password replaced by `***`.
        url: String,
        /// Why the connection failed.
        reason: String,
    },

    /// A database URL or pool option is not usable.
    #[error("invalid database configuration: {0}")]
    Config(String),

    /// The enabled backends do not include the one this operation needs.
    #[error("the {0} backend is not compiled in: enable the `{0}` feature of jararaca-query")]
    BackendDisabled(&'static str),
}

impl QueryError {
    /// The HTTP status that answers this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::UnknownField { .. }
            | Self::UnknownOperator { .. }
            | Self::InvalidValue { .. }
            | Self::InvalidPagination(_)
            | Self::InvalidCursor(_)
            | Self::Unstorable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Database(error) if data_exception(error).is_some() => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ if self.is_retryable() => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the unit failed only because a concurrent one won: a serialization failure
    /// (SQLSTATE `40001`) or a deadlock (`40P01`). Running the unit again may succeed; an HTTP
    /// client is answered `409` saying so.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Database(error) if is_conflict(error))
    }

    /// Whether the client caused this error (a 4xx).
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }

    /// Where in the request a client's error lies, as a 422's `loc`: the `PaginatedFilter`
    /// field of a sort, filter or pagination problem (a `PaginatedFilter` travels in the
    /// query), or nothing more precise (`[]`) for a value the database cannot store.
    pub fn loc(&self) -> Vec<&'static str> {
        match self {
            Self::UnknownField {
                purpose: "sorting", ..
            } => vec!["query", "sort_models"],
            Self::UnknownField { .. }
            | Self::UnknownOperator { .. }
            | Self::InvalidValue { .. } => {
                vec!["query", "filter_models"]
            }
            Self::InvalidPagination(message) if message.starts_with("page_size") => {
                vec!["query", "page_size"]
            }
            Self::InvalidPagination(_) | Self::InvalidCursor(_) => vec!["query"],
            _ => Vec::new(),
        }
    }
}

/// The message of [`QueryError::Database`]: what probably went wrong, and what to check. A
/// data exception's is meant for the client it answers.
fn database_message(error: &sqlx::Error) -> String {
    if is_conflict(error) {
        return "the request conflicted with a concurrent one and was undone: send it again"
            .to_owned();
    }
    if let Some(what) = data_exception(error) {
        let said = match error {
            sqlx::Error::Database(database) => database.message().to_owned(),
            other => other.to_string(),
        };
        return format!("{what} ({said})");
    }
    match error {
        sqlx::Error::PoolTimedOut => "the database did not answer in time: no connection could \
            be taken from the pool (check that the database is reachable and not overloaded)"
            .to_owned(),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            format!(
                "cannot reach the database: {error} (check DATABASE_URL and that the database is up)"
            )
        }
        sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => {
            format!("database error: {error} (check that the table matches the entity's columns)")
        }
        _ => format!("database error: {error}"),
    }
}

/// Whether the database undid the statement because a concurrent transaction won: a
/// serialization failure (`40001`) or a deadlock (`40P01`).
pub(crate) fn is_conflict(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            matches!(database.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

/// For a PostgreSQL "data exception" (SQLSTATE class 22) — a value the column cannot hold —
/// what to tell the client; `None` for any other error.
fn data_exception(error: &sqlx::Error) -> Option<&'static str> {
    let sqlx::Error::Database(database) = error else {
        return None;
    };
    let code = database.code()?;
    if !code.starts_with("22") {
        return None;
    }
    Some(match code.as_ref() {
        "22001" => "a text value is longer than its field allows",
        "22003" => "a number is outside the range its field can hold",
        "22021" | "22P05" => "a text value contains a character the database cannot store",
        "22007" | "22008" => "a date or time is not valid",
        "22P02" => "a value is not valid for its field's type",
        "22012" => "a value leads to a division by zero",
        _ => "a value is not valid for its field",
    })
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for QueryError {
    /// A JSON `{"detail": …}` body: for a 422 one `{"loc", "msg", "type"}` entry (as every
    /// 422 of the framework), the message for other client errors, nothing internal for the
    /// rest (which are logged).
    fn into_response(self) -> axum_core::response::Response {
        let status = self.status();
        let detail = if status == StatusCode::UNPROCESSABLE_ENTITY {
            serde_json::json!([{ "loc": self.loc(), "msg": self.to_string(), "type": "value_error" }])
        } else if status.is_client_error() {
            serde_json::Value::String(self.to_string())
        } else {
            tracing::error!(error = %self, "query failed");
            serde_json::Value::String("Internal Server Error".into())
        };
        let body = serde_json::json!({ "detail": detail }).to_string();
        (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The error body `{"detail": …}`, documented as a route's `default` response.
#[cfg(feature = "axum")]
impl jararaca_api::RouteOutput for QueryError {
    fn describe(route: &mut jararaca_api::RouteMeta) {
        jararaca_api::describe_error_response(route);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_4xx_and_name_the_fix() {
        let unknown = QueryError::UnknownField {
            field: "name; DROP TABLE x".into(),
            purpose: "filtering",
            allowed: vec!["title".into(), "done".into()],
        };
        assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(unknown.to_string().contains("use one of title, done"));
        let missing = QueryError::NotFound {
            entity: "tasks",
            id: uuid::Uuid::nil(),
        };
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(!QueryError::TransactionFinished.is_client_error());
    }
}
