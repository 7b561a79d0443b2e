//! Tasks: the DTOs, an in-memory repository and the controller.

use std::collections::BTreeMap;
use std::sync::Arc;

use jararaca::http::{ApiError, Created, Json, NoContent, Path};
use jararaca::{Inject, Injectable, controller};
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

/// The tasks API, with the repository injected.
#[derive(Debug, Injectable)]
pub struct TasksController {
    repo: Arc<TaskRepository>,
}

#[controller("/tasks")]
impl TasksController {
    #[post("/", summary = "Create a task")]
    async fn create_task(&self, Json(new): Json<CreateTask>) -> Result<Created<Task>, ApiError> {
        let mut tasks = self.repo.tasks.write().await;
        if tasks.len() >= self.repo.max_tasks {
            return Err(ApiError::conflict(format!(
                "the service keeps at most {} tasks",
                self.repo.max_tasks
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

    #[get("/", summary = "List the tasks")]
    async fn list_tasks(&self) -> Json<Vec<Task>> {
        Json(self.repo.tasks.read().await.values().cloned().collect())
    }

    // An associated function works too: it takes what it needs through extractors.
    #[get("/{id}", summary = "Get a task")]
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

    #[put("/{id}", summary = "Replace a task")]
    async fn update_task(
        &self,
        Path(id): Path<Uuid>,
        Json(update): Json<UpdateTask>,
    ) -> Result<Json<Task>, ApiError> {
        let mut tasks = self.repo.tasks.write().await;
        let task = tasks.get_mut(&id).ok_or_else(|| not_found(id))?;
        task.title = update.title;
        task.description = update.description;
        task.done = update.done;
        Ok(Json(task.clone()))
    }

    #[delete("/{id}", summary = "Delete a task")]
    async fn delete_task(&self, Path(id): Path<Uuid>) -> Result<NoContent, ApiError> {
        match self.repo.tasks.write().await.remove(&id) {
            Some(_) => Ok(NoContent),
            None => Err(not_found(id)),
        }
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("task {id} not found"))
}
