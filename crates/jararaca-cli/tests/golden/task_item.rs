//! Task items: the `task_items` table as an entity, the API's DTOs, the list filter with its
//! whitelist of fields, and a CRUD controller at `/task-items`.
//!
//! Wire it into a service (the controller's operations run in each request's transaction,
//! which `TransactionLayer` provides):
//!
//! ```ignore
//! let db = jararaca_query::Db::connect(&database_url).await?;
//! db.execute_script(task_item::TaskItemEntity::migration(db.dialect())).await?;
//! let service = jararaca::Microservice::new("my-service")
//!     .providers(|c| c.value(db.clone()).injectable::<task_item::TaskItemController>())
//!     .controller(task_item::TaskItemController::controller())
//!     .interceptor(jararaca_query::TransactionLayer::new(db));
//! ```
//!
//! It needs `jararaca`, `jararaca-query`, `sqlx` (feature `derive`), `serde`, `schemars`,
//! `ts-rs`, `uuid` and `chrono` as dependencies. To add a column, change the entity, its
//! `COLUMNS`, the DTOs, [`TaskItemField`] and both migrations.

use chrono::{DateTime, Utc};
use jararaca::http::{ApiError, Created, Json, NoContent, Path};
use jararaca::{Injectable, controller};
use jararaca_query::{
    Column, ColumnType, CrudOperations, Dialect, Direction, Entity, Fields, FilterModel,
    FilterValue, Paginated, PaginatedFilter, PaginationConfig, QueryError, QueryOperations,
    SortModel,
};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

/// A row of `task_items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TaskItemEntity {
    /// The primary key.
    pub id: Uuid,
    /// The task item's name.
    pub name: String,
    /// When the row was inserted (set by `CrudOperations::create`).
    pub created_at: DateTime<Utc>,
    /// When the row was last written (set by `create` and `update`).
    pub updated_at: DateTime<Utc>,
}

impl Entity for TaskItemEntity {
    const TABLE: &'static str = "task_items";
    const COLUMNS: &'static [Column] = &[
        Column::new("id", ColumnType::Uuid),
        Column::new("name", ColumnType::Text),
        Column::new("created_at", ColumnType::DateTime),
        Column::new("updated_at", ColumnType::DateTime),
    ];
    const TIMESTAMPS: bool = true;

    fn id(&self) -> Uuid {
        self.id
    }
}

impl TaskItemEntity {
    /// The `task_items` table on PostgreSQL, for a migration file. The index serves sorting
    /// by creation time and keyset pages over it.
    pub const POSTGRES_MIGRATION: &'static str = "\
CREATE TABLE task_items (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX task_items_created_at_id ON task_items (created_at, id);
";

    /// The `task_items` table on SQLite, for a migration file.
    pub const SQLITE_MIGRATION: &'static str = "\
CREATE TABLE task_items (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX task_items_created_at_id ON task_items (created_at, id);
";

    /// The migration for `dialect`: `db.execute_script(TaskItemEntity::migration(db.dialect()))`.
    pub fn migration(dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => Self::POSTGRES_MIGRATION,
            Dialect::Sqlite => Self::SQLITE_MIGRATION,
        }
    }
}

/// A task item as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct TaskItem {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<TaskItemEntity> for TaskItem {
    fn from(entity: TaskItemEntity) -> Self {
        Self {
            id: entity.id,
            name: entity.name,
            created_at: entity.created_at,
            updated_at: entity.updated_at,
        }
    }
}

/// The body of `POST /task-items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct CreateTaskItem {
    /// Its name.
    pub name: String,
}

/// The body of `PUT /task-items/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct UpdateTaskItem {
    /// Its new name.
    pub name: String,
}

/// The fields of a task item that clients may sort and filter by: the whitelist. Each is
/// its column's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum TaskItemField {
    /// `id`
    Id,
    /// `name`
    Name,
    /// `created_at`
    CreatedAt,
    /// `updated_at`
    UpdatedAt,
}

impl TaskItemField {
    /// Every field.
    pub const ALL: [Self; 4] = [Self::Id, Self::Name, Self::CreatedAt, Self::UpdatedAt];

    /// The field's column, which is also its name on the wire.
    pub fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
        }
    }

    /// The column's type, which decides the filter operators.
    pub fn column_type(self) -> ColumnType {
        match self {
            Self::Id => ColumnType::Uuid,
            Self::Name => ColumnType::Text,
            Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime,
        }
    }
}

/// One sort rule of a [`TaskItemFilter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct TaskItemSortModel {
    /// The field to sort by.
    pub field: TaskItemField,
    /// `"asc"` or `"desc"`.
    #[schemars(schema_with = "direction_schema")]
    #[ts(type = "\"asc\" | \"desc\"")]
    pub direction: Direction,
}

/// One filter rule of a [`TaskItemFilter`] (an MUI DataGrid filter item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct TaskItemFilterModel {
    /// The field to filter on.
    pub field: TaskItemField,
    /// An operator of the field's type: `contains`, `equals`, `startsWith`, `isAnyOf`, … for
    /// text; `is`, `after`, `onOrBefore`, … for dates; `=`, `>`, … for numbers.
    pub operator: String,
    /// The operand: a string, or a list for `isAnyOf`. Empty means no filter.
    #[serde(default)]
    #[schemars(schema_with = "filter_value_schema")]
    #[ts(type = "string | Array<string>", optional = nullable)]
    pub value: FilterValue,
}

/// What a client sends to list task items: `{"page", "page_size", "sort_models",
/// "filter_models"}`, jararaca-query's `PaginatedFilter` with its fields limited to
/// [`TaskItemField`]. Fields of your own can go next to them.
// A field with a serde default is optional in TypeScript too: `optional = nullable` marks it
// so without requiring an `Option` (which plain `optional` does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct TaskItemFilter {
    /// The page, from 0.
    #[serde(default = "default_page")]
    #[ts(optional = nullable)]
    pub page: u32,
    /// Items per page, from 1 to the maximum (`JARARACA_PAGINATION_MAX_PAGE_SIZE`, 100).
    #[serde(default = "default_page_size")]
    #[ts(optional = nullable)]
    pub page_size: u32,
    /// Sort rules, applied in order (and then by id).
    #[serde(default)]
    #[ts(optional = nullable)]
    pub sort_models: Vec<TaskItemSortModel>,
    /// Filter rules, all of which must hold.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub filter_models: Vec<TaskItemFilterModel>,
}

impl TaskItemFilter {
    /// The whitelist `QueryOperations` checks sort and filter fields against: every
    /// [`TaskItemField`].
    pub fn fields() -> Fields {
        let mut fields = Fields::new();
        for field in TaskItemField::ALL {
            fields = fields.field(field.column(), field.column(), field.column_type());
        }
        fields
    }
}

impl From<TaskItemFilter> for PaginatedFilter {
    fn from(filter: TaskItemFilter) -> Self {
        Self {
            page: filter.page,
            page_size: filter.page_size,
            sort_models: filter
                .sort_models
                .into_iter()
                .map(|sort| SortModel {
                    field: sort.field.column().to_string(),
                    direction: sort.direction,
                })
                .collect(),
            filter_models: filter
                .filter_models
                .into_iter()
                .map(|model| FilterModel {
                    field: model.field.column().to_string(),
                    operator: model.operator,
                    value: model.value,
                })
                .collect(),
        }
    }
}

fn default_page() -> u32 {
    PaginationConfig::global().default_page
}

fn default_page_size() -> u32 {
    PaginationConfig::global().default_page_size
}

fn direction_schema(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "type": "string", "enum": ["asc", "desc"] })
}

fn filter_value_schema(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" } }]
    })
}

/// A page of task items: `{"items", "total", "unpaginated_total", "total_pages"}`
/// (jararaca-query's `Paginated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct TaskItemPage {
    /// The task items on this page.
    pub items: Vec<TaskItem>,
    /// How many items this page has.
    #[ts(type = "number")]
    pub total: i64,
    /// How many task items match the filter, over all pages.
    #[ts(type = "number")]
    pub unpaginated_total: i64,
    /// How many pages there are.
    #[ts(type = "number")]
    pub total_pages: i64,
}

impl From<Paginated<TaskItemEntity>> for TaskItemPage {
    fn from(page: Paginated<TaskItemEntity>) -> Self {
        Self {
            items: page.items.into_iter().map(TaskItem::from).collect(),
            total: page.total,
            unpaginated_total: page.unpaginated_total,
            total_pages: page.total_pages,
        }
    }
}

/// The task items API: create, get, list a page, replace and delete, each in the
/// request's transaction.
#[derive(Debug, Injectable)]
pub struct TaskItemController {
    #[inject(default)]
    crud: CrudOperations<TaskItemEntity>,
}

#[controller("/task-items")]
impl TaskItemController {
    #[post("/", summary = "Create a task item")]
    async fn create_task_item(
        &self,
        Json(new): Json<CreateTaskItem>,
    ) -> Result<Created<TaskItem>, ApiError> {
        // `create` sets both timestamps.
        let now = Utc::now();
        let entity = TaskItemEntity {
            id: Uuid::new_v4(),
            name: new.name,
            created_at: now,
            updated_at: now,
        };
        let created = self.crud.create(&entity).await.map_err(api_error)?;
        Ok(Created(created.into()))
    }

    #[post("/query", summary = "List task items, a page at a time")]
    async fn query_task_items(
        &self,
        Json(filter): Json<TaskItemFilter>,
    ) -> Result<Json<TaskItemPage>, ApiError> {
        let listing = QueryOperations::<TaskItemEntity>::new(TaskItemFilter::fields());
        let page = listing
            .query(&PaginatedFilter::from(filter))
            .await
            .map_err(api_error)?;
        Ok(Json(page.into()))
    }

    #[get("/{id}", summary = "Get a task item")]
    async fn get_task_item(&self, Path(id): Path<Uuid>) -> Result<Json<TaskItem>, ApiError> {
        let entity = self.crud.get(id).await.map_err(api_error)?;
        Ok(Json(entity.into()))
    }

    #[put("/{id}", summary = "Replace a task item")]
    async fn update_task_item(
        &self,
        Path(id): Path<Uuid>,
        Json(update): Json<UpdateTaskItem>,
    ) -> Result<Json<TaskItem>, ApiError> {
        let mut entity = self.crud.get(id).await.map_err(api_error)?;
        entity.name = update.name;
        let updated = self.crud.update(&entity).await.map_err(api_error)?;
        Ok(Json(updated.into()))
    }

    #[delete("/{id}", summary = "Delete a task item")]
    async fn delete_task_item(&self, Path(id): Path<Uuid>) -> Result<NoContent, ApiError> {
        if self.crud.delete_by_id(id).await.map_err(api_error)? {
            Ok(NoContent)
        } else {
            Err(ApiError::not_found(format!("task item {id} not found")))
        }
    }
}

/// A query error as an answer: the client's mistakes (404, 422) with their message, anything
/// else as a 500 that is logged, not sent.
fn api_error(error: QueryError) -> ApiError {
    if error.is_client_error() {
        ApiError::new(error.status(), error.to_string())
    } else {
        ApiError::internal(error)
    }
}
