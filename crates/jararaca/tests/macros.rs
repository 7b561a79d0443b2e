//! `#[controller]` and `#[derive(Injectable)]` through the facade alone.

use jararaca::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jararaca::http::{Json, Path};
use jararaca::{Inject, Injectable, Microservice, controller};
use tower::ServiceExt;

#[derive(Debug, Default)]
struct Counter(AtomicUsize);

#[derive(Debug, Injectable)]
struct CounterController {
    counter: Arc<Counter>,
}

fn header_layer(
    value: &'static str,
) -> tower::util::MapResponseLayer<
    impl Fn(axum::response::Response) -> axum::response::Response + Clone,
> {
    tower::util::MapResponseLayer::new(move |mut response: axum::response::Response| {
        response
            .headers_mut()
            .append("x-layer", http::HeaderValue::from_static(value));
        response
    })
}

#[controller("/counter", name = "Counting", layer = header_layer("controller"))]
impl CounterController {
    #[post("/{by}", name = "increment", summary = "Add to the counter", layer = header_layer("route"))]
    async fn add(&self, Path(by): Path<usize>) -> Json<usize> {
        Json(self.counter.0.fetch_add(by, Ordering::SeqCst) + by)
    }

    #[get("/")]
    async fn read(Inject(counter): Inject<Counter>) -> Json<usize> {
        Json(counter.0.load(Ordering::SeqCst))
    }

    /// Not a route: methods without a route attribute stay ordinary methods.
    fn double(&self) -> usize {
        self.counter.0.load(Ordering::SeqCst) * 2
    }
}

#[tokio::test]
async fn the_controller_macro_builds_named_routes_with_layers_and_injects_self() {
    let service = Microservice::new("t")
        .providers(|c| {
            c.value(Counter::default())
                .injectable::<CounterController>()
        })
        .controller(CounterController::controller());
    let routes: Vec<(String, String, String, Option<String>)> = service
        .api()
        .routes
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.clone(),
                r.handler.clone(),
                r.summary.clone(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            (
                "POST".into(),
                "/counter/{by}".into(),
                "increment".into(),
                Some("Add to the counter".into())
            ),
            ("GET".into(), "/counter".into(), "read".into(), None),
        ]
    );
    assert!(
        service
            .api()
            .routes
            .iter()
            .all(|r| r.controller == "Counting")
    );

    let app = service.build().await.unwrap();
    let response = app
        .router()
        .oneshot(Request::post("/counter/5").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let layers: Vec<_> = response.headers().get_all("x-layer").iter().collect();
    assert_eq!(layers, ["route", "controller"]);
    assert_eq!(
        &response.into_body().collect().await.unwrap().to_bytes()[..],
        b"5"
    );

    let response = app
        .router()
        .oneshot(Request::get("/counter").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers().get_all("x-layer").iter().count(), 1);
    assert_eq!(
        &response.into_body().collect().await.unwrap().to_bytes()[..],
        b"5"
    );

    let controller = app.container().get::<CounterController>().unwrap();
    assert_eq!(controller.double(), 10);
    assert_eq!(
        app.openapi()["paths"]["/counter/{by}"]["post"]["operationId"],
        "increment"
    );
}
