//! The dependency-injection container: providers, keys, lifetimes, and per-unit scopes.

mod error;
mod key;
mod provider;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

pub use error::{BuildError, Problem, ResolveError};
pub use key::{Key, Token};
pub use provider::{Dependency, Factory, Injectable, Lifetime, Provider};

use crate::BoxError;
use crate::lifecycle::Lifecycle;
use provider::{Build, BuildFn, Shared};

/// The application's providers, with every singleton already built.
///
/// A `Container` is cheap to clone (one `Arc`). It is built once at startup by a
/// [`ContainerBuilder`], which checks the whole graph first, so nothing fails to resolve at
/// request time for want of a provider. Scoped values are resolved through a [`Scope`], one per
/// unit of work.
///
/// ```
/// # tokio_test_block_on(async {
/// use std::sync::Arc;
/// use jararaca_di::{Container, Token};
///
/// struct Greeter { greeting: Arc<String> }
/// const GREETING: Token<String> = Token::new("GREETING");
///
/// let container = Container::builder()
///     .token_value(GREETING, "hello".to_string())
///     .provide(jararaca_di::Provider::from_fn([GREETING.key()], |r| async move {
///         Ok::<_, jararaca_di::ResolveError>(Greeter { greeting: r.get_token(GREETING).await? })
///     }))
///     .build()
///     .await
///     .unwrap();
/// assert_eq!(*container.get::<Greeter>().unwrap().greeting, "hello");
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Container {
    inner: Arc<Inner>,
}

struct Inner {
    /// Scoped providers' factories; singletons are already in `singletons`.
    scoped: HashMap<Key, ScopedProvider>,
    singletons: HashMap<Key, Shared>,
    lifecycle: Lifecycle,
}

struct ScopedProvider {
    deps: Arc<[Key]>,
    build: BuildFn,
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Container")
            .field(
                "singletons",
                &self.inner.singletons.keys().collect::<Vec<_>>(),
            )
            .field("scoped", &self.inner.scoped.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Container {
    /// Starts registering providers.
    pub fn builder() -> ContainerBuilder {
        ContainerBuilder::default()
    }

    /// The singleton provided for `T`.
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, ResolveError> {
        self.get_key(Key::of::<T>())
    }

    /// The singleton provided under `token`.
    pub fn get_token<T: ?Sized + Send + Sync + 'static>(
        &self,
        token: Token<T>,
    ) -> Result<Arc<T>, ResolveError> {
        self.get_key(token.key())
    }

    fn get_key<T: ?Sized + Send + Sync + 'static>(&self, key: Key) -> Result<Arc<T>, ResolveError> {
        match self.inner.singletons.get(&key) {
            Some(shared) => Ok(downcast(shared)),
            None if self.inner.scoped.contains_key(&key) => {
                Err(ResolveError::ScopedOutsideUnit(key))
            }
            None => Err(ResolveError::NotProvided(key)),
        }
    }

    /// Whether anything provides `key`.
    pub fn provides(&self, key: Key) -> bool {
        self.inner.singletons.contains_key(&key) || self.inner.scoped.contains_key(&key)
    }

    /// A new scope for one unit of work. The DI scope layer
    /// ([`ScopeLayer`](crate::ScopeLayer)) does this for every unit.
    pub fn new_scope(&self) -> Scope {
        Scope {
            container: self.clone(),
            cells: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Runs the startup hooks in registration order. When one fails, the shutdown hooks of
    /// those already started run (in reverse) and the error is returned.
    pub async fn startup(&self) -> Result<(), BoxError> {
        self.inner.lifecycle.startup(self).await
    }

    /// Runs the shutdown hooks of everything started, in reverse registration order. Every
    /// hook runs even when an earlier one fails; the failures are returned together.
    pub async fn shutdown(&self) -> Result<(), crate::lifecycle::ShutdownError> {
        self.inner.lifecycle.shutdown(self).await
    }
}

fn downcast<T: ?Sized + Send + Sync + 'static>(shared: &Shared) -> Arc<T> {
    // Registration and lookup go through the same `Key::of::<T>()`, and the builder rejects
    // tokens of another type, so the stored `Arc<T>` always matches.
    match shared.downcast_ref::<Arc<T>>() {
        Some(value) => Arc::clone(value),
        None => unreachable!("provider stored under the key of another type"),
    }
}

/// The values of one unit of work: the container's singletons plus the scoped values built
/// on first use in this unit.
///
/// A scope is cheap to clone and shared by everything in the unit; it is dropped with it.
#[derive(Clone)]
pub struct Scope {
    container: Container,
    cells: Arc<Mutex<HashMap<Key, Arc<OnceCell<Shared>>>>>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built = self.cells.lock().map(|c| c.len()).unwrap_or_default();
        f.debug_struct("Scope")
            .field("scoped_values", &built)
            .finish()
    }
}

impl Scope {
    /// The container this scope belongs to.
    pub fn container(&self) -> &Container {
        &self.container
    }

    /// The value provided for `T`, building it if it is scoped and not yet built in this unit.
    pub async fn resolve<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, ResolveError> {
        self.resolve_key(Key::of::<T>()).await.map(|s| downcast(&s))
    }

    /// The value provided under `token`.
    pub async fn resolve_token<T: ?Sized + Send + Sync + 'static>(
        &self,
        token: Token<T>,
    ) -> Result<Arc<T>, ResolveError> {
        self.resolve_key(token.key()).await.map(|s| downcast(&s))
    }

    fn resolve_key(&self, key: Key) -> BoxFuture<'_, Result<Shared, ResolveError>> {
        async move {
            if let Some(shared) = self.container.inner.singletons.get(&key) {
                return Ok(Arc::clone(shared));
            }
            let Some(provider) = self.container.inner.scoped.get(&key) else {
                return Err(ResolveError::NotProvided(key));
            };
            let cell = {
                let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
                Arc::clone(cells.entry(key).or_default())
            };
            let resolver = Resolver {
                source: Source::Scope(self.clone()),
                requester: key,
                allowed: Arc::clone(&provider.deps),
            };
            cell.get_or_try_init(|| async {
                (provider.build)(resolver)
                    .await
                    .map_err(|source| ResolveError::Factory { key, source })
            })
            .await
            .cloned()
        }
        .boxed()
    }
}

/// What a factory reads its declared dependencies from.
#[derive(Clone)]
pub struct Resolver {
    source: Source,
    requester: Key,
    allowed: Arc<[Key]>,
}

#[derive(Clone)]
enum Source {
    /// Building a singleton: its dependencies, already built.
    Built(Arc<HashMap<Key, Shared>>),
    /// Building a scoped value inside a unit of work.
    Scope(Scope),
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("requester", &self.requester)
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl Resolver {
    /// The value provided for `T`, which must be a declared dependency.
    pub async fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, ResolveError> {
        self.get_key(Key::of::<T>()).await
    }

    /// The value provided under `token`, which must be a declared dependency.
    pub async fn get_token<T: ?Sized + Send + Sync + 'static>(
        &self,
        token: Token<T>,
    ) -> Result<Arc<T>, ResolveError> {
        self.get_key(token.key()).await
    }

    async fn get_key<T: ?Sized + Send + Sync + 'static>(
        &self,
        key: Key,
    ) -> Result<Arc<T>, ResolveError> {
        if !self.allowed.contains(&key) {
            return Err(ResolveError::Undeclared {
                key,
                requester: self.requester,
            });
        }
        let shared = match &self.source {
            Source::Built(map) => map
                .get(&key)
                .cloned()
                .ok_or(ResolveError::NotProvided(key))?,
            Source::Scope(scope) => scope.resolve_key(key).await?,
        };
        Ok(downcast(&shared))
    }
}

/// Registers providers and lifecycle hooks, then checks the graph and builds the singletons.
#[derive(Default)]
pub struct ContainerBuilder {
    providers: Vec<Provider>,
    env: Option<Vec<(String, String)>>,
    lifecycle: Lifecycle,
}

impl fmt::Debug for ContainerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerBuilder")
            .field("providers", &self.providers)
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

impl ContainerBuilder {
    /// Registers a [`Provider`].
    pub fn provide(mut self, provider: Provider) -> Self {
        self.providers.push(provider);
        self
    }

    /// Provides a ready value by its type.
    pub fn value<T: Send + Sync + 'static>(self, value: T) -> Self {
        self.provide(Provider::value(value))
    }

    /// Provides a ready shared value by its type; `T` may be a trait object.
    pub fn shared<T: ?Sized + Send + Sync + 'static>(self, value: Arc<T>) -> Self {
        self.provide(Provider::shared(value))
    }

    /// Provides a ready value under a token.
    pub fn token_value<T: Send + Sync + 'static>(self, token: Token<T>, value: T) -> Self {
        self.provide(Provider::value(value).named(token))
    }

    /// Provides a singleton built by an async factory whose arguments are its dependencies.
    pub fn factory<Args, T, F>(self, factory: F) -> Self
    where
        F: Factory<Args, T>,
        T: Send + Sync + 'static,
    {
        self.provide(Provider::factory(factory))
    }

    /// Provides a per-unit-of-work value built by an async factory.
    pub fn scoped<Args, T, F>(self, factory: F) -> Self
    where
        F: Factory<Args, T>,
        T: Send + Sync + 'static,
    {
        self.provide(Provider::factory(factory).scoped())
    }

    /// Provides a singleton built by constructor injection.
    pub fn injectable<T: Injectable>(self) -> Self {
        self.provide(Provider::injectable::<T>())
    }

    /// The environment variables the typed configurations registered so far read, each with
    /// its configuration's type name (see [`config::variables`](crate::config::variables)).
    pub fn config_variables(&self) -> Vec<(&'static str, &'static str)> {
        let mut seen = std::collections::BTreeSet::new();
        self.providers
            .iter()
            .filter_map(|provider| match &provider.build {
                Build::Config(_, variables) => Some(variables()),
                _ => None,
            })
            .flat_map(|(type_name, variables)| variables.into_iter().map(move |v| (v, type_name)))
            .filter(|(variable, _)| seen.insert(*variable))
            .collect()
    }

    /// Provides `T` read from environment variables at startup.
    pub fn config<T: DeserializeOwned + Send + Sync + 'static>(self) -> Self {
        self.provide(Provider::config::<T>())
    }

    /// Provides `T` read from environment variables, under a token.
    pub fn token_config<T: DeserializeOwned + Send + Sync + 'static>(
        self,
        token: Token<T>,
    ) -> Self {
        self.provide(Provider::config::<T>().named(token))
    }

    /// Exposes the provided `C` as `I` as well: `.bind::<dyn Repo, PgRepo>(|r| r)`.
    pub fn bind<I, C>(self, convert: fn(Arc<C>) -> Arc<I>) -> Self
    where
        I: ?Sized + Send + Sync + 'static,
        C: ?Sized + Send + Sync + 'static,
    {
        self.provide(Provider::bind(convert))
    }

    /// Reads configurations from these variables instead of the process environment (tests).
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Adds a startup hook; hooks start in registration order.
    pub fn on_startup<F, Fut>(mut self, name: &'static str, hook: F) -> Self
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.lifecycle.on_startup(name, hook);
        self
    }

    /// Adds a shutdown hook; hooks stop in reverse registration order.
    pub fn on_shutdown<F, Fut>(mut self, name: &'static str, hook: F) -> Self
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.lifecycle.on_shutdown(name, hook);
        self
    }

    /// The keys registered so far.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.providers.iter().map(|p| p.key)
    }

    /// Checks the whole graph, reads every configuration, then builds the singletons in
    /// dependency order.
    ///
    /// Every missing provider (with who needs it), cycle, duplicate, singleton-on-scoped
    /// dependency and configuration error is reported together in one [`BuildError::Invalid`].
    pub async fn build(self) -> Result<Container, BuildError> {
        let mut problems = Vec::new();
        let mut by_key: HashMap<Key, Provider> = HashMap::with_capacity(self.providers.len());
        let mut order: Vec<Key> = Vec::with_capacity(self.providers.len());
        for provider in self.providers {
            if let Some(provided) = provider.token_mismatch {
                problems.push(Problem::TokenMismatch {
                    token: provider.key,
                    provided,
                });
            }
            if by_key.contains_key(&provider.key) {
                problems.push(Problem::Duplicate { key: provider.key });
                continue;
            }
            order.push(provider.key);
            by_key.insert(provider.key, provider);
        }

        for key in &order {
            for dep in &by_key[key].deps {
                if !by_key.contains_key(dep) {
                    problems.push(Problem::Missing {
                        key: *dep,
                        needed_by: *key,
                    });
                }
            }
        }
        problems.extend(
            find_cycles(&order, &by_key)
                .into_iter()
                .map(|path| Problem::Cycle { path }),
        );
        if problems.iter().any(|p| matches!(p, Problem::Cycle { .. })) {
            return Err(BuildError::Invalid(problems));
        }

        // Bindings take the lifetime of what they bind, then singletons may not capture scoped.
        let topo = topological(&order, &by_key);
        for key in &topo {
            let provider = &by_key[key];
            if provider.follows_dependency {
                let lifetime = provider
                    .deps
                    .iter()
                    .filter_map(|d| by_key.get(d))
                    .map(|d| d.lifetime)
                    .max_by_key(|l| *l == Lifetime::Scoped)
                    .unwrap_or_default();
                if let Some(p) = by_key.get_mut(key) {
                    p.lifetime = lifetime;
                }
            }
        }
        for key in &order {
            let provider = &by_key[key];
            if provider.lifetime == Lifetime::Singleton {
                for dep in &provider.deps {
                    if by_key
                        .get(dep)
                        .is_some_and(|d| d.lifetime == Lifetime::Scoped)
                    {
                        problems.push(Problem::ScopedInSingleton {
                            singleton: *key,
                            scoped: *dep,
                        });
                    }
                }
            }
        }

        let env = self.env.unwrap_or_else(|| std::env::vars().collect());
        let mut singletons: HashMap<Key, Shared> = HashMap::new();
        for key in &order {
            if let Build::Config(read, _) = &by_key[key].build {
                match read(&env) {
                    Ok(value) => {
                        singletons.insert(*key, value);
                    }
                    Err(e) => problems.push(Problem::Config(e)),
                }
            }
        }
        if !problems.is_empty() {
            return Err(BuildError::Invalid(problems));
        }

        let mut scoped = HashMap::new();
        for key in topo {
            let Some(provider) = by_key.remove(&key) else {
                continue;
            };
            match (provider.build, provider.lifetime) {
                (Build::Config(..), _) => {}
                (Build::Value(value), _) => {
                    singletons.insert(key, value);
                }
                (Build::Factory(build), Lifetime::Scoped) => {
                    scoped.insert(
                        key,
                        ScopedProvider {
                            deps: provider.deps.into(),
                            build,
                        },
                    );
                }
                (Build::Factory(build), Lifetime::Singleton) => {
                    let deps: HashMap<Key, Shared> = provider
                        .deps
                        .iter()
                        .filter_map(|d| singletons.get(d).map(|s| (*d, Arc::clone(s))))
                        .collect();
                    let resolver = Resolver {
                        source: Source::Built(Arc::new(deps)),
                        requester: key,
                        allowed: provider.deps.into(),
                    };
                    let value = build(resolver)
                        .await
                        .map_err(|source| BuildError::Factory { key, source })?;
                    singletons.insert(key, value);
                }
            }
        }

        Ok(Container {
            inner: Arc::new(Inner {
                scoped,
                singletons,
                lifecycle: self.lifecycle,
            }),
        })
    }
}

/// Every elementary cycle reachable by depth-first search, each reported once.
fn find_cycles(order: &[Key], by_key: &HashMap<Key, Provider>) -> Vec<Vec<Key>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        key: Key,
        by_key: &HashMap<Key, Provider>,
        marks: &mut HashMap<Key, Mark>,
        stack: &mut Vec<Key>,
        cycles: &mut Vec<Vec<Key>>,
    ) {
        match marks.get(&key) {
            Some(Mark::Done) => return,
            Some(Mark::Visiting) => {
                if let Some(start) = stack.iter().position(|k| *k == key) {
                    let mut path = stack[start..].to_vec();
                    path.push(key);
                    cycles.push(path);
                }
                return;
            }
            None => {}
        }
        let Some(provider) = by_key.get(&key) else {
            return;
        };
        marks.insert(key, Mark::Visiting);
        stack.push(key);
        for dep in &provider.deps {
            visit(*dep, by_key, marks, stack, cycles);
        }
        stack.pop();
        marks.insert(key, Mark::Done);
    }
    let mut marks = HashMap::new();
    let mut cycles = Vec::new();
    for key in order {
        visit(*key, by_key, &mut marks, &mut Vec::new(), &mut cycles);
    }
    cycles
}

/// Keys ordered so every provider comes after its dependencies (the graph has no cycle).
fn topological(order: &[Key], by_key: &HashMap<Key, Provider>) -> Vec<Key> {
    fn visit(
        key: Key,
        by_key: &HashMap<Key, Provider>,
        seen: &mut HashSet<Key>,
        out: &mut Vec<Key>,
    ) {
        if !seen.insert(key) {
            return;
        }
        if let Some(provider) = by_key.get(&key) {
            for dep in &provider.deps {
                visit(*dep, by_key, seen, out);
            }
            out.push(key);
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(order.len());
    for key in order {
        visit(*key, by_key, &mut seen, &mut out);
    }
    out
}
