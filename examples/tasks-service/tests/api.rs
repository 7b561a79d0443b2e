//! The service's HTTP API through its router, as a client sees it: logging in, refreshing
//! and logging out, and each user's tasks behind their token.

mod common;

use common::{access, call, login};
use http::StatusCode;
use jararaca::prelude::*;
use serde_json::json;

fn embedded() -> jararaca::Microservice {
    tasks_service::service_on(tasks_service::Deployment::embedded())
}

#[tokio::test]
async fn login_refresh_and_logout() {
    let router = embedded().build().await.unwrap().router();

    let (status, body) = call(
        &router,
        "POST",
        "/auth/login",
        None,
        Some(json!({"username": "alice", "password": "wrong"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["detail"], "wrong user name or password");

    let pair = login(&router, "alice").await;
    assert_eq!(pair["token_type"], "bearer");
    assert_eq!(pair["expires_in"], 900);
    let token = access(&pair);
    let (status, me) = call(&router, "GET", "/auth/me", Some(&token), None).await;
    assert_eq!((status, me), (StatusCode::OK, json!({"username": "alice"})));

    // A refresh token is not an access token, and the other way round.
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = call(&router, "GET", "/auth/me", Some(&refresh), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = call(
        &router,
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A refresh token is used once: the second exchange is refused.
    let (status, renewed) = call(
        &router,
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let (status, body) = call(
        &router,
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the token was revoked"))
    );

    // Logging out revokes the access token and the refresh token given with it; the
    // first pair's access token stays valid until it expires.
    let renewed_token = access(&renewed);
    let (status, _) = call(
        &router,
        "POST",
        "/auth/logout",
        Some(&renewed_token),
        Some(json!({"refresh_token": renewed["refresh_token"]})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&router, "GET", "/tasks", Some(&renewed_token), None).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the token was revoked"))
    );
    let (status, _) = call(
        &router,
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": renewed["refresh_token"]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&router, "GET", "/tasks", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_tasks_route_needs_a_valid_token() {
    let router = embedded().build().await.unwrap().router();
    let id = uuid::Uuid::new_v4();
    let routes = [
        ("GET", "/tasks".to_owned()),
        ("POST", "/tasks".to_owned()),
        ("GET", format!("/tasks/{id}")),
        ("PUT", format!("/tasks/{id}")),
        ("POST", format!("/tasks/{id}/complete")),
        ("DELETE", format!("/tasks/{id}")),
        ("GET", "/auth/me".to_owned()),
        ("POST", "/auth/logout".to_owned()),
    ];
    for (method, uri) in &routes {
        for token in [None, Some("not-a-jwt")] {
            let (status, body) = call(&router, method, uri, token, Some(json!({}))).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {body}");
        }
    }
    // A token signed with another secret is refused too.
    let other = tasks_service::service_on(tasks_service::Deployment::embedded())
        .providers(|c| c.env([("JWT_SECRET", "another-secret-of-enough-length")]))
        .build()
        .await
        .unwrap()
        .router();
    let forged = access(&login(&other, "alice").await);
    let (status, body) = call(&router, "GET", "/tasks", Some(&forged), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"].as_str().unwrap().contains("invalid token"),
        "{body}"
    );
    // The query-string token is for WebSocket upgrades only.
    let token = access(&login(&router, "alice").await);
    let (status, _) = call(
        &router,
        "GET",
        &format!("/tasks?access_token={token}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn each_user_creates_searches_completes_and_deletes_their_own_tasks() {
    let router = embedded().build().await.unwrap().router();
    let alice = access(&login(&router, "alice").await);
    let bob = access(&login(&router, "bob").await);

    let mut ids = Vec::new();
    for title in ["b: write docs", "a: fix bug", "c: write tests"] {
        let (status, task) = call(
            &router,
            "POST",
            "/tasks",
            Some(&alice),
            Some(json!({"title": title})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        assert_eq!(
            (task["owner"].as_str(), task["done"].as_bool()),
            (Some("alice"), Some(false))
        );
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    let (status, _) = call(
        &router,
        "POST",
        "/tasks",
        Some(&bob),
        Some(json!({"title": "bob's write-up"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(
        &router,
        "POST",
        "/tasks",
        Some(&alice),
        Some(json!({"title": " "})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = call(&router, "POST", "/tasks", Some(&alice), Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Sorted by title, descending, filtered to "write", a page of one: alice's only.
    let sort = "%5B%7B%22field%22%3A%22title%22%2C%22direction%22%3A%22desc%22%7D%5D";
    let filter = "%5B%7B%22field%22%3A%22title%22%2C%22operator%22%3A%22contains%22%2C%22value%22%3A%22write%22%7D%5D";
    let (status, page) = call(
        &router,
        "GET",
        &format!("/tasks?page=0&page_size=1&sort_models={sort}&filter_models={filter}"),
        Some(&alice),
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
    // The owner is not a field a client may filter on (it is always the caller).
    let by_owner = "%5B%7B%22field%22%3A%22owner%22%2C%22operator%22%3A%22equals%22%2C%22value%22%3A%22bob%22%7D%5D";
    let (status, body) = call(
        &router,
        "GET",
        &format!("/tasks?filter_models={by_owner}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, page) = call(&router, "GET", "/tasks", Some(&bob), None).await;
    assert_eq!(page["unpaginated_total"], 1, "{page}");

    // Another user's task is missing for bob: read, replace, complete and delete are 404.
    let id = &ids[0];
    for (method, uri, body) in [
        ("GET", format!("/tasks/{id}"), None),
        (
            "PUT",
            format!("/tasks/{id}"),
            Some(json!({"title": "mine now", "done": true})),
        ),
        ("POST", format!("/tasks/{id}/complete"), None),
        ("DELETE", format!("/tasks/{id}"), None),
    ] {
        let (status, answer) = call(&router, method, &uri, Some(&bob), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {answer}");
    }

    let (status, done) = call(
        &router,
        "POST",
        &format!("/tasks/{id}/complete"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(
        (status, done["done"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, replaced) = call(
        &router,
        "PUT",
        &format!("/tasks/{id}"),
        Some(&alice),
        Some(json!({"title": "b: write all the docs", "description": "every crate", "done": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["description"], "every crate");
    assert_eq!(replaced["created_at"], done["created_at"]);
    let (status, fetched) = call(&router, "GET", &format!("/tasks/{id}"), Some(&alice), None).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &replaced));
    let is_done = "%5B%7B%22field%22%3A%22done%22%2C%22operator%22%3A%22is%22%2C%22value%22%3A%22true%22%7D%5D";
    let (_, page) = call(
        &router,
        "GET",
        &format!("/tasks?filter_models={is_done}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(page["items"][0]["id"].as_str(), Some(id.as_str()), "{page}");
    assert_eq!(page["unpaginated_total"], 1);

    let (status, _) = call(
        &router,
        "DELETE",
        &format!("/tasks/{id}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&router, "GET", &format!("/tasks/{id}"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = call(&router, "GET", "/tasks", Some(&alice), None).await;
    assert_eq!(page["unpaginated_total"], 2);
}

#[tokio::test]
async fn configuration_is_checked_at_startup() {
    let error = embedded()
        .providers(|c| c.env([("DEMO_USERS", "carl"), ("ACCESS_TOKEN_TTL_SECONDS", "soon")]))
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("ACCESS_TOKEN_TTL_SECONDS"), "{error}");
    let error = embedded()
        .providers(|c| c.env([("DEMO_USERS", "carl")]))
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("DEMO_USERS"), "{error}");
    let error = embedded()
        .providers(|c| c.env([("JWT_SECRET", "short")]))
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("JWT_SECRET"), "{error}");
}

#[tokio::test]
async fn openapi_lists_the_auth_and_tasks_routes() {
    let router = embedded().build().await.unwrap().router();
    let (status, doc) = call(&router, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /tasks/{id}",
            "GET /auth/me",
            "GET /tasks",
            "GET /tasks/{id}",
            "POST /auth/login",
            "POST /auth/logout",
            "POST /auth/refresh",
            "POST /tasks",
            "POST /tasks/{id}/complete",
            "PUT /tasks/{id}",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_is_used_once_even_by_concurrent_requests() {
    let router = embedded().build().await.unwrap().router();
    let pair = login(&router, "alice").await;
    let body = json!({"refresh_token": pair["refresh_token"]});
    let attempts = (0..8).map(|_| {
        let router = router.clone();
        let body = body.clone();
        tokio::spawn(async move {
            call(&router, "POST", "/auth/refresh", None, Some(body))
                .await
                .0
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        statuses.push(attempt.await.unwrap());
    }
    let renewed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(renewed, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(s))
    );
}

#[tokio::test]
async fn the_redis_black_list_revokes_once_until_the_token_expires() {
    use tasks_service::{RedisTokenBlackList, TokenBlackListService};

    let Some(url) = jararaca_testing::redis() else {
        return;
    };
    let prefix = format!("{}:", jararaca_testing::unique_name("tasks_black_list"));
    let client = redis::Client::open(url.as_str()).unwrap();
    let connection = client.get_connection_manager().await.unwrap();
    let list = RedisTokenBlackList::new(connection.clone(), prefix.clone());
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    assert!(!list.is_revoked("jti-1").await.unwrap());
    assert!(list.revoke("jti-1", expires).await.unwrap());
    assert!(
        !list.revoke("jti-1", expires).await.unwrap(),
        "revoked once"
    );
    assert!(list.is_revoked("jti-1").await.unwrap());
    assert!(!list.is_revoked("jti-2").await.unwrap());
    let key = format!("{prefix}revoked:jti-1");
    let mut connection = connection;
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(
        (1..=60).contains(&ttl),
        "the key expires with the token: {ttl}"
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
}
