//! Tasks: the DTOs, an in-memory repository and the controller.

use std::collections::BTreeMap;

use jararaca::Inject;
use jararaca::http::{ApiError, Controller, Created, Json, NoContent, Path};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use ts_rs::TS;
use uuid::Uuid;

/// A task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Task {
    /// Its id.
    pub id: Uuid,
    /// What to do.
    pub title: String,
    /// More about it.
    pub description: Option<String>,
    /// Whether it is done.
    pub done: bool,
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

/// Where tasks live: in memory, bounded by the configured maximum.
#[derive(Debug)]
pub struct TaskRepository {
    max_tasks: usize,
    tasks: RwLock<BTreeMap<Uuid, Task>>,
}

impl TaskRepository {
    /// An empty repository holding at most `max_tasks`.
    pub fn new(max_tasks: usize) -> Self {
        Self {
            max_tasks,
            tasks: RwLock::default(),
        }
    }
}

async fn create_task(
    Inject(repo): Inject<TaskRepository>,
    Json(new): Json<CreateTask>,
) -> Result<Created<Task>, ApiError> {
    let mut tasks = repo.tasks.write().await;
    if tasks.len() >= repo.max_tasks {
        return Err(ApiError::conflict(format!(
            "the service keeps at most {} tasks",
            repo.max_tasks
        )));
    }
    let task = Task {
        id: Uuid::new_v4(),
        title: new.title,
        description: new.description,
        done: false,
    };
    tasks.insert(task.id, task.clone());
    Ok(Created(task))
}

async fn list_tasks(Inject(repo): Inject<TaskRepository>) -> Json<Vec<Task>> {
    Json(repo.tasks.read().await.values().cloned().collect())
}

async fn get_task(
    Inject(repo): Inject<TaskRepository>,
    Path(id): Path<Uuid>,
) -> Result<Json<Task>, ApiError> {
    repo.tasks
        .read()
        .await
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| not_found(id))
}

async fn update_task(
    Inject(repo): Inject<TaskRepository>,
    Path(id): Path<Uuid>,
    Json(update): Json<UpdateTask>,
) -> Result<Json<Task>, ApiError> {
    let mut tasks = repo.tasks.write().await;
    let task = tasks.get_mut(&id).ok_or_else(|| not_found(id))?;
    task.title = update.title;
    task.description = update.description;
    task.done = update.done;
    Ok(Json(task.clone()))
}

async fn delete_task(
    Inject(repo): Inject<TaskRepository>,
    Path(id): Path<Uuid>,
) -> Result<NoContent, ApiError> {
    match repo.tasks.write().await.remove(&id) {
        Some(_) => Ok(NoContent),
        None => Err(not_found(id)),
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("task {id} not found"))
}

/// `TasksController` at `/tasks`.
pub fn controller() -> Controller {
    Controller::new("TasksController", "/tasks")
        .post("/", create_task)
        .get("/", list_tasks)
        .get("/{id}", get_task)
        .put("/{id}", update_task)
        .delete("/{id}", delete_task)
}
