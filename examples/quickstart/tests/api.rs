//! The quick start's API through its router, as a client sees it.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jararaca::UnitKind;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn tasks_can_be_created_listed_read_updated_and_deleted() {
    let app = quickstart::service().build().await.unwrap();
    let router = app.router();

    let (status, created) = call(
        &router,
        "POST",
        "/tasks",
        Some(json!({"title": "write docs"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["title"], "write docs");
    assert_eq!(created["done"], false);
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, listed) = call(&router, "GET", "/tasks", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!([created]));

    let (status, fetched) = call(&router, "GET", &format!("/tasks/{id}"), None).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &created));

    let (status, updated) = call(
        &router,
        "PUT",
        &format!("/tasks/{id}"),
        Some(json!({"title": "write more docs", "description": "all of them", "done": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["done"], true);
    assert_eq!(updated["description"], "all of them");

    let (status, _) = call(&router, "DELETE", &format!("/tasks/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&router, "GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": format!("task {id} not found")}));

    // The interceptor saw every request as an HTTP unit of work.
    let seen = app.container().get::<quickstart::UnitsSeen>().unwrap();
    assert_eq!(seen.count(UnitKind::Http), 6);
}

#[tokio::test]
async fn a_task_without_a_title_is_a_422_naming_the_field() {
    let router = quickstart::service().build().await.unwrap().router();
    let (status, body) = call(
        &router,
        "POST",
        "/tasks",
        Some(json!({"description": "no title"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"detail": [{"loc": ["body", "title"], "msg": "Field required", "type": "missing"}]})
    );
    let (status, body) = call(&router, "GET", "/tasks/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["path", "id"]));
}

#[tokio::test]
async fn openapi_lists_every_route_with_its_schemas_and_health_is_ready() {
    let router = quickstart::service().build().await.unwrap().router();
    let (status, doc) = call(&router, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.push(format!(
                "{} {path} {}",
                method.to_uppercase(),
                op["operationId"].as_str().unwrap()
            ));
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /tasks/{id} delete_task",
            "GET /tasks list_tasks",
            "GET /tasks/{id} get_task",
            "POST /tasks create_task",
            "PUT /tasks/{id} update_task",
        ]
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in ["Task", "CreateTask", "UpdateTask", "ErrorResponse"] {
        assert!(
            schemas.contains_key(name),
            "{name} missing from {:?}",
            schemas.keys()
        );
    }
    assert_eq!(
        doc["paths"]["/tasks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/Task"
    );
    assert_eq!(
        doc["paths"]["/tasks"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Task"}})
    );
    assert_eq!(
        doc["paths"]["/tasks/{id}"]["get"]["parameters"][0]["schema"]["format"],
        "uuid"
    );

    let (status, body) = call(&router, "GET", "/health/ready", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}

#[tokio::test]
async fn configuration_comes_from_the_environment() {
    // MAX_TASKS is read at startup; the repository refuses tasks beyond it.
    let app = quickstart::service()
        .providers(|c| c.env([("MAX_TASKS", "1")]))
        .build()
        .await
        .unwrap();
    let router = app.router();
    let (status, _) = call(&router, "POST", "/tasks", Some(json!({"title": "one"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(&router, "POST", "/tasks", Some(json!({"title": "two"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body, json!({"detail": "the service keeps at most 1 tasks"}));

    let err = quickstart::service()
        .providers(|c| c.env([("MAX_TASKS", "many")]))
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid variable `MAX_TASKS`"),
        "{err}"
    );
}
