//! The crate's error type.

use http::StatusCode;

/// Everything that can go wrong in this crate.
///
/// [`QueryError::status`] tells the HTTP layer how to answer: a filter, sort, cursor or
/// pagination problem is the client's (422), a missing row is a 404, the rest is a 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The database reported an error.
    #[error(
        "database error: {0} (check that the database is reachable and that the table matches the entity's columns)"
    )]
    Database(#[from] sqlx::Error),

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
    #[error("invalid value {value:?} for field `{field}`: expected {expected}")]
    InvalidValue {
        /// The field the filter is on.
        field: String,
        /// The value as the client sent it.
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
            | Self::InvalidCursor(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the client caused this error (a 4xx).
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for QueryError {
    /// A JSON `{"detail": …}` body: the message for client errors, nothing internal for the
    /// rest (which are logged).
    fn into_response(self) -> axum_core::response::Response {
        let status = self.status();
        let detail = if status.is_client_error() {
            self.to_string()
        } else {
            tracing::error!(error = %self, "query failed");
            "Internal Server Error".to_string()
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
