//! [`RestRequest`]: one call of a REST route, built by hand or by `#[rest_client]`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use http::uri::PathAndQuery;

use crate::client::BaseUrl;
use crate::route::{Retryable, RouteTimeout};
use crate::{Body, RpcResponse};

/// Everything but RFC 3986's unreserved characters is encoded in a path segment, so a value
/// never adds a segment (`/`), starts a query (`?`) or a fragment (`#`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds a user error from a response whose status is not a success.
pub(crate) type Mapper<E> = Arc<dyn Fn(&RpcResponse) -> E + Send + Sync>;

/// Which statuses count as success for one route.
#[derive(Clone, Default)]
pub(crate) enum Success {
    /// Any 2xx (the default).
    #[default]
    Any2xx,
    /// Exactly these.
    Only(Vec<StatusCode>),
    /// Whatever the function accepts.
    When(fn(StatusCode) -> bool),
}

impl Success {
    pub(crate) fn accepts(&self, status: StatusCode) -> bool {
        match self {
            Self::Any2xx => status.is_success(),
            Self::Only(list) => list.contains(&status),
            Self::When(accepts) => accepts(status),
        }
    }
}

/// A file sent as one part of a `multipart/form-data` body.
#[derive(Debug, Clone)]
pub struct FilePart {
    /// The file name the server sees.
    pub file_name: String,
    /// Its media type (`application/octet-stream` unless given).
    pub content_type: String,
    /// Its contents.
    pub bytes: Bytes,
}

impl FilePart {
    /// A part named `file_name` holding `bytes`, as `application/octet-stream`.
    pub fn new(file_name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        Self {
            file_name: file_name.into(),
            content_type: "application/octet-stream".to_owned(),
            bytes: bytes.into(),
        }
    }

    /// Sets the media type.
    #[must_use]
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self
    }
}

enum Payload {
    None,
    Raw {
        bytes: Bytes,
        content_type: Option<HeaderValue>,
    },
}

/// One request to a REST route: a method, a path template with `{name}` parameters, query
/// parameters, headers, and a JSON, form, multipart or raw body.
///
/// Path values are percent-encoded as one segment each (`../x` becomes `..%2Fx`, and a value
/// of `.` or `..` has its dots encoded), query names and values as
/// `application/x-www-form-urlencoded`. Success is any 2xx unless
/// [`success_statuses`](Self::success_statuses) says otherwise; a status that is not a success
/// goes through the route's [`on_status`](Self::on_status) mappers, then the client's.
///
/// Mistakes (a template parameter without a value, an invalid header, a JSON body that does not
/// serialize) are kept and reported as [`RpcError::Build`](crate::RpcError::Build) when the request is sent.
pub struct RestRequest<E = Infallible> {
    method: Method,
    template: Cow<'static, str>,
    path_params: Vec<(Cow<'static, str>, String)>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    payload: Payload,
    form: Vec<(String, String)>,
    files: Vec<(String, FilePart)>,
    timeout: Option<Duration>,
    retryable: Option<bool>,
    pub(crate) success: Success,
    pub(crate) mappers: Vec<(StatusCode, Mapper<E>)>,
    error: Option<String>,
}

impl<E> fmt::Debug for RestRequest<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestRequest")
            .field("method", &self.method)
            .field("template", &self.template)
            .field("path_params", &self.path_params)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

macro_rules! verbs {
    ($($name:ident => $method:ident),*) => {$(
        #[doc = concat!("A `", stringify!($method), "` request to `template`.")]
        pub fn $name(template: impl Into<Cow<'static, str>>) -> Self {
            Self::new(Method::$method, template)
        }
    )*};
}

impl<E> RestRequest<E> {
    /// A request with `method` to `template` (a path relative to the client's base URL, with
    /// `{name}` parameters).
    pub fn new(method: Method, template: impl Into<Cow<'static, str>>) -> Self {
        Self {
            method,
            template: template.into(),
            path_params: Vec::new(),
            query: Vec::new(),
            headers: HeaderMap::new(),
            payload: Payload::None,
            form: Vec::new(),
            files: Vec::new(),
            timeout: None,
            retryable: None,
            success: Success::Any2xx,
            mappers: Vec::new(),
            error: None,
        }
    }

    verbs!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE, head => HEAD);

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    /// Fills the `{name}` parameter of the template.
    #[must_use]
    pub fn path(mut self, name: impl Into<Cow<'static, str>>, value: impl fmt::Display) -> Self {
        self.path_params.push((name.into(), value.to_string()));
        self
    }

    /// Adds a query parameter.
    #[must_use]
    pub fn query(mut self, name: impl Into<String>, value: impl fmt::Display) -> Self {
        self.query.push((name.into(), value.to_string()));
        self
    }

    /// Adds a query parameter when `value` is `Some`.
    #[must_use]
    pub fn query_opt(self, name: impl Into<String>, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(value) => self.query(name, value),
            None => self,
        }
    }

    /// Adds a header (appended, so a name may repeat).
    #[must_use]
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: fmt::Display,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: fmt::Display,
    {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            (Err(e), _) => self.fail(format!("invalid header name: {e}")),
            (_, Err(e)) => self.fail(format!("invalid header value: {e}")),
        }
        self
    }

    fn set_payload(&mut self, bytes: Bytes, content_type: Option<HeaderValue>) {
        if !matches!(self.payload, Payload::None) {
            self.fail("a request has one body; it was set twice".to_owned());
        }
        self.payload = Payload::Raw {
            bytes,
            content_type,
        };
    }

    /// Sends `value` as the JSON body (`Content-Type: application/json`).
    #[must_use]
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.set_payload(
                bytes.into(),
                Some(HeaderValue::from_static("application/json")),
            ),
            Err(e) => self.fail(format!("the JSON body does not serialize: {e}")),
        }
        self
    }

    /// Sends `bytes` as the body, with `content_type` when given.
    #[must_use]
    pub fn body(mut self, bytes: impl Into<Bytes>, content_type: Option<&str>) -> Self {
        let content_type = match content_type.map(HeaderValue::try_from).transpose() {
            Ok(content_type) => content_type,
            Err(e) => {
                self.fail(format!("invalid content type: {e}"));
                None
            }
        };
        self.set_payload(bytes.into(), content_type);
        self
    }

    /// Adds a form field: the body is `application/x-www-form-urlencoded`, or a text part of
    /// `multipart/form-data` when the request also has files.
    #[must_use]
    pub fn form(mut self, name: impl Into<String>, value: impl fmt::Display) -> Self {
        self.form.push((name.into(), value.to_string()));
        self
    }

    /// Adds a file part: the body is `multipart/form-data`.
    #[must_use]
    pub fn file(mut self, name: impl Into<String>, file: FilePart) -> Self {
        self.files.push((name.into(), file));
        self
    }

    /// The route's timeout, in place of the [`TimeoutLayer`](crate::TimeoutLayer)'s default.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Whether [`HttpReplay`](crate::HttpReplay) may retry this request, whatever its method.
    #[must_use]
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }

    /// Only these statuses are a success for this route (instead of any 2xx).
    #[must_use]
    pub fn success_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.success = Success::Only(statuses.into_iter().collect());
        self
    }

    /// The statuses `accepts` returns `true` for are a success for this route.
    #[must_use]
    pub fn success_when(mut self, accepts: fn(StatusCode) -> bool) -> Self {
        self.success = Success::When(accepts);
        self
    }

    /// A response with `status` becomes `RpcError::Mapped(map(&response))`; checked before the
    /// client's mappers.
    #[must_use]
    pub fn on_status(
        mut self,
        status: StatusCode,
        map: impl Fn(&RpcResponse) -> E + Send + Sync + 'static,
    ) -> Self {
        self.mappers.push((status, Arc::new(map)));
        self
    }

    /// `prefix` (a base path without a trailing `/`), `/`, the template with its parameters
    /// filled and encoded, and the query string: what `join(prefix, rendered)` gives, built in
    /// one buffer. An empty template (or `/`) is the prefix itself, with or without a query.
    fn render_path(&self, prefix: &str) -> Result<String, String> {
        let template = self.template.trim_start_matches('/');
        let mut out = String::with_capacity(prefix.len() + template.len() + 32);
        out.push_str(prefix);
        // `/` (or nothing) names the base path itself, as a controller's `#[get("/")]` does:
        // `/tasks` + `/` is `/tasks`, never `/tasks/`.
        if !template.is_empty() || prefix.is_empty() {
            out.push('/');
        }
        let start = out.len();
        let mut used = vec![false; self.path_params.len()];
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in the path template `{}`", self.template))?;
            let name = &after[..close];
            let index = self
                .path_params
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| {
                    format!(
                        "the path template `{}` needs a value for `{name}`",
                        self.template
                    )
                })?;
            used[index] = true;
            encode_segment(&self.path_params[index].1, &mut out);
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        if let Some(unused) = used.iter().position(|u| !u) {
            return Err(format!(
                "the path template `{}` has no `{{{}}}`",
                self.template, self.path_params[unused].0
            ));
        }
        if !self.query.is_empty() {
            out.push(if out[start..].contains('?') { '&' } else { '?' });
            let at = out.len();
            let mut query = form_urlencoded::Serializer::for_suffix(out, at);
            query.extend_pairs(&self.query);
            out = query.finish();
        }
        Ok(out)
    }

    fn render_body(&mut self) -> Result<(Body, Option<HeaderValue>), String> {
        let has_payload = !matches!(self.payload, Payload::None);
        if has_payload && (!self.form.is_empty() || !self.files.is_empty()) {
            return Err("a request has one body: a raw or JSON body and form fields".to_owned());
        }
        if let Payload::Raw {
            bytes,
            content_type,
        } = std::mem::replace(&mut self.payload, Payload::None)
        {
            return Ok((Body::full(bytes), content_type));
        }
        if !self.files.is_empty() {
            let (bytes, content_type) = multipart(&self.form, &self.files);
            return Ok((Body::full(bytes), Some(content_type)));
        }
        if !self.form.is_empty() {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(&self.form);
            return Ok((
                Body::full(form.finish()),
                Some(HeaderValue::from_static(
                    "application/x-www-form-urlencoded",
                )),
            ));
        }
        Ok((Body::empty(), None))
    }

    /// Builds the `http::Request` for the client whose base is `base`, keeping the route's
    /// success rule and mappers.
    pub(crate) fn build(
        mut self,
        base: &BaseUrl,
    ) -> Result<(http::Request<Body>, RouteOutcome<E>), String> {
        if let Some(message) = self.error.take() {
            return Err(message);
        }
        let path = self.render_path(&base.path)?;
        let invalid = |e: http::Error| {
            format!(
                "`{}` + `{}` is not a valid URL: {e}",
                base.url, self.template
            )
        };
        // The base's scheme and authority were parsed once; only the path is new.
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(base.scheme.clone());
        parts.authority = Some(base.authority.clone());
        parts.path_and_query = Some(PathAndQuery::try_from(path).map_err(|e| invalid(e.into()))?);
        let uri = http::Uri::from_parts(parts).map_err(|e| invalid(e.into()))?;
        let (body, content_type) = self.render_body()?;
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers;
        if let Some(content_type) = content_type {
            request
                .headers_mut()
                .entry(CONTENT_TYPE)
                .or_insert(content_type);
        }
        if let Some(timeout) = self.timeout {
            request.extensions_mut().insert(RouteTimeout(timeout));
        }
        if let Some(retryable) = self.retryable {
            request.extensions_mut().insert(Retryable(retryable));
        }
        Ok((
            request,
            RouteOutcome {
                success: self.success,
                mappers: self.mappers,
            },
        ))
    }
}

/// What decides the outcome of one route's response.
pub(crate) struct RouteOutcome<E> {
    pub(crate) success: Success,
    pub(crate) mappers: Vec<(StatusCode, Mapper<E>)>,
}

/// `base` (no trailing `/`) and `path`, with exactly one `/` between them.
pub(crate) fn join(base: &str, path: &str) -> String {
    let path = path.trim_start_matches('/');
    let mut url = String::with_capacity(base.len() + path.len() + 1);
    url.push_str(base.trim_end_matches('/'));
    if !path.is_empty() {
        url.push('/');
        url.push_str(path);
    }
    url
}

fn encode_segment(value: &str, out: &mut String) {
    // `.` and `..` are unreserved but would still move the path up or stay in place.
    if value == "." || value == ".." {
        for _ in 0..value.len() {
            out.push_str("%2E");
        }
        return;
    }
    out.extend(utf8_percent_encode(value, SEGMENT));
}

/// A `name` or `filename` inside a quoted `Content-Disposition` parameter, escaped as the
/// HTML standard's form encoder does.
fn quoted(value: &str) -> String {
    value
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn multipart(form: &[(String, String)], files: &[(String, FilePart)]) -> (Bytes, HeaderValue) {
    let boundary = format!(
        "jararaca-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let mut out = Vec::new();
    for (name, value) in form {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n",
                quoted(name)
            )
            .as_bytes(),
        );
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, file) in files {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                quoted(name),
                quoted(&file.file_name),
                file.content_type.replace(['\r', '\n'], ""),
            )
            .as_bytes(),
        );
        out.extend_from_slice(&file.bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let content_type = HeaderValue::try_from(format!("multipart/form-data; boundary={boundary}"))
        .unwrap_or_else(|_| unreachable!("the boundary is ASCII"));
    (out.into(), content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_url(base: &str) -> BaseUrl {
        BaseUrl::parse(base).unwrap()
    }

    fn url(request: RestRequest, base: &str) -> String {
        request.build(&base_url(base)).unwrap().0.uri().to_string()
    }

    #[test]
    fn a_base_path_is_kept_and_slashes_are_joined_once() {
        assert_eq!(
            url(RestRequest::get("/orders"), "http://h/api"),
            "http://h/api/orders"
        );
        assert_eq!(
            url(RestRequest::get("orders"), "http://h/api/"),
            "http://h/api/orders"
        );
        assert_eq!(
            url(RestRequest::get("/orders"), "http://h"),
            "http://h/orders"
        );
        assert_eq!(url(RestRequest::get(""), "http://h/api/"), "http://h/api");
        assert_eq!(url(RestRequest::get("/"), "http://h"), "http://h/");
        assert_eq!(
            url(RestRequest::get("").query("q", 1), "http://h/api"),
            "http://h/api?q=1"
        );
        assert_eq!(
            url(
                RestRequest::get("/s?x=1").query("q", "a b"),
                "https://h:8443/api"
            ),
            "https://h:8443/api/s?x=1&q=a+b"
        );
        let invalid = RestRequest::<Infallible>::get("/a b").build(&base_url("http://h"));
        assert!(matches!(invalid, Err(m) if m.contains("/a b")));
    }

    #[test]
    fn hostile_path_values_stay_in_one_segment() {
        let request = RestRequest::get("/items/{id}/parts/{part}")
            .path("id", "../admin?x=1#frag")
            .path("part", "a b/ç");
        assert_eq!(
            url(request, "http://h"),
            "http://h/items/..%2Fadmin%3Fx%3D1%23frag/parts/a%20b%2F%C3%A7"
        );
        let dots = RestRequest::get("/items/{id}").path("id", "..");
        assert_eq!(url(dots, "http://h"), "http://h/items/%2E%2E");
    }

    #[test]
    fn queries_are_encoded_and_template_mistakes_are_reported() {
        let request = RestRequest::get("/search")
            .query("q", "a&b=c #d")
            .query("tag", "x");
        assert_eq!(
            url(request, "http://h"),
            "http://h/search?q=a%26b%3Dc+%23d&tag=x"
        );
        let missing = RestRequest::<Infallible>::get("/items/{id}").build(&base_url("http://h"));
        assert!(matches!(missing, Err(m) if m.contains("`id`")));
        let extra = RestRequest::<Infallible>::get("/items")
            .path("id", 1)
            .build(&base_url("http://h"));
        assert!(matches!(extra, Err(m) if m.contains("{id}")));
        let twice = RestRequest::<Infallible>::post("/x")
            .json(&1)
            .body("raw", None)
            .build(&base_url("http://h"));
        assert!(twice.is_err());
    }
}
