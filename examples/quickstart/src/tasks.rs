//! Tasks: the entity (also the API's read model), the request bodies and the controller.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jararaca::http::{ApiError, Created, Json, NoContent, Path, Query};
use jararaca::{Injectable, controller};
use jararaca_query::{
    Column, ColumnType, CrudOperations, Entity, Fields, Paginated, PaginatedFilter, QueryError,
    QueryOperations,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::{AppConfig, TaskCreated};
use jararaca::bus::MessageExt;

/// A task, as stored and as returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, JsonSchema, TS)]
pub struct Task {
    /// Its id.
    pub id: Uuid,
    /// What to do.
    pub title: String,
    /// More about it.
    pub description: Option<String>,
    /// Whether it is done.
    pub done: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Entity for Task {
    const TABLE: &'static str = "tasks";
    const COLUMNS: &'static [Column] = &[
        Column::new("id", ColumnType::Uuid),
        Column::new("title", ColumnType::Text),
        Column::new("description", ColumnType::Text),
        Column::new("done", ColumnType::Bool),
        Column::new("created_at", ColumnType::DateTime),
        Column::new("updated_at", ColumnType::DateTime),
    ];
    const TIMESTAMPS: bool = true;

    fn id(&self) -> Uuid {
        self.id
    }
}

/// The body of `POST /tasks`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, TS)]
pub struct CreateTask {
    /// What to do.
    pub title: String,
    /// More about it.
    pub description: Option<String>,
}

/// The body of `PUT /tasks/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, TS)]
pub struct UpdateTask {
    /// What to do.
    pub title: String,
    /// More about it.
    pub description: Option<String>,
    /// Whether it is done.
    pub done: bool,
}

/// The tasks API. Every query runs in the unit of work's transaction (the
/// `TransactionLayer`), reached here through `CrudOperations::new()`.
#[derive(Debug, Injectable)]
pub struct TasksController {
    config: Arc<AppConfig>,
}

/// Query errors keep their status: a bad filter is a 422, a missing task a 404, and a
/// database failure a 500 that reveals nothing.
fn db(error: QueryError) -> ApiError {
    ApiError::from_status(error.status(), error)
}

/// What clients may sort and filter by.
fn listing() -> QueryOperations<Task> {
    QueryOperations::new(Fields::of::<Task>().without("id"))
}

#[controller("/tasks")]
impl TasksController {
    #[post("/", summary = "Create a task")]
    async fn create_task(&self, Json(new): Json<CreateTask>) -> Result<Created<Task>, ApiError> {
        let count = listing()
            .query(&PaginatedFilter::page(0, 1))
            .await
            .map_err(db)?
            .unpaginated_total;
        if usize::try_from(count).unwrap_or(usize::MAX) >= self.config.max_tasks {
            return Err(ApiError::conflict(format!(
                "the service keeps at most {} tasks",
                self.config.max_tasks
            )));
        }
        let now = Utc::now();
        let task = Task {
            id: Uuid::new_v4(),
            title: new.title,
            description: new.description,
            done: false,
            created_at: now,
            updated_at: now,
        };
        let task = CrudOperations::<Task>::new()
            .create(&task)
            .await
            .map_err(db)?;
        // Staged in this request's unit of work: sent only after the row is committed.
        TaskCreated {
            id: task.id,
            title: task.title.clone(),
        }
        .publish()
        .await
        .map_err(ApiError::internal)?;
        Ok(Created(task))
    }

    /// `?page=0&page_size=10&sort_models=[…]&filter_models=[…]` (MUI DataGrid models).
    #[get("/", summary = "List tasks a page at a time, sorted and filtered")]
    async fn list_tasks(
        Query(filter): Query<PaginatedFilter>,
    ) -> Result<Json<Paginated<Task>>, ApiError> {
        Ok(Json(listing().query(&filter).await.map_err(db)?))
    }

    #[get("/{id}", summary = "Get a task")]
    async fn get_task(Path(id): Path<Uuid>) -> Result<Json<Task>, ApiError> {
        Ok(Json(
            CrudOperations::<Task>::new().get(id).await.map_err(db)?,
        ))
    }

    #[put("/{id}", summary = "Replace a task")]
    async fn update_task(
        Path(id): Path<Uuid>,
        Json(update): Json<UpdateTask>,
    ) -> Result<Json<Task>, ApiError> {
        let tasks = CrudOperations::<Task>::new();
        let task = tasks.get(id).await.map_err(db)?;
        let task = Task {
            title: update.title,
            description: update.description,
            done: update.done,
            ..task
        };
        Ok(Json(tasks.update(&task).await.map_err(db)?))
    }

    #[delete("/{id}", summary = "Delete a task")]
    async fn delete_task(Path(id): Path<Uuid>) -> Result<NoContent, ApiError> {
        if CrudOperations::<Task>::new()
            .delete_by_id(id)
            .await
            .map_err(db)?
        {
            Ok(NoContent)
        } else {
            Err(ApiError::not_found(format!("task {id} not found")))
        }
    }
}
