//! Tasks: the entity (also the API's read model), the request bodies and the
//! `TasksController`, every route of which needs a logged-in user and sees only that
//! user's tasks.

use chrono::{DateTime, Utc};
use jararaca::bus::MessageExt;
use jararaca::controller;
use jararaca::http::{ApiError, Created, Json, NoContent, Path, Query};
use jararaca_query::{
    Column, ColumnType, CrudOperations, Entity, Fields, Paginated, PaginatedFilter, QueryError,
    QueryOperations, Select, Session, Sql,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::auth::{AuthLayer, CurrentUser};
use crate::events::{TaskCompleted, TaskCreated};
use crate::live::{self, TaskChange, TaskChanged};

/// A task, as stored and as returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, JsonSchema, TS)]
pub struct Task {
    /// Its id.
    pub id: Uuid,
    /// The user it belongs to.
    pub owner: String,
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
        Column::new("owner", ColumnType::Text),
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

/// A query's error as the client should see it: with the query's own status (a bad filter
/// 422, a missing task 404).
fn answer(error: QueryError) -> ApiError {
    ApiError::from_status(error.status(), error)
}

/// What clients may sort and filter by: every column but the id and the owner (a user
/// sees only their own tasks anyway).
fn listing() -> QueryOperations<Task> {
    QueryOperations::new(Fields::of::<Task>().without("id").without("owner"))
}

/// The condition that keeps a query to `user`'s tasks.
fn owned_by(user: &CurrentUser) -> Sql {
    let mut condition = Sql::new();
    condition
        .ident("owner")
        .push(" = ")
        .bind(user.username.clone());
    condition
}

/// `user`'s task `id`: a task of another user is as missing as one that does not exist.
async fn owned_task(session: &Session, user: &CurrentUser, id: Uuid) -> Result<Task, ApiError> {
    let task = CrudOperations::<Task>::on(session.clone())
        .find(id)
        .await
        .map_err(answer)?;
    match task {
        Some(task) if task.owner == user.username => Ok(task),
        _ => Err(answer(QueryError::NotFound {
            entity: Task::TABLE,
            id,
        })),
    }
}

/// The tasks API, for the logged-in user ([`AuthLayer`] answers 401 otherwise). Every query
/// runs in the unit of work's transaction; messages and live updates go out only once it
/// committed.
#[derive(Debug)]
pub struct TasksController;

#[controller("/tasks", layer = AuthLayer)]
impl TasksController {
    #[post("/", summary = "Create a task", mutation)]
    async fn create_task(
        user: CurrentUser,
        session: Session,
        Json(new): Json<CreateTask>,
    ) -> Result<Created<Task>, ApiError> {
        if new.title.trim().is_empty() {
            return Err(ApiError::unprocessable("a task needs a title"));
        }
        let now = Utc::now();
        let task = Task {
            id: Uuid::new_v4(),
            owner: user.username.clone(),
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
        // Both staged in this request's unit of work: sent only after the row committed.
        TaskCreated::of(&task).publish().await?;
        live::push(&task.owner, TaskChanged::of(&task, TaskChange::Created)).await;
        Ok(Created(task))
    }

    /// `?page=0&page_size=10&sort_models=[…]&filter_models=[…]` (MUI DataGrid models over
    /// `title`, `description`, `done`, `created_at`, `updated_at`), the caller's tasks only.
    #[get(
        "/",
        summary = "Search the caller's tasks a page at a time, sorted and filtered",
        query,
        infinite_query
    )]
    async fn list_tasks(
        user: CurrentUser,
        session: Session,
        Query(filter): Query<PaginatedFilter>,
    ) -> Result<Json<Paginated<Task>>, QueryError> {
        let mine = move |_: &PaginatedFilter, select: &mut Select| {
            select.and_where(owned_by(&user));
            Ok(())
        };
        Ok(Json(
            listing().on(session).query_with(&filter, &[&mine]).await?,
        ))
    }

    #[get("/{id}", summary = "Get a task", query)]
    async fn get_task(
        user: CurrentUser,
        session: Session,
        Path(id): Path<Uuid>,
    ) -> Result<Json<Task>, ApiError> {
        Ok(Json(owned_task(&session, &user, id).await?))
    }

    #[put("/{id}", summary = "Replace a task", mutation)]
    async fn update_task(
        user: CurrentUser,
        session: Session,
        Path(id): Path<Uuid>,
        Json(update): Json<UpdateTask>,
    ) -> Result<Json<Task>, ApiError> {
        let task = owned_task(&session, &user, id).await?;
        let was_done = task.done;
        let task = Task {
            title: update.title,
            description: update.description,
            done: update.done,
            ..task
        };
        let task = CrudOperations::<Task>::on(session)
            .update(&task)
            .await
            .map_err(answer)?;
        let change = if task.done && !was_done {
            TaskCompleted::of(&task).publish().await?;
            TaskChange::Completed
        } else {
            TaskChange::Updated
        };
        live::push(&task.owner, TaskChanged::of(&task, change)).await;
        Ok(Json(task))
    }

    #[post("/{id}/complete", summary = "Mark a task done", mutation)]
    async fn complete_task(
        user: CurrentUser,
        session: Session,
        Path(id): Path<Uuid>,
    ) -> Result<Json<Task>, ApiError> {
        let task = owned_task(&session, &user, id).await?;
        if task.done {
            // Completing twice changes nothing and tells nobody again.
            return Ok(Json(task));
        }
        let task = CrudOperations::<Task>::on(session)
            .update(&Task { done: true, ..task })
            .await
            .map_err(answer)?;
        TaskCompleted::of(&task).publish().await?;
        live::push(&task.owner, TaskChanged::of(&task, TaskChange::Completed)).await;
        Ok(Json(task))
    }

    #[delete("/{id}", summary = "Delete a task", mutation)]
    async fn delete_task(
        user: CurrentUser,
        session: Session,
        Path(id): Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let task = owned_task(&session, &user, id).await?;
        CrudOperations::<Task>::on(session)
            .delete_by_id(id)
            .await
            .map_err(answer)?;
        live::push(&task.owner, TaskChanged::of(&task, TaskChange::Deleted)).await;
        Ok(NoContent)
    }
}
