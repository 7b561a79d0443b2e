use std::fmt;

use super::Key;
use crate::BoxError;
use crate::config::ConfigError;

/// One thing wrong with the provider graph, found when the container is built.
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// `needed_by` depends on `key`, and nothing provides it.
    Missing {
        /// The key nobody provides.
        key: Key,
        /// The provider that needs it.
        needed_by: Key,
    },
    /// Providers depend on each other in a loop; the path starts and ends with the same key.
    Cycle {
        /// The keys of the cycle, in dependency order.
        path: Vec<Key>,
    },
    /// A singleton depends on a scoped value, which would outlive its unit of work.
    ScopedInSingleton {
        /// The singleton.
        singleton: Key,
        /// The scoped value it asks for.
        scoped: Key,
    },
    /// The same key is registered twice.
    Duplicate {
        /// The key.
        key: Key,
    },
    /// A token of one type names a provider of another.
    TokenMismatch {
        /// The token's key.
        token: Key,
        /// What the provider builds.
        provided: Key,
    },
    /// A typed configuration could not be read from the environment.
    Config(ConfigError),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { key, needed_by } => write!(
                f,
                "no provider for `{key}`, needed by `{needed_by}`: register it on the ContainerBuilder"
            ),
            Self::Cycle { path } => {
                f.write_str("dependency cycle: ")?;
                for (i, key) in path.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" -> ")?;
                    }
                    write!(f, "`{key}`")?;
                }
                Ok(())
            }
            Self::ScopedInSingleton { singleton, scoped } => write!(
                f,
                "singleton `{singleton}` depends on scoped `{scoped}`: make `{singleton}` scoped too"
            ),
            Self::Duplicate { key } => write!(f, "`{key}` is registered more than once"),
            Self::TokenMismatch { token, provided } => write!(
                f,
                "token `{token}` names a provider of another type, `{provided}`"
            ),
            Self::Config(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// Why the container could not be built: every problem of the graph at once, or the factory
/// that failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The provider graph is incomplete or inconsistent.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
    /// A singleton factory returned an error at startup.
    #[error("building `{key}` failed: {source}")]
    Factory {
        /// The provider whose factory failed.
        key: Key,
        /// The factory's error.
        #[source]
        source: BoxError,
    },
}

impl BuildError {
    /// The graph problems, empty for a factory failure.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            Self::Factory { .. } => &[],
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the container cannot be built ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Why a value could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// Nothing provides the key.
    #[error("no provider for `{0}`: register it on the ContainerBuilder")]
    NotProvided(Key),
    /// The key is scoped and was asked for outside a unit of work.
    #[error("`{0}` is scoped to a unit of work: resolve it through the unit's Scope")]
    ScopedOutsideUnit(Key),
    /// A factory asked for a key it did not declare.
    #[error("`{requester}` resolved `{key}` without declaring it as a dependency")]
    Undeclared {
        /// What was asked for.
        key: Key,
        /// The provider that asked.
        requester: Key,
    },
    /// A scoped factory failed.
    #[error("building `{key}` failed: {source}")]
    Factory {
        /// The provider whose factory failed.
        key: Key,
        /// The factory's error.
        #[source]
        source: BoxError,
    },
}
