//! [`TypeInfo`]: a Rust type of the API with its JSON Schema and its TypeScript.

use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use ts_rs::TS;
/// A Rust type that appears in the API, with the means to describe it as JSON Schema and as
/// TypeScript.
#[derive(Clone, Copy)]
pub struct TypeInfo {
    rust_name: fn() -> &'static str,
    schema: fn(&mut SchemaGenerator) -> Schema,
    ts_name: fn(&ts_rs::Config) -> String,
    ts_types: fn(&ts_rs::Config, &mut TsCollector),
}

/// The TypeScript declaration of one named type, as ts-rs writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsDeclaration {
    /// Its TypeScript name without generics (`Paginated`).
    pub ident: String,
    /// The Rust type it is declared from, generics erased (for telling apart two types that
    /// would have the same TypeScript name).
    pub rust_name: &'static str,
    /// The declaration: `type Paginated<T> = { … };` or `enum Priority { … }`.
    pub decl: String,
    /// The type's doc comment, if any.
    pub docs: Option<String>,
}

/// Collects declarations while walking types; `seen` holds every full type already walked so
/// that recursive types terminate and every instantiation still reveals its arguments.
#[derive(Debug, Default)]
pub(crate) struct TsCollector {
    seen: std::collections::BTreeSet<&'static str>,
    declarations: BTreeMap<&'static str, TsDeclaration>,
}

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str((self.rust_name)())
    }
}

impl TypeInfo {
    /// The description of `T`.
    pub fn of<T: JsonSchema + TS + 'static>() -> Self {
        Self {
            rust_name: std::any::type_name::<T>,
            schema: |generator| generator.subschema_for::<T>(),
            ts_name: |cfg| T::name(cfg),
            ts_types: collect_types::<T>,
        }
    }

    /// The Rust type's full name.
    pub fn rust_name(&self) -> &'static str {
        (self.rust_name)()
    }

    /// Its JSON Schema (a `$ref` into the generator's definitions for named types).
    pub fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.schema)(generator)
    }

    /// Its TypeScript type expression, e.g. `Array<Task>`.
    pub fn ts_name(&self, cfg: &ts_rs::Config) -> String {
        (self.ts_name)(cfg)
    }

    /// Adds the TypeScript declarations of the type and everything it refers to, by name.
    pub fn ts_declarations(&self, cfg: &ts_rs::Config, out: &mut BTreeMap<String, String>) {
        for declaration in self.ts_types(cfg) {
            out.entry(declaration.ident).or_insert(declaration.decl);
        }
    }
}

impl TypeInfo {
    /// The declarations of every named type this type refers to (itself included), each
    /// once, keyed by the Rust type it is declared from: unlike
    /// [`ts_declarations`](Self::ts_declarations), two types with the same TypeScript name
    /// stay apart, and every instantiation of a generic type is walked.
    pub fn ts_types(&self, cfg: &ts_rs::Config) -> Vec<TsDeclaration> {
        let mut collector = TsCollector::default();
        (self.ts_types)(cfg, &mut collector);
        collector.declarations.into_values().collect()
    }
}

fn collect_types<T: TS + 'static + ?Sized>(cfg: &ts_rs::Config, out: &mut TsCollector) {
    struct Visitor<'a> {
        cfg: &'a ts_rs::Config,
        out: &'a mut TsCollector,
    }
    impl ts_rs::TypeVisitor for Visitor<'_> {
        fn visit<U: TS + 'static + ?Sized>(&mut self) {
            collect_types::<U>(self.cfg, self.out);
        }
    }
    if !out.seen.insert(std::any::type_name::<T>()) {
        return;
    }
    if T::output_path().is_some() {
        let rust_name = std::any::type_name::<T::WithoutGenerics>();
        out.declarations
            .entry(rust_name)
            .or_insert_with(|| TsDeclaration {
                ident: <T::WithoutGenerics as TS>::ident(cfg),
                rust_name,
                decl: <T::WithoutGenerics as TS>::decl(cfg),
                docs: <T::WithoutGenerics as TS>::docs(),
            });
    }
    let mut visitor = Visitor { cfg, out };
    T::visit_dependencies(&mut visitor);
    T::visit_generics(&mut visitor);
}

#[cfg(test)]
#[allow(dead_code)]
mod tests {
    use super::*;

    #[derive(JsonSchema, TS)]
    struct Page<T> {
        items: Vec<T>,
    }

    #[derive(JsonSchema, TS)]
    struct A {
        b: Page<B>,
        c: Page<C>,
        next: Option<Box<A>>,
    }

    #[derive(JsonSchema, TS)]
    struct B;

    #[derive(JsonSchema, TS)]
    struct C;

    #[test]
    fn every_instantiation_and_recursive_type_is_walked_once() {
        let found = TypeInfo::of::<Option<Vec<A>>>().ts_types(&ts_rs::Config::default());
        let mut idents: Vec<&str> = found.iter().map(|d| d.ident.as_str()).collect();
        idents.sort();
        assert_eq!(idents, ["A", "B", "C", "Page"]);
        let mut by_name = BTreeMap::new();
        TypeInfo::of::<A>().ts_declarations(&ts_rs::Config::default(), &mut by_name);
        assert!(by_name.contains_key("C"), "{by_name:?}");
    }
}
