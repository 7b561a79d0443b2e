//! The types of the client: every type reachable from the API, declared once, with property
//! names as the runtime delivers them.

use std::collections::{BTreeMap, BTreeSet};

use jararaca_api::TypeInfo;
use schemars::SchemaGenerator;
use serde_json::Value;

use crate::TsGenError;
use crate::names::{self, camel_to_snake, snake_to_camel, survives_round_trip};
use crate::syntax::{self, Decl, Member, MemberKind, Ty};

/// One named type of the client.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    rust_name: &'static str,
    docs: Option<String>,
    pub(crate) decl: Decl,
    /// Whether the client sends it (its names must survive the runtime's trip back).
    request: bool,
}

/// Collects the types of an API.
pub(crate) struct TypeSet {
    cfg: ts_rs::Config,
    by_ident: BTreeMap<String, Declared>,
    schemas: SchemaGenerator,
}

impl TypeSet {
    pub(crate) fn new() -> Self {
        Self {
            cfg: ts_rs::Config::new().with_large_int("number"),
            by_ident: BTreeMap::new(),
            schemas: SchemaGenerator::default(),
        }
    }

    /// Adds `ty` and everything it refers to; `request` when the client sends it. Returns the
    /// type expression to use for it, with its inline objects renamed as the runtime does.
    pub(crate) fn add(&mut self, ty: &TypeInfo, request: bool) -> Result<Ty, TsGenError> {
        let _ = ty.schema(&mut self.schemas);
        for found in ty.ts_types(&self.cfg) {
            let decl = syntax::parse_decl(&found.decl).map_err(|reason| TsGenError::Syntax {
                ty: found.rust_name.to_owned(),
                reason,
                text: found.decl.clone(),
            })?;
            match self.by_ident.get_mut(&found.ident) {
                Some(existing) if existing.rust_name != found.rust_name => {
                    return Err(TsGenError::DuplicateType {
                        name: found.ident,
                        first: existing.rust_name.to_owned(),
                        second: found.rust_name.to_owned(),
                    });
                }
                Some(existing) => existing.request |= request,
                None => {
                    self.by_ident.insert(
                        found.ident,
                        Declared {
                            rust_name: found.rust_name,
                            docs: found.docs,
                            decl,
                            request,
                        },
                    );
                }
            }
        }
        let name = ty.ts_name(&self.cfg);
        let mut expr = syntax::parse_type(&name).map_err(|reason| TsGenError::Syntax {
            ty: ty.rust_name().to_owned(),
            reason,
            text: name.clone(),
        })?;
        rename(&mut expr, ty.rust_name(), request, None)?;
        Ok(expr)
    }

    /// Renames every declaration's properties, marks optional ones and checks the request
    /// types; the declarations by name.
    pub(crate) fn finish(self) -> Result<Types, TsGenError> {
        let definitions = self.schemas.definitions();
        let mut out = BTreeMap::new();
        for (ident, mut declared) in self.by_ident {
            if let Decl::Alias { ty, .. } = &mut declared.decl {
                let required = required_fields(definitions, &ident, ty);
                rename(ty, declared.rust_name, declared.request, required.as_ref())?;
            }
            out.insert(ident, declared);
        }
        Ok(Types { by_ident: out })
    }
}

/// The `required` list of the JSON Schema that describes the object `ty` declares as
/// `ident`: serde-default fields are missing from it, which ts-rs cannot tell.
fn required_fields(
    definitions: &serde_json::Map<String, Value>,
    ident: &str,
    ty: &Ty,
) -> Option<BTreeSet<String>> {
    let Ty::Object(members) = ty else {
        return None;
    };
    let keys: BTreeSet<&str> = members
        .iter()
        .filter_map(|m| match &m.kind {
            MemberKind::Prop { key, .. } => Some(key.as_str()),
            MemberKind::Index { .. } => None,
        })
        .collect();
    let generic_prefix = format!("{ident}_for_");
    definitions
        .iter()
        .filter(|(name, _)| *name == ident || name.starts_with(&generic_prefix))
        .find_map(|(_, schema)| {
            let properties = schema.get("properties")?.as_object()?;
            let names: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
            if names != keys {
                return None;
            }
            Some(
                schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
}

/// Renames the properties of every object in `ty` by the runtime's rule; `Option` fields
/// (and fields the schema does not require, at the top level) become optional.
fn rename(
    ty: &mut Ty,
    rust_name: &str,
    request: bool,
    required: Option<&BTreeSet<String>>,
) -> Result<(), TsGenError> {
    // Top-level members first, while the wire names are still there.
    if let (Ty::Object(members), Some(required)) = (&mut *ty, required) {
        for member in members.iter_mut() {
            if let MemberKind::Prop { key, optional, .. } = &mut member.kind
                && !required.contains(key.as_str())
            {
                *optional = true;
            }
        }
    }
    let mut failure = None;
    ty.props_mut(&mut |key, optional, field_ty| {
        if request && failure.is_none() && !survives_round_trip(key) {
            let camel = snake_to_camel(key);
            failure = Some(TsGenError::RoundTrip {
                ty: rust_name.to_owned(),
                field: key.clone(),
                sent: camel_to_snake(&camel),
                camel,
            });
        }
        if field_ty.is_nullable() {
            *optional = true;
        }
        *key = snake_to_camel(key);
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The declared types of a client.
#[derive(Debug)]
pub(crate) struct Types {
    by_ident: BTreeMap<String, Declared>,
}

impl Types {
    /// The names of every declared type.
    pub(crate) fn idents(&self) -> impl Iterator<Item = &str> {
        self.by_ident.keys().map(String::as_str)
    }

    /// The members of the object `ty` is, or refers to by name.
    pub(crate) fn members<'a>(&'a self, ty: &'a Ty) -> Option<&'a [Member]> {
        match ty {
            Ty::Object(members) => Some(members),
            Ty::Paren(inner) => self.members(inner),
            Ty::Ref(name, _) => match &self.by_ident.get(name)?.decl {
                Decl::Alias { ty, .. } => self.members(ty),
                Decl::Enum { .. } => None,
            },
            _ => None,
        }
    }

    /// Writes every declaration, sorted by name.
    pub(crate) fn render(&self, out: &mut String) -> Result<(), TsGenError> {
        for declared in self.by_ident.values() {
            out.push('\n');
            if let Some(docs) = &declared.docs {
                syntax::write_docs(out, docs, "");
            }
            render_decl(declared, out)?;
        }
        Ok(())
    }
}

fn generics(list: &[syntax::Generic]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let params: Vec<String> = list
        .iter()
        .map(|g| {
            let mut s = g.name.clone();
            if let Some(bound) = &g.bound {
                s.push_str(" extends ");
                s.push_str(&bound.render());
            }
            if let Some(default) = &g.default {
                s.push_str(" = ");
                s.push_str(&default.render());
            }
            s
        })
        .collect();
    format!("<{}>", params.join(", "))
}

fn render_decl(declared: &Declared, out: &mut String) -> Result<(), TsGenError> {
    match &declared.decl {
        Decl::Alias {
            name,
            generics: g,
            ty,
        } => {
            if let Some(values) = string_union(ty) {
                let members: Vec<(String, String)> = values
                    .iter()
                    .map(|v| (names::constant_name(v), syntax::quote(v)))
                    .collect();
                render_const_enum(name, &members, out)
            } else if let Ty::Object(_) = ty {
                out.push_str(&format!(
                    "export interface {name}{} {}\n",
                    generics(g),
                    ty.render_block(0)
                ));
                Ok(())
            } else {
                out.push_str(&format!(
                    "export type {name}{} = {};\n",
                    generics(g),
                    ty.render_block(0)
                ));
                Ok(())
            }
        }
        Decl::Enum { name, members } => {
            let mut next = 0i64;
            let mut rendered = Vec::new();
            for (member, value) in members {
                let value = match value {
                    Some(Ty::Num(n)) => {
                        let parsed: i64 = n.parse().map_err(|_| TsGenError::Syntax {
                            ty: declared.rust_name.to_owned(),
                            reason: "an enum value that is not an integer".into(),
                            text: n.clone(),
                        })?;
                        next = parsed + 1;
                        parsed.to_string()
                    }
                    Some(Ty::Str(s)) => syntax::quote(&syntax::unquote(s)),
                    Some(other) => other.render(),
                    None => {
                        let value = next;
                        next += 1;
                        value.to_string()
                    }
                };
                rendered.push((names::constant_name(member), value));
            }
            render_const_enum(name, &rendered, out)
        }
    }
}

/// The values of a union made only of string literals.
fn string_union(ty: &Ty) -> Option<Vec<String>> {
    match ty {
        Ty::Str(s) => Some(vec![syntax::unquote(s)]),
        Ty::Union(parts) => parts
            .iter()
            .map(|p| match p {
                Ty::Str(s) => Some(syntax::unquote(s)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// `export const E = { A: "a" } as const;` and `export type E = …`: an enum that
/// `erasableSyntaxOnly` accepts, with its values as the type.
fn render_const_enum(
    name: &str,
    members: &[(String, String)],
    out: &mut String,
) -> Result<(), TsGenError> {
    let mut seen = BTreeSet::new();
    for (member, _) in members {
        if !seen.insert(member) {
            return Err(TsGenError::Name(format!(
                "enum `{name}` has two members named `{member}` in TypeScript; rename a variant"
            )));
        }
    }
    out.push_str(&format!("export const {name} = {{\n"));
    for (member, value) in members {
        out.push_str(&format!("  {member}: {value},\n"));
    }
    out.push_str("} as const;\n");
    out.push_str(&format!(
        "export type {name} = (typeof {name})[keyof typeof {name}];\n"
    ));
    Ok(())
}
