//! The futures [`RestClient`]'s senders return, written out as state machines: the call
//! through the stack, then the body collected, then the route's verdict. Nested `async fn`s
//! would keep the request builder in every level's state and copy the whole future at each
//! level; here the built request is stored once, inside the stack's own call, and the
//! decoding step adds nothing to the size.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Method, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::Collect;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::util::Oneshot;
use tower_service::Service;

use crate::client::RestClient;
use crate::request::RouteOutcome;
use crate::{Body, BoxError, RpcError, RpcResponse};

/// What the answer is checked against once it is in.
struct Route<E> {
    method: Method,
    url: Uri,
    outcome: RouteOutcome<E>,
    // Set when the future is first polled: the call starts then, not when it is made.
    started: Option<Instant>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<http::Request<Body>, Response = http::Response<B>>,
        B: http_body::Body,
    {
        // The builder refused the request; the future reports it.
        Failed { message: Option<String> },
        // Waiting for the stack to be ready, then for the response head.
        Calling { #[pin] call: Oneshot<S, http::Request<Body>> },
        // Reading the body.
        Collecting { #[pin] collect: Collect<B>, head: Option<http::response::Parts> },
        Done,
    }
}

pin_project! {
    /// The future of [`RestClient::send`].
    pub(crate) struct Sending<'a, S, B, E>
    where
        S: Service<http::Request<Body>, Response = http::Response<B>>,
        B: http_body::Body,
    {
        client: &'a RestClient<S, E>,
        #[pin]
        state: State<S, B>,
        route: Option<Route<E>>,
    }
}

impl<'a, S, B, E> Sending<'a, S, B, E>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone,
    B: http_body::Body,
{
    /// Sends `request` through a clone of `client`'s stack.
    pub(crate) fn new(
        client: &'a RestClient<S, E>,
        request: http::Request<Body>,
        outcome: RouteOutcome<E>,
    ) -> Self {
        let route = Route {
            method: request.method().clone(),
            url: request.uri().clone(),
            outcome,
            started: None,
        };
        Self {
            client,
            state: State::Calling {
                call: Oneshot::new(client.service().clone(), request),
            },
            route: Some(route),
        }
    }

    /// Reports the builder's `message` when awaited.
    pub(crate) fn failed(client: &'a RestClient<S, E>, message: String) -> Self {
        Self {
            client,
            state: State::Failed {
                message: Some(message),
            },
            route: None,
        }
    }
}

const POLLED_AFTER_THE_END: &str = "a request future was polled after it finished";

impl<S, B, E> Future for Sending<'_, S, B, E>
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<RpcResponse, RpcError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let failed = |route: &Option<Route<E>>, error: BoxError| {
                let url = route
                    .as_ref()
                    .map(|r| r.url.to_string())
                    .unwrap_or_default();
                RpcError::from_stack(url, error)
            };
            match this.state.as_mut().project() {
                StateProj::Failed { message } => {
                    let message = message.take().expect(POLLED_AFTER_THE_END);
                    this.state.set(State::Done);
                    return Poll::Ready(Err(RpcError::Build(message)));
                }
                StateProj::Calling { call } => {
                    if let Some(route) = this.route.as_mut() {
                        route.started.get_or_insert_with(Instant::now);
                    }
                    let response = match ready!(call.poll(cx)) {
                        Ok(response) => response,
                        Err(e) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(failed(this.route, e.into())));
                        }
                    };
                    let (head, body) = response.into_parts();
                    this.state.set(State::Collecting {
                        collect: body.collect(),
                        head: Some(head),
                    });
                }
                StateProj::Collecting { collect, head } => {
                    let body = match ready!(collect.poll(cx)) {
                        Ok(collected) => collected.to_bytes(),
                        Err(e) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(failed(this.route, e.into())));
                        }
                    };
                    let head = head.take().expect(POLLED_AFTER_THE_END);
                    this.state.set(State::Done);
                    let route = this.route.take().expect(POLLED_AFTER_THE_END);
                    let response = RpcResponse {
                        method: route.method,
                        url: route.url,
                        status: head.status,
                        headers: head.headers,
                        body,
                        elapsed: route.started.map(|at| at.elapsed()).unwrap_or_default(),
                    };
                    return Poll::Ready(this.client.settle(route.outcome, response));
                }
                StateProj::Done => panic!("{POLLED_AFTER_THE_END}"),
            }
        }
    }
}

pin_project! {
    /// A sender's future followed by what is made of a successful response (decoding it,
    /// taking its body, dropping it).
    pub(crate) struct Then<F, M> {
        #[pin]
        sending: F,
        then: Option<M>,
    }
}

impl<F, M> Then<F, M> {
    pub(crate) fn new(sending: F, then: M) -> Self {
        Self {
            sending,
            then: Some(then),
        }
    }
}

impl<F, M, T, E> Future for Then<F, M>
where
    F: Future<Output = Result<RpcResponse, RpcError<E>>>,
    M: FnOnce(RpcResponse) -> Result<T, RpcError<E>>,
{
    type Output = Result<T, RpcError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.sending.poll(cx));
        let then = this.then.take().expect(POLLED_AFTER_THE_END);
        Poll::Ready(response.and_then(then))
    }
}
