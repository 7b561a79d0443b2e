//! Authentication: users log in for a pair of JWTs (a short-lived access token and a refresh
//! token), refresh them, and log out, which revokes the token in the
//! [`TokenBlackListService`]. [`AuthLayer`] is the interceptor that protects the routes and
//! the WebSocket upgrade: it answers 401 to a request without a valid, unrevoked access
//! token, and gives the handlers the [`CurrentUser`] otherwise.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca::di::Scope;
use jararaca::http::{ApiError, Json, NoContent};
use jararaca::{BoxError, Injectable, controller};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tower_layer::Layer;
use tower_service::Service;
use ts_rs::TS;
use uuid::Uuid;

use crate::AppConfig;

/// What signs and checks tokens, how long they last and who may log in: built from the
/// [`AppConfig`] at startup.
#[derive(Clone)]
pub struct AuthConfig {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// How long an access token is valid, in seconds.
    pub access_ttl_seconds: u64,
    /// How long a refresh token is valid, in seconds.
    pub refresh_ttl_seconds: u64,
    users: HashMap<String, String>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("AuthConfig")
            .field("access_ttl_seconds", &self.access_ttl_seconds)
            .field("refresh_ttl_seconds", &self.refresh_ttl_seconds)
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// Reads the secret, the lifetimes and the `name:password` users of `config`.
    pub fn from_config(config: &AppConfig) -> Result<Self, BoxError> {
        let secret = config.jwt_secret.as_bytes();
        if config.jwt_secret.len() < 16 {
            return Err("JWT_SECRET must be at least 16 characters long".into());
        }
        let mut users = HashMap::new();
        for entry in &config.demo_users {
            match entry.split_once(':') {
                Some((name, password)) if !name.is_empty() && !password.is_empty() => {
                    users.insert(name.to_owned(), password.to_owned());
                }
                _ => {
                    return Err(format!(
                        "DEMO_USERS: `{entry}` is not `name:password` (pairs separated by commas)"
                    )
                    .into());
                }
            }
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            access_ttl_seconds: config.access_token_ttl_seconds,
            refresh_ttl_seconds: config.refresh_token_ttl_seconds,
            users,
        })
    }

    fn password_matches(&self, username: &str, password: &str) -> bool {
        self.users
            .get(username)
            .is_some_and(|expected| constant_time_eq(expected.as_bytes(), password.as_bytes()))
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell how
/// much of a guessed password was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Revoked tokens, by their id (`jti`), until they would have expired anyway.
pub trait TokenBlackListService: Send + Sync + 'static {
    /// Revokes the token `token_id`, which expires at `expires_at` (unix seconds): `true`
    /// if this call revoked it, `false` if it already was (so of two concurrent uses of a
    /// refresh token, one wins).
    fn revoke<'a>(
        &'a self,
        token_id: &'a str,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<bool, BoxError>>;

    /// Whether the token `token_id` was revoked.
    fn is_revoked<'a>(&'a self, token_id: &'a str) -> BoxFuture<'a, Result<bool, BoxError>>;
}

/// The revoked tokens of this process: the embedded default, for one process.
#[derive(Debug, Default)]
pub struct InMemoryTokenBlackList {
    revoked: Mutex<HashMap<String, u64>>,
}

impl TokenBlackListService for InMemoryTokenBlackList {
    fn revoke<'a>(
        &'a self,
        token_id: &'a str,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        let mut revoked = self
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Expired entries would be refused by their expiry anyway: forget them.
        let now = now();
        revoked.retain(|_, until| *until > now);
        let first = revoked.insert(token_id.to_owned(), expires_at).is_none();
        async move { Ok(first) }.boxed()
    }

    fn is_revoked<'a>(&'a self, token_id: &'a str) -> BoxFuture<'a, Result<bool, BoxError>> {
        let revoked = self
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(token_id);
        async move { Ok(revoked) }.boxed()
    }
}

/// The revoked tokens in Redis, shared by every process of a deployment: one key
/// `<prefix>revoked:<jti>` per token, expiring with the token.
#[derive(Clone)]
pub struct RedisTokenBlackList {
    connection: redis::aio::ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RedisTokenBlackList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenBlackList")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTokenBlackList {
    /// Keeps the revoked tokens through `connection`, under keys starting with `prefix`.
    pub fn new(connection: redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
        }
    }

    fn key(&self, token_id: &str) -> String {
        format!("{}revoked:{token_id}", self.prefix)
    }
}

impl TokenBlackListService for RedisTokenBlackList {
    fn revoke<'a>(
        &'a self,
        token_id: &'a str,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        async move {
            let mut connection = self.connection.clone();
            // At least a second, so a token revoked in its last second stays revoked.
            let until = expires_at.max(now() + 1);
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key(token_id))
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(until)
                .query_async(&mut connection)
                .await?;
            Ok(set.is_some())
        }
        .boxed()
    }

    fn is_revoked<'a>(&'a self, token_id: &'a str) -> BoxFuture<'a, Result<bool, BoxError>> {
        async move {
            let mut connection = self.connection.clone();
            let found: i64 = redis::cmd("EXISTS")
                .arg(self.key(token_id))
                .query_async(&mut connection)
                .await?;
            Ok(found > 0)
        }
        .boxed()
    }
}

/// Which of the pair a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TokenKind {
    Access,
    Refresh,
}

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    jti: String,
    iat: u64,
    exp: u64,
    kind: TokenKind,
}

/// Why a request is not authenticated: always a 401 (`WWW-Authenticate: Bearer`), with the
/// reason in `detail`; a revoked-list that cannot be read is a 503.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token in the request.
    #[error("not authenticated: send `Authorization: Bearer <access token>`")]
    Missing,
    /// The token does not verify, expired, or is of the other kind.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token was revoked by a logout.
    #[error("the token was revoked")]
    Revoked,
    /// Wrong user name or password.
    #[error("wrong user name or password")]
    BadCredentials,
    /// The revoked-token list could not be read or written.
    #[error("cannot reach the revoked-token list: {0}")]
    Unavailable(BoxError),
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match self {
            AuthError::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::UNAUTHORIZED,
        };
        let mut response = ApiError::new(status, self.to_string()).into_response();
        if status == http::StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Documented as the `{"detail": …}` error body, as `ApiError` is.
impl jararaca::api::RouteOutput for AuthError {
    fn describe(route: &mut jararaca::api::RouteMeta) {
        jararaca::api::describe_error_response(route);
    }
}

/// The user a request was authenticated as, put in its extensions by [`AuthLayer`]; a
/// handler argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// The user name.
    pub username: String,
    token_id: String,
    expires_at: u64,
}

impl CurrentUser {
    /// The room of this user's WebSocket connections: `user:<name>`.
    pub fn room(&self) -> String {
        user_room(&self.username)
    }
}

/// The room of `username`'s WebSocket connections.
pub fn user_room(username: &str) -> String {
    format!("user:{username}")
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or(AuthError::Missing)
    }
}

impl jararaca::api::RouteInput for CurrentUser {}

/// A pair of tokens, as `POST /auth/login` and `POST /auth/refresh` return it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, TS)]
pub struct TokenPair {
    /// Sent as `Authorization: Bearer <access_token>` (or `?access_token=` on a WebSocket
    /// upgrade, where browsers cannot set headers).
    pub access_token: String,
    /// Exchanged for a new pair at `POST /auth/refresh`.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Signs, checks and revokes tokens.
#[derive(Injectable)]
pub struct Authenticator {
    config: Arc<AuthConfig>,
    black_list: Arc<dyn TokenBlackListService>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Checks `username` and `password` and issues a pair.
    pub fn login(&self, username: &str, password: &str) -> Result<TokenPair, AuthError> {
        if !self.config.password_matches(username, password) {
            return Err(AuthError::BadCredentials);
        }
        self.issue(username)
    }

    /// Exchanges an unrevoked refresh token for a new pair, revoking it: a refresh token is
    /// used once, even by two requests at the same time.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let claims = self.verify(refresh_token, TokenKind::Refresh).await?;
        let first = self
            .black_list
            .revoke(&claims.jti, claims.exp)
            .await
            .map_err(AuthError::Unavailable)?;
        if !first {
            return Err(AuthError::Revoked);
        }
        self.issue(&claims.sub)
    }

    /// The user of an unrevoked access token.
    pub async fn authenticate(&self, access_token: &str) -> Result<CurrentUser, AuthError> {
        let claims = self.verify(access_token, TokenKind::Access).await?;
        Ok(CurrentUser {
            username: claims.sub,
            token_id: claims.jti,
            expires_at: claims.exp,
        })
    }

    /// Revokes `user`'s access token and, when given, a refresh token of the same user.
    pub async fn logout(
        &self,
        user: &CurrentUser,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(refresh) = refresh_token {
            let claims = self.verify(refresh, TokenKind::Refresh).await?;
            if claims.sub != user.username {
                return Err(AuthError::Invalid(
                    "the refresh token belongs to another user".into(),
                ));
            }
            self.black_list
                .revoke(&claims.jti, claims.exp)
                .await
                .map_err(AuthError::Unavailable)?;
        }
        self.black_list
            .revoke(&user.token_id, user.expires_at)
            .await
            .map(drop)
            .map_err(AuthError::Unavailable)
    }

    fn issue(&self, username: &str) -> Result<TokenPair, AuthError> {
        let sign = |kind, ttl: u64| {
            let issued = now();
            let claims = Claims {
                sub: username.to_owned(),
                jti: Uuid::new_v4().simple().to_string(),
                iat: issued,
                exp: issued + ttl,
                kind,
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &self.config.encoding,
            )
            .map_err(|e| AuthError::Invalid(format!("cannot sign a token: {e}")))
        };
        Ok(TokenPair {
            access_token: sign(TokenKind::Access, self.config.access_ttl_seconds)?,
            refresh_token: sign(TokenKind::Refresh, self.config.refresh_ttl_seconds)?,
            token_type: "bearer".to_owned(),
            expires_in: self.config.access_ttl_seconds,
        })
    }

    async fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.config.decoding, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        if claims.kind != kind {
            return Err(AuthError::Invalid(format!(
                "expected an {} token",
                match kind {
                    TokenKind::Access => "access",
                    TokenKind::Refresh => "refresh",
                }
            )));
        }
        let revoked = self
            .black_list
            .is_revoked(&claims.jti)
            .await
            .map_err(AuthError::Unavailable)?;
        if revoked {
            return Err(AuthError::Revoked);
        }
        Ok(claims)
    }
}

/// The access token of a request: `Authorization: Bearer <token>`, or, on a WebSocket
/// upgrade only (browsers cannot set headers there), the `access_token` query parameter.
fn token_of<B>(request: &Request<B>) -> Option<String> {
    let bearer = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    if bearer.is_some() {
        return bearer;
    }
    let upgrade = request
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "access_token")
        .map(|(_, value)| value.into_owned())
}

/// The interceptor that authenticates a request (a route, or a WebSocket upgrade before it
/// is accepted) with its access token, through the [`Authenticator`] of the unit's
/// container: 401 without a token or with an invalid, expired or revoked one; otherwise the
/// handler runs with the [`CurrentUser`] in the request's extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthLayer;

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth { inner }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
}

impl<S> Service<Request> for Auth<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The readied service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let token = token_of(&request);
        let authenticator = request
            .extensions()
            .get::<Scope>()
            .map(|scope| scope.container().get::<Authenticator>());
        async move {
            let authenticator = match authenticator {
                Some(Ok(authenticator)) => authenticator,
                Some(Err(error)) => return Ok(ApiError::internal(error).into_response()),
                None => {
                    return Ok(ApiError::internal(
                        "AuthLayer runs outside a unit of work: give it to a controller or route",
                    )
                    .into_response());
                }
            };
            let Some(token) = token else {
                return Ok(AuthError::Missing.into_response());
            };
            match authenticator.authenticate(&token).await {
                Ok(user) => {
                    request.extensions_mut().insert(user);
                    inner.call(request).await
                }
                Err(error) => Ok(error.into_response()),
            }
        }
        .boxed()
    }
}

/// The body of `POST /auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, TS)]
pub struct LoginRequest {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// The body of `POST /auth/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, TS)]
pub struct RefreshRequest {
    /// The refresh token of a pair.
    pub refresh_token: String,
}

/// The body of `POST /auth/logout`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, TS)]
pub struct LogoutRequest {
    /// The refresh token to revoke with the access token, if any.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, TS)]
pub struct Me {
    /// The user name.
    pub username: String,
}

/// `/auth`: log in, refresh, log out, and who am I.
#[derive(Debug, Injectable)]
pub struct AuthController {
    auth: Arc<Authenticator>,
}

#[controller("/auth")]
impl AuthController {
    #[post(
        "/login",
        summary = "Log in for an access and a refresh token",
        mutation
    )]
    async fn login(&self, Json(body): Json<LoginRequest>) -> Result<Json<TokenPair>, AuthError> {
        Ok(Json(self.auth.login(&body.username, &body.password)?))
    }

    #[post(
        "/refresh",
        summary = "Exchange a refresh token for a new pair",
        mutation
    )]
    async fn refresh(
        &self,
        Json(body): Json<RefreshRequest>,
    ) -> Result<Json<TokenPair>, AuthError> {
        Ok(Json(self.auth.refresh(&body.refresh_token).await?))
    }

    #[post(
        "/logout",
        summary = "Revoke the access token (and a refresh token)",
        layer = AuthLayer,
        mutation
    )]
    async fn logout(
        &self,
        user: CurrentUser,
        Json(body): Json<LogoutRequest>,
    ) -> Result<NoContent, AuthError> {
        self.auth
            .logout(&user, body.refresh_token.as_deref())
            .await?;
        Ok(NoContent)
    }

    #[get("/me", summary = "The authenticated user", layer = AuthLayer, query)]
    async fn me(user: CurrentUser) -> Json<Me> {
        Json(Me {
            username: user.username,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
    }

    #[test]
    fn demo_users_must_be_name_password_pairs() {
        let mut config: AppConfig =
            jararaca::di::config::from_vars::<AppConfig, _>([("DEMO_USERS", "ana:pw,carl")])
                .unwrap();
        let error = AuthConfig::from_config(&config).unwrap_err().to_string();
        assert!(error.contains("`carl`"), "{error}");
        config.demo_users = vec!["ana:pw".into()];
        let auth = AuthConfig::from_config(&config).unwrap();
        assert!(auth.password_matches("ana", "pw"));
        assert!(!auth.password_matches("ana", "pw2"));
        assert!(!auth.password_matches("bob", "pw"));
    }

    #[tokio::test]
    async fn the_in_memory_black_list_forgets_expired_tokens() {
        let list = InMemoryTokenBlackList::default();
        assert!(list.revoke("old", now() - 1).await.unwrap());
        assert!(list.revoke("new", now() + 60).await.unwrap());
        assert!(
            !list.revoke("new", now() + 60).await.unwrap(),
            "revoked once"
        );
        assert!(list.is_revoked("new").await.unwrap());
        // Revoking prunes what expired: `old` is gone (and would be refused by its expiry).
        assert!(!list.is_revoked("old").await.unwrap());
        assert!(!list.is_revoked("other").await.unwrap());
    }
}
