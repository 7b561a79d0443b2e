//! The part of TypeScript's type syntax that ts-rs writes (and that `#[ts(type = "…")]`
//! overrides usually use): parsed into a small tree so property keys can be renamed by the
//! runtime's rule and declarations rendered in one style.

use std::fmt::Write;

/// A type expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    /// `A | B`.
    Union(Vec<Ty>),
    /// `A & B`.
    Intersection(Vec<Ty>),
    /// `T[]`.
    Array(Box<Ty>),
    /// A name with optional type arguments: `string`, `Array<T>`, `Paginated<Task>`.
    Ref(String, Vec<Ty>),
    /// A string literal, with its quotes as written.
    Str(String),
    /// A number literal.
    Num(String),
    /// `{ a: T, b?: U }`.
    Object(Vec<Member>),
    /// `[A, B]`.
    Tuple(Vec<Ty>),
    /// `(T)`.
    Paren(Box<Ty>),
}

/// A member of an object type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    /// Its doc comment, `/** … */`.
    pub(crate) docs: Option<String>,
    /// A property or an index signature.
    pub(crate) kind: MemberKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MemberKind {
    /// `key?: ty`; `key` is the name on the wire, unquoted.
    Prop { key: String, optional: bool, ty: Ty },
    /// `[name in K]?: ty` (mapped) or `[name: K]: ty`.
    Index {
        name: String,
        mapped: bool,
        key: Ty,
        optional: bool,
        ty: Ty,
    },
}

/// A top-level declaration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decl {
    /// `type Name<G> = ty;`
    Alias {
        name: String,
        generics: Vec<Generic>,
        ty: Ty,
    },
    /// `enum Name { "A" = 1, … }` (ts-rs's `#[ts(repr(enum))]`).
    Enum {
        name: String,
        members: Vec<(String, Option<Ty>)>,
    },
}

/// A generic parameter: `T`, `T extends U`, `T = U`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Generic {
    pub(crate) name: String,
    pub(crate) bound: Option<Ty>,
    pub(crate) default: Option<Ty>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Punct(char),
    Doc(String),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let start = i;
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            if i + 1 >= chars.len() {
                return Err("unterminated comment".into());
            }
            i += 2;
            let text: String = chars[start..i].iter().collect();
            if text.starts_with("/**") {
                out.push(Tok::Doc(text));
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err("unterminated string".into());
            }
            i += 1;
            out.push(Tok::Str(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if "{}[]()<>,;:?|&=.-".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{c}`, found {}", self.found()))
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(Tok::Ident(s) | Tok::Str(s) | Tok::Num(s) | Tok::Doc(s)) => format!("`{s}`"),
            Some(Tok::Punct(c)) => format!("`{c}`"),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(format!("expected a name, found {}", self.found()))
            }
        }
    }

    fn ty(&mut self) -> Result<Ty, String> {
        self.eat('|');
        let mut parts = vec![self.intersection()?];
        while self.eat('|') {
            parts.push(self.intersection()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Ty::Union(parts)
        })
    }

    fn intersection(&mut self) -> Result<Ty, String> {
        self.eat('&');
        let mut parts = vec![self.postfix()?];
        while self.eat('&') {
            parts.push(self.postfix()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Ty::Intersection(parts)
        })
    }

    fn postfix(&mut self) -> Result<Ty, String> {
        let mut ty = self.primary()?;
        while self.peek() == Some(&Tok::Punct('['))
            && self.toks.get(self.pos + 1) == Some(&Tok::Punct(']'))
        {
            self.pos += 2;
            ty = Ty::Array(Box::new(ty));
        }
        Ok(ty)
    }

    fn primary(&mut self) -> Result<Ty, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Ty::Str(s)),
            Some(Tok::Num(n)) => Ok(Ty::Num(n)),
            Some(Tok::Punct('-')) => match self.next() {
                Some(Tok::Num(n)) => Ok(Ty::Num(format!("-{n}"))),
                _ => Err("expected a number after `-`".into()),
            },
            Some(Tok::Punct('(')) => {
                let inner = self.ty()?;
                self.expect(')')?;
                Ok(Ty::Paren(Box::new(inner)))
            }
            Some(Tok::Punct('[')) => {
                let mut items = Vec::new();
                while !self.eat(']') {
                    items.push(self.ty()?);
                    if !self.eat(',') {
                        self.expect(']')?;
                        break;
                    }
                }
                Ok(Ty::Tuple(items))
            }
            Some(Tok::Punct('{')) => self.object(),
            Some(Tok::Ident(mut name)) => {
                while self.eat('.') {
                    name.push('.');
                    name.push_str(&self.ident()?);
                }
                let mut args = Vec::new();
                if self.eat('<') {
                    loop {
                        args.push(self.ty()?);
                        if !self.eat(',') {
                            break;
                        }
                    }
                    self.expect('>')?;
                }
                Ok(Ty::Ref(name, args))
            }
            _ => {
                self.pos -= 1;
                Err(format!("expected a type, found {}", self.found()))
            }
        }
    }

    fn object(&mut self) -> Result<Ty, String> {
        let mut members = Vec::new();
        loop {
            let docs = match self.peek() {
                Some(Tok::Doc(d)) => {
                    let d = d.clone();
                    self.pos += 1;
                    Some(d)
                }
                _ => None,
            };
            if self.eat('}') {
                return Ok(Ty::Object(members));
            }
            let kind = if self.eat('[') {
                let name = self.ident()?;
                let mapped = if self.peek() == Some(&Tok::Ident("in".into())) {
                    self.pos += 1;
                    true
                } else {
                    self.expect(':')?;
                    false
                };
                let key = self.ty()?;
                self.expect(']')?;
                let optional = self.eat('?');
                self.expect(':')?;
                MemberKind::Index {
                    name,
                    mapped,
                    key,
                    optional,
                    ty: self.ty()?,
                }
            } else {
                let key = match self.next() {
                    Some(Tok::Ident(s) | Tok::Num(s)) => s,
                    Some(Tok::Str(s)) => unquote(&s),
                    _ => {
                        self.pos -= 1;
                        return Err(format!("expected a property, found {}", self.found()));
                    }
                };
                let optional = self.eat('?');
                self.expect(':')?;
                MemberKind::Prop {
                    key,
                    optional,
                    ty: self.ty()?,
                }
            };
            members.push(Member { docs, kind });
            if !self.eat(',') && !self.eat(';') {
                self.expect('}')?;
                return Ok(Ty::Object(members));
            }
        }
    }

    fn generics(&mut self) -> Result<Vec<Generic>, String> {
        let mut out = Vec::new();
        if !self.eat('<') {
            return Ok(out);
        }
        loop {
            let name = self.ident()?;
            let bound = if self.peek() == Some(&Tok::Ident("extends".into())) {
                self.pos += 1;
                Some(self.ty()?)
            } else {
                None
            };
            let default = if self.eat('=') {
                Some(self.ty()?)
            } else {
                None
            };
            out.push(Generic {
                name,
                bound,
                default,
            });
            if !self.eat(',') {
                break;
            }
        }
        self.expect('>')?;
        Ok(out)
    }

    fn end(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(format!("unexpected {}", self.found())),
        }
    }
}

/// The text of a string literal without its quotes and escapes.
pub(crate) fn unquote(s: &str) -> String {
    let inner = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses one type expression (`Array<Task>`, `string | null`).
pub(crate) fn parse_type(src: &str) -> Result<Ty, String> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
    };
    let ty = p.ty()?;
    p.end()?;
    Ok(ty)
}

/// Parses one ts-rs declaration (`type X<T> = …;`, `enum X { … }`), with an optional leading
/// `export`.
pub(crate) fn parse_decl(src: &str) -> Result<Decl, String> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
    };
    while matches!(p.peek(), Some(Tok::Doc(_))) {
        p.pos += 1;
    }
    if p.peek() == Some(&Tok::Ident("export".into())) {
        p.pos += 1;
    }
    let decl = match p.ident()?.as_str() {
        "type" => {
            let name = p.ident()?;
            let generics = p.generics()?;
            p.expect('=')?;
            let ty = p.ty()?;
            p.eat(';');
            Decl::Alias { name, generics, ty }
        }
        "enum" => {
            let name = p.ident()?;
            p.expect('{')?;
            let mut members = Vec::new();
            while !p.eat('}') {
                while matches!(p.peek(), Some(Tok::Doc(_))) {
                    p.pos += 1;
                }
                let member = match p.next() {
                    Some(Tok::Str(s)) => unquote(&s),
                    Some(Tok::Ident(s)) => s,
                    _ => return Err("expected an enum member".into()),
                };
                let value = if p.eat('=') { Some(p.primary()?) } else { None };
                members.push((member, value));
                if !p.eat(',') {
                    p.expect('}')?;
                    break;
                }
            }
            p.eat(';');
            Decl::Enum { name, members }
        }
        other => return Err(format!("expected `type` or `enum`, found `{other}`")),
    };
    p.end()?;
    Ok(decl)
}

impl Ty {
    /// Whether `null` is one of the alternatives.
    pub(crate) fn is_nullable(&self) -> bool {
        match self {
            Ty::Ref(name, args) => name == "null" && args.is_empty(),
            Ty::Union(parts) => parts.iter().any(Ty::is_nullable),
            Ty::Paren(inner) => inner.is_nullable(),
            _ => false,
        }
    }

    /// The type without its `null` alternative.
    pub(crate) fn without_null(&self) -> Ty {
        match self {
            Ty::Union(parts) => {
                let mut rest: Vec<Ty> =
                    parts.iter().filter(|t| !t.is_nullable()).cloned().collect();
                match rest.len() {
                    0 => Ty::Ref("never".into(), Vec::new()),
                    1 => rest.remove(0),
                    _ => Ty::Union(rest),
                }
            }
            other => other.clone(),
        }
    }

    /// Calls `f` on every property of every object type inside, depth first.
    pub(crate) fn props_mut(&mut self, f: &mut dyn FnMut(&mut String, &mut bool, &mut Ty)) {
        match self {
            Ty::Union(parts) | Ty::Intersection(parts) | Ty::Tuple(parts) => {
                for part in parts {
                    part.props_mut(f);
                }
            }
            Ty::Ref(_, args) => {
                for arg in args {
                    arg.props_mut(f);
                }
            }
            Ty::Array(inner) | Ty::Paren(inner) => inner.props_mut(f),
            Ty::Str(_) | Ty::Num(_) => {}
            Ty::Object(members) => {
                for member in members {
                    match &mut member.kind {
                        MemberKind::Prop { key, optional, ty } => {
                            ty.props_mut(f);
                            f(key, optional, ty);
                        }
                        MemberKind::Index { key, ty, .. } => {
                            key.props_mut(f);
                            ty.props_mut(f);
                        }
                    }
                }
            }
        }
    }

    /// Renders the type on one line.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None);
        out
    }

    /// Renders the type; objects at `indent` are written one member a line.
    pub(crate) fn render_block(&self, indent: usize) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(indent));
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>) {
        match self {
            Ty::Union(parts) => join(out, parts, " | ", indent),
            Ty::Intersection(parts) => join(out, parts, " & ", indent),
            Ty::Array(inner) => {
                let needs_parens = matches!(**inner, Ty::Union(_) | Ty::Intersection(_));
                if needs_parens {
                    out.push('(');
                }
                inner.write(out, None);
                if needs_parens {
                    out.push(')');
                }
                out.push_str("[]");
            }
            Ty::Ref(name, args) => {
                out.push_str(name);
                if !args.is_empty() {
                    out.push('<');
                    join(out, args, ", ", None);
                    out.push('>');
                }
            }
            Ty::Str(s) => {
                let _ = write!(out, "{}", quote(&unquote(s)));
            }
            Ty::Num(n) => out.push_str(n),
            Ty::Tuple(items) => {
                out.push('[');
                join(out, items, ", ", None);
                out.push(']');
            }
            Ty::Paren(inner) => {
                out.push('(');
                inner.write(out, None);
                out.push(')');
            }
            Ty::Object(members) if members.is_empty() => out.push_str("{}"),
            Ty::Object(members) => match indent {
                None => {
                    out.push_str("{ ");
                    for (i, member) in members.iter().enumerate() {
                        if i > 0 {
                            out.push_str("; ");
                        }
                        member.write(out, None);
                    }
                    out.push_str(" }");
                }
                Some(level) => {
                    out.push_str("{\n");
                    let pad = "  ".repeat(level + 1);
                    for member in members {
                        if let Some(docs) = &member.docs {
                            write_docs(out, docs, &pad);
                        }
                        out.push_str(&pad);
                        member.write(out, Some(level + 1));
                        out.push_str(";\n");
                    }
                    out.push_str(&"  ".repeat(level));
                    out.push('}');
                }
            },
        }
    }
}

impl Member {
    fn write(&self, out: &mut String, indent: Option<usize>) {
        match &self.kind {
            MemberKind::Prop { key, optional, ty } => {
                out.push_str(&property_key(key));
                if *optional {
                    out.push('?');
                }
                out.push_str(": ");
                ty.write(out, indent);
            }
            MemberKind::Index {
                name,
                mapped,
                key,
                optional,
                ty,
            } => {
                let _ = write!(
                    out,
                    "[{name}{}{}]",
                    if *mapped { " in " } else { ": " },
                    key.render()
                );
                if *optional {
                    out.push('?');
                }
                out.push_str(": ");
                ty.write(out, indent);
            }
        }
    }
}

fn join(out: &mut String, parts: &[Ty], sep: &str, indent: Option<usize>) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        part.write(out, indent);
    }
}

/// Writes a `/** … */` comment re-indented to `pad`.
pub(crate) fn write_docs(out: &mut String, docs: &str, pad: &str) {
    let body = docs
        .trim()
        .trim_start_matches("/**")
        .trim_end_matches("*/")
        .lines()
        .map(|l| l.trim().trim_start_matches('*').trim_end())
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>();
    let lines: Vec<&str> = {
        let start = body
            .iter()
            .position(|l| !l.is_empty())
            .unwrap_or(body.len());
        let end = body
            .iter()
            .rposition(|l| !l.is_empty())
            .map_or(start, |e| e + 1);
        body[start..end].to_vec()
    };
    match lines.as_slice() {
        [] => {}
        [one] => {
            let _ = writeln!(out, "{pad}/** {} */", one.replace("*/", "*\\/"));
        }
        many => {
            let _ = writeln!(out, "{pad}/**");
            for line in many {
                let line = line.replace("*/", "*\\/");
                if line.is_empty() {
                    let _ = writeln!(out, "{pad} *");
                } else {
                    let _ = writeln!(out, "{pad} * {line}");
                }
            }
            let _ = writeln!(out, "{pad} */");
        }
    }
}

/// A JSON-style double-quoted string literal.
pub(crate) fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `key` as a property name: bare when it is an identifier, quoted otherwise.
pub(crate) fn property_key(key: &str) -> String {
    if crate::names::is_identifier(key) {
        key.to_owned()
    } else {
        quote(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_rs_declarations_parse_and_render_in_one_style() {
        let decl = parse_decl(
            "type Page<T> = { \n/**\n * The items.\n */\nitems: Array<T>, \"next-cursor\"?: string | null, meta: { [key in string]?: number }, };",
        )
        .unwrap();
        let Decl::Alias { name, generics, ty } = decl else {
            panic!("an alias")
        };
        assert_eq!(name, "Page");
        assert_eq!(generics[0].name, "T");
        assert_eq!(
            ty.render_block(0),
            "{\n  /** The items. */\n  items: Array<T>;\n  \"next-cursor\"?: string | null;\n  meta: {\n    [key in string]?: number;\n  };\n}"
        );
        assert_eq!(
            parse_type("{ \"A\": { x: number } } | \"B\" | [string, Array<number>]")
                .unwrap()
                .render(),
            "{ A: { x: number } } | \"B\" | [string, Array<number>]"
        );
    }

    #[test]
    fn enums_keep_their_values() {
        let decl = parse_decl("enum Priority { \"Low\" = 1, \"High\" = 2 }").unwrap();
        assert_eq!(
            decl,
            Decl::Enum {
                name: "Priority".into(),
                members: vec![
                    ("Low".into(), Some(Ty::Num("1".into()))),
                    ("High".into(), Some(Ty::Num("2".into())))
                ]
            }
        );
    }

    #[test]
    fn nonsense_is_an_error_naming_what_was_found() {
        let err = parse_type("Array<string").unwrap_err();
        assert!(err.contains("expected `>`"), "{err}");
        assert!(parse_decl("interface X {}").is_err());
    }
}
