//! Tasks: the entity (also the API's read model), the request bodies and the controller.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jararaca::http::{ApiError, Created, Json, NoContent, Path, Query};
use jararaca::{Injectable, controller};
use jararaca_query::{
    Column, ColumnType, CrudOperations, Dialect, Entity, FieldSet, Fields, FilterFor, Paginated,
    PaginatedFilter, QueryError, QueryOperations, Session, Sql,
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
/// `TransactionLayer`), which handlers take as their `Session` argument; database errors
/// answer with their own status (`QueryError`: a bad filter 422, a missing task 404).
#[derive(Debug, Injectable)]
pub struct TasksController {
    config: Arc<AppConfig>,
}

/// The advisory lock creates take turns under (any number unique to this service).
const CREATE_LOCK: i64 = 0x7461_736b_7301;

/// A query's error as a handler returning `ApiError` answers it: with the query's own status
/// and message for the client's mistakes (`ApiError`'s `?` makes every error a 500).
fn answer(error: QueryError) -> ApiError {
    ApiError::from_status(error.status(), error)
}

/// What clients may sort and filter by: every column but the id. Named by a type, so the
/// list route's description states it.
struct TaskFields;

impl FieldSet for TaskFields {
    fn fields() -> Fields {
        Fields::of::<Task>().without("id")
    }
}

fn listing() -> QueryOperations<Task> {
    QueryOperations::new(TaskFields::fields())
}

#[controller("/tasks")]
impl TasksController {
    #[post("/", summary = "Create a task")]
    async fn create_task(
        &self,
        session: Session,
        Json(new): Json<CreateTask>,
    ) -> Result<Created<Task>, ApiError> {
        // Count and insert under one lock, or concurrent creates each count the same total and
        // together beat the cap: on PostgreSQL a transaction-scoped advisory lock (released by
        // the commit or the rollback) makes creates take turns; SQLite writes one at a time.
        if session.dialect() == Dialect::Postgres {
            let mut lock = Sql::new();
            lock.push("SELECT pg_advisory_xact_lock(")
                .bind(CREATE_LOCK)
                .push(")");
            session.execute(&lock).await.map_err(answer)?;
        }
        // A query's error keeps its own status: a title the database cannot store is a 422.
        let count = listing()
            .on(session.clone())
            .query(&PaginatedFilter::page(0, 1))
            .await
            .map_err(answer)?
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
        let task = CrudOperations::<Task>::on(session)
            .create(&task)
            .await
            .map_err(answer)?;
        // Staged in this request's unit of work: sent only after the row is committed.
        TaskCreated {
            id: task.id,
            title: task.title.clone(),
        }
        .publish()
        .await?;
        Ok(Created(task))
    }

    /// `?page=0&page_size=10&sort_models=[…]&filter_models=[…]` (MUI DataGrid models). A
    /// bad sort or filter is a 422 naming the fields allowed.
    #[get("/", summary = "List tasks a page at a time, sorted and filtered")]
    async fn list_tasks(
        session: Session,
        Query(filter): Query<FilterFor<TaskFields>>,
    ) -> Result<Json<Paginated<Task>>, QueryError> {
        Ok(Json(listing().on(session).query(&filter).await?))
    }

    #[get("/{id}", summary = "Get a task")]
    async fn get_task(session: Session, Path(id): Path<Uuid>) -> Result<Json<Task>, QueryError> {
        Ok(Json(CrudOperations::<Task>::on(session).get(id).await?))
    }

    #[put("/{id}", summary = "Replace a task")]
    async fn update_task(
        session: Session,
        Path(id): Path<Uuid>,
        Json(update): Json<UpdateTask>,
    ) -> Result<Json<Task>, QueryError> {
        let tasks = CrudOperations::<Task>::on(session);
        let task = tasks.get(id).await?;
        let task = Task {
            title: update.title,
            description: update.description,
            done: update.done,
            ..task
        };
        let task = tasks.update(&task).await?;
        crate::live::push(crate::TaskUpdated::of(&task, crate::TaskChange::Updated)).await;
        Ok(Json(task))
    }

    #[delete("/{id}", summary = "Delete a task")]
    async fn delete_task(session: Session, Path(id): Path<Uuid>) -> Result<NoContent, QueryError> {
        if CrudOperations::<Task>::on(session).delete_by_id(id).await? {
            Ok(NoContent)
        } else {
            Err(QueryError::NotFound {
                entity: Task::TABLE,
                id,
            })
        }
    }
}
