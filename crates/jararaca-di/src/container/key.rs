//! Keys under which providers are registered: a type, or a type plus a name (`Token<T>`).

use std::any::{TypeId, type_name};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// The identity of a provider: the type it provides and, for tokens, a name.
///
/// Two keys are equal when both the type and the name are equal, so one type can be provided
/// several times under different [`Token`]s (two database pools, say) and once by type.
#[derive(Clone, Copy)]
pub struct Key {
    type_id: TypeId,
    type_name: &'static str,
    name: Option<&'static str>,
}

impl Key {
    /// The key of `T` provided by type.
    pub fn of<T: ?Sized + 'static>() -> Self {
        Self {
            type_id: TypeId::of::<T>(),
            type_name: type_name::<T>(),
            name: None,
        }
    }

    /// The key of `T` provided under `name`.
    pub fn named<T: ?Sized + 'static>(name: &'static str) -> Self {
        Self {
            name: Some(name),
            ..Self::of::<T>()
        }
    }

    /// The full Rust name of the provided type.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The token name, when the key is a [`Token`].
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.type_id == other.type_id && self.name == other.name
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.type_id.hash(state);
        self.name.hash(state);
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => write!(f, "Token<{}>(\"{name}\")", self.type_name),
            None => f.write_str(self.type_name),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A named key for a value of type `T`, for when one type is provided more than once.
///
/// Tokens are constants: declare them once and use them to register and to resolve.
///
/// ```
/// use jararaca_di::Token;
///
/// pub const READ_REPLICA_URL: Token<String> = Token::new("READ_REPLICA_URL");
/// assert_eq!(READ_REPLICA_URL.name(), "READ_REPLICA_URL");
/// ```
pub struct Token<T: ?Sized> {
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T: ?Sized + 'static> Token<T> {
    /// A token named `name`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _type: PhantomData,
        }
    }

    /// The token's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The key this token registers and resolves under.
    pub fn key(&self) -> Key {
        Key::named::<T>(self.name)
    }
}

impl<T: ?Sized> Clone for Token<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Token<T> {}

impl<T: ?Sized> PartialEq for Token<T> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl<T: ?Sized> Eq for Token<T> {}

impl<T: ?Sized> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token<{}>(\"{}\")", type_name::<T>(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_types_are_distinct_keys() {
        const A: Token<String> = Token::new("a");
        const B: Token<String> = Token::new("b");
        assert_eq!(A.key(), Token::<String>::new("a").key());
        assert_ne!(A.key(), B.key());
        assert_ne!(A.key(), Key::of::<String>());
        assert_ne!(Key::named::<u32>("a"), A.key());
        assert_eq!(A.key().to_string(), "Token<alloc::string::String>(\"a\")");
    }
}
