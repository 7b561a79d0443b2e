//! Providers: how a key gets its value, and what it needs to build it.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::{Key, ResolveError, Resolver, Token};
use crate::BoxError;

/// A provided value, type-erased. It always holds an `Arc<T>` for the key's `T`, so trait
/// objects (`Arc<dyn Repo>`) are provided like any other type.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

pub(crate) type BuildFn =
    Arc<dyn Fn(Resolver) -> BoxFuture<'static, Result<Shared, BoxError>> + Send + Sync>;

pub(crate) type ConfigFn = fn(&[(String, String)]) -> Result<Shared, crate::config::ConfigError>;

pub(crate) fn share<T: ?Sized + Send + Sync + 'static>(value: Arc<T>) -> Shared {
    Arc::new(value)
}

/// How long a provided value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifetime {
    /// One value for the whole container, built at startup (the default, as in the reference).
    #[default]
    Singleton,
    /// One value per unit of work (HTTP request, delivered message, scheduled tick), built on
    /// first use within the unit.
    Scoped,
}

pub(crate) enum Build {
    Value(Shared),
    Factory(BuildFn),
    /// Reads the configuration; names it and the variables it reads.
    Config(ConfigFn, fn() -> (&'static str, Vec<&'static str>)),
}

/// A registration: the key it provides, its lifetime, what it depends on and how it builds.
///
/// Most services register through the [`ContainerBuilder`](super::ContainerBuilder)
/// shortcuts; `Provider` is the general form, for factories that resolve tokens or decide at
/// run time which dependencies to read.
pub struct Provider {
    pub(crate) key: Key,
    pub(crate) lifetime: Lifetime,
    pub(crate) deps: Vec<Key>,
    pub(crate) build: Build,
    /// A binding takes the lifetime of what it binds, decided when the container is built.
    pub(crate) follows_dependency: bool,
    /// Set when [`Provider::named`] was given a token of another type than the provided one.
    pub(crate) token_mismatch: Option<Key>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("key", &self.key)
            .field("lifetime", &self.lifetime)
            .field("deps", &self.deps)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A ready value, provided by type.
    pub fn value<T: Send + Sync + 'static>(value: T) -> Self {
        Self::shared(Arc::new(value))
    }

    /// A ready shared value, provided by type; `T` may be a trait object.
    pub fn shared<T: ?Sized + Send + Sync + 'static>(value: Arc<T>) -> Self {
        Self {
            key: Key::of::<T>(),
            lifetime: Lifetime::Singleton,
            deps: Vec::new(),
            build: Build::Value(share(value)),
            follows_dependency: false,
            token_mismatch: None,
        }
    }

    /// A factory for `T` that declares its dependencies and reads them from the [`Resolver`].
    ///
    /// The resolver hands out only the declared keys, so the graph checked at startup is the
    /// graph the factory really uses.
    pub fn from_fn<T, F, Fut, E>(deps: impl IntoIterator<Item = Key>, factory: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Resolver) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self::from_fn_shared(deps, move |r| factory(r).map(|res| res.map(Arc::new)))
    }

    /// Like [`Provider::from_fn`], for a factory that returns an `Arc<T>`; `T` may be a trait
    /// object.
    pub fn from_fn_shared<T, F, Fut, E>(deps: impl IntoIterator<Item = Key>, factory: F) -> Self
    where
        T: ?Sized + Send + Sync + 'static,
        F: Fn(Resolver) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<T>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let build: BuildFn = Arc::new(move |r| {
            factory(r)
                .map(|res| res.map(share).map_err(Into::into))
                .boxed()
        });
        Self {
            key: Key::of::<T>(),
            lifetime: Lifetime::Singleton,
            deps: deps.into_iter().collect(),
            build: Build::Factory(build),
            follows_dependency: false,
            token_mismatch: None,
        }
    }

    /// A factory whose dependencies are its arguments: `|db: Arc<Db>, cfg: Arc<Config>| async
    /// move { Ok::<_, Infallible>(Repo::new(db, cfg)) }`.
    pub fn factory<Args, T, F>(factory: F) -> Self
    where
        F: Factory<Args, T>,
        T: Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        Self::from_fn(F::dependencies(), move |r| Arc::clone(&factory).call(r))
    }

    /// A type built by constructor injection ([`Injectable`], usually derived).
    pub fn injectable<T: Injectable>() -> Self {
        Self::from_fn(T::dependencies(), T::inject)
    }

    /// A typed configuration read from environment variables at startup (see
    /// [`config`](crate::config)).
    pub fn config<T: DeserializeOwned + Send + Sync + 'static>() -> Self {
        fn read<T: DeserializeOwned + Send + Sync + 'static>(
            vars: &[(String, String)],
        ) -> Result<Shared, crate::config::ConfigError> {
            crate::config::from_vars::<T, _>(vars.iter().cloned()).map(|v| share(Arc::new(v)))
        }
        Self {
            key: Key::of::<T>(),
            lifetime: Lifetime::Singleton,
            deps: Vec::new(),
            build: Build::Config(read::<T>, || {
                (std::any::type_name::<T>(), crate::config::variables::<T>())
            }),
            follows_dependency: false,
            token_mismatch: None,
        }
    }

    /// Exposes `C` as `I` too (a concrete type as the trait object its users ask for):
    /// `Provider::bind::<dyn Repo, PgRepo>(|r| r)`. The binding has the same lifetime as `C`.
    pub fn bind<I, C>(convert: fn(Arc<C>) -> Arc<I>) -> Self
    where
        I: ?Sized + Send + Sync + 'static,
        C: ?Sized + Send + Sync + 'static,
    {
        let mut provider = Self::from_fn_shared([Key::of::<C>()], move |r| async move {
            r.get::<C>().await.map(convert)
        });
        provider.follows_dependency = true;
        provider
    }

    /// Registers this provider under `token` instead of its type.
    ///
    /// The token must be of the type the provider builds; registering a `Token<u32>` on a
    /// `String` provider is reported by [`ContainerBuilder::build`](super::ContainerBuilder::build).
    pub fn named<T: ?Sized + 'static>(mut self, token: Token<T>) -> Self {
        if self.key != Key::of::<T>() {
            self.token_mismatch = Some(self.key);
        }
        self.key = token.key();
        self
    }

    /// Gives the provider per-unit-of-work lifetime.
    pub fn scoped(mut self) -> Self {
        self.lifetime = Lifetime::Scoped;
        self
    }

    /// The key this provider registers.
    pub fn key(&self) -> Key {
        self.key
    }

    /// What the provider needs.
    pub fn dependencies(&self) -> &[Key] {
        &self.deps
    }

    /// How long its value lives.
    pub fn lifetime(&self) -> Lifetime {
        self.lifetime
    }
}

/// A type the container builds by constructor injection.
///
/// Derive it with `#[derive(Injectable)]` from `jararaca-macros` (each `Arc<T>` field resolved
/// by type, `#[inject(token = CONST)]` by token, `#[inject(default)]` from `Default`), or
/// implement it by hand:
///
/// ```
/// use std::sync::Arc;
/// use jararaca_di::{BoxError, Injectable, Key, Resolver};
///
/// struct Db;
/// struct Repo { db: Arc<Db> }
///
/// impl Injectable for Repo {
///     fn dependencies() -> Vec<Key> { vec![Key::of::<Db>()] }
///     async fn inject(r: Resolver) -> Result<Self, BoxError> {
///         Ok(Repo { db: r.get::<Db>().await? })
///     }
/// }
/// ```
pub trait Injectable: Sized + Send + Sync + 'static {
    /// The keys [`inject`](Injectable::inject) resolves.
    fn dependencies() -> Vec<Key>;

    /// Builds the value from its dependencies.
    fn inject(resolver: Resolver) -> impl Future<Output = Result<Self, BoxError>> + Send;
}

/// A factory argument the container can supply: `Arc<T>` for any provided `T`.
pub trait Dependency: Sized + Send + 'static {
    /// The key the argument resolves.
    fn key() -> Key;

    /// Resolves the argument.
    fn resolve(resolver: &Resolver) -> impl Future<Output = Result<Self, ResolveError>> + Send;
}

impl<T: ?Sized + Send + Sync + 'static> Dependency for Arc<T> {
    fn key() -> Key {
        Key::of::<T>()
    }

    async fn resolve(resolver: &Resolver) -> Result<Self, ResolveError> {
        resolver.get::<T>().await
    }
}

/// An async function whose arguments are [`Dependency`]s and whose output is `Result<T, E>`.
///
/// Implemented for closures and functions of up to eight arguments.
pub trait Factory<Args, T>: Send + Sync + 'static {
    /// The keys of the arguments.
    fn dependencies() -> Vec<Key>;

    /// Resolves the arguments and calls the function.
    fn call(self: Arc<Self>, resolver: Resolver) -> BoxFuture<'static, Result<T, BoxError>>;
}

macro_rules! impl_factory {
    ($($arg:ident),*) => {
        impl<F, Fut, T, E, $($arg,)*> Factory<($($arg,)*), T> for F
        where
            F: Fn($($arg),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<T, E>> + Send + 'static,
            E: Into<BoxError>,
            T: Send + 'static,
            $($arg: Dependency,)*
        {
            fn dependencies() -> Vec<Key> {
                vec![$($arg::key()),*]
            }

            #[allow(non_snake_case, unused_variables)]
            fn call(self: Arc<Self>, resolver: Resolver) -> BoxFuture<'static, Result<T, BoxError>> {
                async move {
                    $(let $arg = $arg::resolve(&resolver).await?;)*
                    (self)($($arg),*).await.map_err(Into::into)
                }
                .boxed()
            }
        }
    };
}

impl_factory!();
impl_factory!(A1);
impl_factory!(A1, A2);
impl_factory!(A1, A2, A3);
impl_factory!(A1, A2, A3, A4);
impl_factory!(A1, A2, A3, A4, A5);
impl_factory!(A1, A2, A3, A4, A5, A6);
impl_factory!(A1, A2, A3, A4, A5, A6, A7);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8);
