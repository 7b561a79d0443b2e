//! The module `jararaca gen-entity TaskItem` writes, checked in as `golden/task_item.rs`:
//! compiled here against the real crates, served through a `Microservice` on SQLite and
//! PostgreSQL, and compared byte for byte with what the generator renders now, so the
//! template cannot drift from code that compiles and works.

#[path = "golden/task_item.rs"]
pub mod task_item;

use jararaca::prelude::*;
use std::str::FromStr;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jararaca::Microservice;
use jararaca_cli::{EntityName, render_entity};
use jararaca_query::{Db, Dialect, TransactionLayer};
use serde_json::{Value, json};
use task_item::{TaskItem, TaskItemController, TaskItemEntity, TaskItemFilter, TaskItemPage};
use tower::ServiceExt;
use ts_rs::TS;

const GOLDEN: &str = include_str!("golden/task_item.rs");

/// Set to rewrite the golden file from the generator (then review the diff and rerun).
const BLESS: &str = "JARARACA_BLESS";

#[test]
fn the_golden_module_is_what_gen_entity_renders() {
    let rendered = render_entity(&EntityName::parse("TaskItem").unwrap());
    if std::env::var_os(BLESS).is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/task_item.rs");
        std::fs::write(path, &rendered).unwrap();
        return;
    }
    if rendered != GOLDEN {
        let line = rendered
            .lines()
            .zip(GOLDEN.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the lengths".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "tests/golden/task_item.rs differs from the generator's output at {line}; \
             rerun with {BLESS}=1 to rewrite it"
        );
    }
    for raw in ["task_item", "task-item", "taskItem", "TASK_ITEM"] {
        assert_eq!(
            render_entity(&EntityName::parse(raw).unwrap()),
            rendered,
            "{raw}"
        );
    }
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri);
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {uri}: {e}: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, json)
}

/// Creates the table from the generated migration and drives every route of the generated
/// controller as a service wires it.
async fn crud_through_the_service(db: Db) {
    db.execute_script(TaskItemEntity::migration(db.dialect()))
        .await
        .unwrap();
    let app = Microservice::new("generated")
        .providers(|c| c.value(db.clone()).injectable::<TaskItemController>())
        .controller(TaskItemController::controller())
        .interceptor(TransactionLayer::new(db.clone()))
        .build()
        .await
        .unwrap()
        .router();

    let (status, created) = call(
        &app,
        "POST",
        "/task-items",
        Some(json!({"name": "write docs"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let created: TaskItem = serde_json::from_value(created).unwrap();
    assert_eq!(created.name, "write docs");
    assert_eq!(created.created_at, created.updated_at);

    let (status, got) = call(&app, "GET", &format!("/task-items/{}", created.id), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_value::<TaskItem>(got).unwrap(), created);

    for name in ["fix bug", "write tests"] {
        let (status, _) = call(&app, "POST", "/task-items", Some(json!({"name": name}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let filter = json!({
        "page": 0,
        "page_size": 10,
        "sort_models": [{"field": "name", "direction": "desc"}],
        "filter_models": [{"field": "name", "operator": "contains", "value": "WRITE"}]
    });
    let (status, page) = call(&app, "POST", "/task-items/query", Some(filter)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["unpaginated_total"], 2);
    assert_eq!(page["total_pages"], 1);
    let page: TaskItemPage = serde_json::from_value(page).unwrap();
    let names: Vec<&str> = page.items.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["write tests", "write docs"]);

    // Defaults fill an empty filter; a field outside the whitelist and a bad page size are
    // the client's mistakes.
    let (status, page) = call(&app, "POST", "/task-items/query", Some(json!({}))).await;
    assert_eq!((status, page["total"].clone()), (StatusCode::OK, json!(3)));
    let unknown = json!({"sort_models": [{"field": "password", "direction": "asc"}]});
    let (status, error) = call(&app, "POST", "/task-items/query", Some(unknown)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, error) = call(
        &app,
        "POST",
        "/task-items/query",
        Some(json!({"page_size": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let named = |entry: &Value| {
        entry["msg"]
            .as_str()
            .is_some_and(|m| m.contains("page_size"))
            || entry["loc"]
                .as_array()
                .is_some_and(|loc| loc.iter().any(|part| part == "page_size"))
    };
    assert!(
        error["detail"].as_array().unwrap().iter().any(named),
        "{error}"
    );
    let bad_operator =
        json!({"filter_models": [{"field": "created_at", "operator": "contains", "value": "x"}]});
    let (status, _) = call(&app, "POST", "/task-items/query", Some(bad_operator)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let uri = format!("/task-items/{}", created.id);
    let (status, updated) = call(
        &app,
        "PUT",
        &uri,
        Some(json!({"name": "write better docs"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let updated: TaskItem = serde_json::from_value(updated).unwrap();
    assert_eq!(
        (updated.id, updated.created_at),
        (created.id, created.created_at)
    );
    assert_eq!(updated.name, "write better docs");
    assert!(updated.updated_at >= created.updated_at);

    let (status, body) = call(&app, "DELETE", &uri, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    for (method, body) in [
        ("GET", None),
        ("PUT", Some(json!({"name": "x"}))),
        ("DELETE", None),
    ] {
        let (status, error) = call(&app, method, &uri, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {error}");
    }
    let (status, _) = call(&app, "GET", "/task-items/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &app,
        "POST",
        "/task-items",
        Some(json!({"title": "no name"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_generated_controller_serves_crud_on_sqlite() {
    let db = Db::sqlite_memory().await.unwrap();
    assert_eq!(db.dialect(), Dialect::Sqlite);
    crud_through_the_service(db).await;
}

#[tokio::test]
async fn the_generated_controller_serves_crud_on_postgres() {
    let Some(url) = jararaca_testing::postgres() else {
        return;
    };
    let schema = jararaca_testing::unique_name("jcli");
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&admin)
        .await
        .unwrap();
    let options = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let outcome = tokio::spawn(crud_through_the_service(Db::from_postgres(pool.clone()))).await;
    pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await
    .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn the_generated_api_is_described_in_openapi_and_typescript() {
    let service = Microservice::new("generated").controller(TaskItemController::controller());
    let routes: Vec<(String, String, String)> = service
        .api()
        .routes
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone(), r.handler.clone()))
        .collect();
    assert_eq!(
        routes,
        [
            (
                "POST".into(),
                "/task-items".into(),
                "create_task_item".into()
            ),
            (
                "POST".into(),
                "/task-items/query".into(),
                "query_task_items".into()
            ),
            (
                "GET".into(),
                "/task-items/{id}".into(),
                "get_task_item".into()
            ),
            (
                "PUT".into(),
                "/task-items/{id}".into(),
                "update_task_item".into()
            ),
            (
                "DELETE".into(),
                "/task-items/{id}".into(),
                "delete_task_item".into()
            ),
        ]
    );
    let openapi = jararaca::http::openapi::document(&service.api());
    let schemas = &openapi["components"]["schemas"];
    let fields: Vec<&Value> = schemas["TaskItemField"]["oneOf"]
        .as_array()
        .unwrap_or_else(|| panic!("{schemas}"))
        .iter()
        .map(|variant| &variant["const"])
        .collect();
    assert_eq!(
        fields,
        [
            &json!("id"),
            &json!("name"),
            &json!("created_at"),
            &json!("updated_at")
        ]
    );
    assert_eq!(
        schemas["TaskItemSortModel"]["properties"]["direction"]["enum"],
        json!(["asc", "desc"]),
        "{schemas}"
    );

    let cfg = ts_rs::Config::default();
    let filter = TaskItemFilter::decl(&cfg);
    for optional in [
        "page?: number",
        "page_size?: number",
        "sort_models?: Array<TaskItemSortModel>",
        "filter_models?: Array<TaskItemFilterModel>",
    ] {
        assert!(filter.contains(optional), "{filter}");
    }
    let page = TaskItemPage::decl(&cfg);
    assert!(page.contains("unpaginated_total: number"), "{page}");
    let field = task_item::TaskItemField::decl(&cfg);
    assert!(
        field.contains(r#""id" | "name" | "created_at" | "updated_at""#),
        "{field}"
    );
    let sort = task_item::TaskItemSortModel::decl(&cfg);
    assert!(sort.contains(r#"direction: "asc" | "desc""#), "{sort}");
    let model = task_item::TaskItemFilterModel::decl(&cfg);
    assert!(model.contains("value?: string | Array<string>"), "{model}");
}
