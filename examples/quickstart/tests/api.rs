//! The quick start's API through its router, as a client sees it.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jararaca::UnitKind;
use jararaca::prelude::*;
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

async fn crud_round_trip(service: jararaca::Microservice) {
    let app = service.build().await.unwrap();
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
    assert_eq!(
        listed,
        json!({"items": [created], "total": 1, "unpaginated_total": 1, "total_pages": 1})
    );

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
    assert_eq!(updated["created_at"], created["created_at"]);

    let (status, _) = call(&router, "DELETE", &format!("/tasks/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&router, "GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].as_str().unwrap().contains(&id), "{body}");

    // The interceptor saw every request as an HTTP unit of work.
    let seen = app.container().get::<quickstart::UnitsSeen>().unwrap();
    assert_eq!(seen.count(UnitKind::Http), 6);
}

/// A NUL character, which PostgreSQL's text cannot hold, in a title, a description or a filter
/// value is the client's mistake: 422, and nothing stored.
async fn values_postgres_cannot_store_are_422(service: jararaca::Microservice) {
    let router = service.build().await.unwrap().router();
    for body in [
        json!({"title": "nul\u{0}title"}),
        json!({"title": "fine", "description": "nul\u{0}"}),
    ] {
        let (status, answer) = call(&router, "POST", "/tasks", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(
            answer["detail"][0]["msg"].as_str().unwrap().contains("NUL"),
            "{answer}"
        );
    }
    // `[{"field":"title","operator":"contains","value":"a\u0000"}]`, encoded.
    let filter = "%5B%7B%22field%22%3A%22title%22%2C%22operator%22%3A%22contains%22%2C%22value%22%3A%22a%5Cu0000%22%7D%5D";
    let (status, answer) = call(
        &router,
        "GET",
        &format!("/tasks?filter_models={filter}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (_, listed) = call(&router, "GET", "/tasks", None).await;
    assert_eq!(listed["total"], 0, "{listed}");
}

/// 1,000 creates at once against a cap of 100 (on an empty table): exactly 100 are created,
/// every other one is refused with 409.
async fn the_cap_holds_under_concurrent_creates(service: jararaca::Microservice) {
    let router = service.build().await.unwrap().router();
    let creates = (0..1000).map(|i| {
        let router = router.clone();
        tokio::spawn(async move {
            call(
                &router,
                "POST",
                "/tasks",
                Some(json!({"title": format!("task {i}")})),
            )
            .await
            .0
        })
    });
    let mut created = 0;
    for create in creates.collect::<Vec<_>>() {
        match create.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => panic!("a create answered {other}"),
        }
    }
    assert_eq!(created, 100);
    let (_, listed) = call(&router, "GET", "/tasks?page_size=1", None).await;
    assert_eq!(listed["unpaginated_total"], 100, "{listed}");
}

#[tokio::test]
async fn tasks_can_be_created_listed_read_updated_and_deleted_in_sqlite() {
    crud_round_trip(quickstart::service()).await;
}

#[tokio::test]
async fn tasks_can_be_created_listed_read_updated_and_deleted_in_postgres() {
    let Some(url) = jararaca_testing::postgres() else {
        return;
    };
    let schema = jararaca_testing::unique_name("quickstart");
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let database_url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let outcome = tokio::spawn(async move {
        let on_postgres = |max_tasks: &str| {
            let vars = [
                ("DATABASE_URL", database_url.clone()),
                ("MAX_TASKS", max_tasks.to_owned()),
            ];
            quickstart::service().providers(move |c| c.env(vars))
        };
        crud_round_trip(on_postgres("1000")).await;
        values_postgres_cannot_store_are_422(on_postgres("1000")).await;
        the_cap_holds_under_concurrent_creates(on_postgres("100")).await;
    })
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn the_list_is_paged_sorted_and_filtered_from_the_query_string() {
    let router = quickstart::service().build().await.unwrap().router();
    for title in ["b: write docs", "a: fix bug", "c: write tests"] {
        let (status, _) = call(&router, "POST", "/tasks", Some(json!({"title": title}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let sort = "%5B%7B%22field%22%3A%22title%22%2C%22direction%22%3A%22desc%22%7D%5D";
    let filter = "%5B%7B%22field%22%3A%22title%22%2C%22operator%22%3A%22contains%22%2C%22value%22%3A%22write%22%7D%5D";
    let (status, page) = call(
        &router,
        "GET",
        &format!("/tasks?page=0&page_size=1&sort_models={sort}&filter_models={filter}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["title"], "c: write tests");
    assert_eq!(
        (
            page["total"].as_i64(),
            page["unpaginated_total"].as_i64(),
            page["total_pages"].as_i64()
        ),
        (Some(1), Some(2), Some(2))
    );

    let hostile = "%5B%7B%22field%22%3A%22title%3B%20DROP%20TABLE%20tasks%22%2C%22direction%22%3A%22asc%22%7D%5D";
    let (status, body) = call(
        &router,
        "GET",
        &format!("/tasks?sort_models={hostile}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = call(&router, "GET", "/tasks?page_size=1000", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, page) = call(&router, "GET", "/tasks", None).await;
    assert_eq!(page["unpaginated_total"], 3, "the table is intact");
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
    let page_ref = doc["paths"]["/tasks"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["$ref"]
        .as_str()
        .unwrap();
    let page = &doc["components"]["schemas"][page_ref.trim_start_matches("#/components/schemas/")];
    assert_eq!(
        page["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/Task"
    );
    let list_params: Vec<&str> = doc["paths"]["/tasks"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        list_params,
        ["filter_models", "page", "page_size", "sort_models"]
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
