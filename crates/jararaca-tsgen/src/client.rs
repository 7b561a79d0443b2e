//! The client: one `HttpService` class per controller, its hook bundle, the WebSocket message
//! map, and the imports and helpers they use.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use jararaca_api::{ApiDescription, ErrorBody, ParamLocation, RouteMeta, TypeInfo};

use crate::names::{self, camel_identifier, lower_first};
use crate::syntax::{MemberKind, Ty, quote};
use crate::types::{TypeSet, Types};
use crate::{Options, TsGenError};

/// Names the generated file uses itself, which no type may take.
const TAKEN: &[&str] = &[
    "Array",
    "Promise",
    "String",
    "Object",
    "JSON",
    "Record",
    "File",
    "FormData",
    "HttpService",
    "WebSocketMessageMap",
    "WebSocketMessageWrapper",
    "createClassQueryHooks",
    "createClassMutationHooks",
    "createClassInfiniteQueryHooks",
    "paginationModelByFirstArgPaginationFilter",
    "recursiveCamelToSnakeCase",
    "queryParams",
];

#[derive(Debug)]
enum Source {
    Path(String),
    Query,
    Body,
    Header(String),
}

#[derive(Debug)]
struct Param {
    name: String,
    ty: Ty,
    optional: bool,
    source: Source,
}

#[derive(Debug)]
struct Method {
    name: String,
    route: RouteMeta,
    params: Vec<Param>,
    returns: Ty,
    text: bool,
}

#[derive(Debug, Default)]
struct Uses {
    http_service: bool,
    query_hooks: bool,
    mutation_hooks: bool,
    infinite_hooks: bool,
    query_params: bool,
}

fn route_error(route: &RouteMeta, reason: impl Into<String>) -> TsGenError {
    TsGenError::Route {
        method: route.method.to_string(),
        path: route.path.clone(),
        handler: route.handler.clone(),
        reason: reason.into(),
    }
}

/// `/tasks/{id}` → `/tasks/:id`, under `prefix`.
fn client_path(prefix: &str, path: &str) -> String {
    let converted: Vec<String> = path
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!(":{}", name.trim_start_matches('*')),
                None => segment.to_owned(),
            },
        )
        .collect();
    let path = converted.join("/");
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        path
    } else if path == "/" {
        prefix.to_owned()
    } else {
        format!("{prefix}{path}")
    }
}

/// The success body of a route: its type, and whether it is text.
fn success(route: &RouteMeta) -> (Option<TypeInfo>, bool) {
    let error_body = std::any::type_name::<ErrorBody>();
    let ok = route
        .responses
        .iter()
        .filter(|r| r.status.is_some_and(|s| s.is_success()));
    for r in ok.clone() {
        if let Some(body) = r.body {
            return (Some(body), false);
        }
    }
    if ok
        .clone()
        .any(|r| r.content_type.is_some_and(|c| c.starts_with("text/")))
    {
        return (None, true);
    }
    // A status chosen at run time: the documented body that is not the error body.
    if ok.clone().next().is_none()
        && let Some(body) = route
            .responses
            .iter()
            .filter(|r| r.status.is_none())
            .find_map(|r| r.body.filter(|b| b.rust_name() != error_body))
    {
        return (Some(body), false);
    }
    (None, false)
}

fn is_optional_object(types: &Types, ty: &Ty) -> bool {
    types.members(ty).is_some_and(|members| {
        members.iter().all(|m| match &m.kind {
            MemberKind::Prop { optional, .. } => *optional,
            MemberKind::Index { .. } => true,
        })
    })
}

struct Pending {
    route: RouteMeta,
    path: Option<Ty>,
    queries: Vec<Ty>,
    headers: Vec<(String, bool, Ty)>,
    body: Option<Ty>,
    returns: Option<Ty>,
    text: bool,
}

fn collect(api: &ApiDescription, set: &mut TypeSet) -> Result<Vec<Pending>, TsGenError> {
    let mut pending = Vec::new();
    for route in &api.routes {
        let mut path = None;
        let mut queries = Vec::new();
        let mut headers = Vec::new();
        for params in &route.params {
            let ty = set.add(&params.ty, true)?;
            match params.location {
                ParamLocation::Path if path.is_some() => {
                    return Err(route_error(route, "more than one `Path<…>` extractor"));
                }
                ParamLocation::Path => path = Some(ty),
                ParamLocation::Query => queries.push(ty),
                ParamLocation::Header => {
                    let (name, required) = params.header.clone().ok_or_else(|| {
                        route_error(route, "a header parameter without a header name")
                    })?;
                    headers.push((name.into_owned(), required, ty.without_null()));
                }
            }
        }
        let body = route.body.map(|b| set.add(&b, true)).transpose()?;
        let (returns, text) = success(route);
        let returns = returns.map(|r| set.add(&r, false)).transpose()?;
        pending.push(Pending {
            route: route.clone(),
            path,
            queries,
            headers,
            body,
            returns,
            text,
        });
    }
    Ok(pending)
}

/// The path parameters by name, from a scalar, a tuple or a struct.
fn path_params(p: &Pending, types: &Types) -> Result<Vec<(String, Ty)>, TsGenError> {
    let names = p.route.path_param_names();
    let ty = match (&p.path, names.is_empty()) {
        (None, true) => return Ok(Vec::new()),
        (None, false) => {
            return Err(route_error(
                &p.route,
                "the path has parameters but the handler reads none (take a `Path<…>`)",
            ));
        }
        (Some(_), true) => {
            return Err(route_error(
                &p.route,
                "the handler reads a `Path<…>` but the path has no `{parameter}`",
            ));
        }
        (Some(ty), false) => ty,
    };
    if let Ty::Tuple(items) = ty {
        if items.len() != names.len() {
            return Err(route_error(
                &p.route,
                format!(
                    "the path has {} parameters but `Path<…>` gives {}",
                    names.len(),
                    items.len()
                ),
            ));
        }
        return Ok(names
            .iter()
            .map(|n| n.to_string())
            .zip(items.iter().cloned())
            .collect());
    }
    if let Some(members) = types.members(ty) {
        let fields: Option<Vec<(String, Ty)>> = names
            .iter()
            .map(|name| {
                let camel = names::snake_to_camel(name);
                members.iter().find_map(|m| match &m.kind {
                    MemberKind::Prop { key, ty, .. } if *key == camel => {
                        Some((name.to_string(), ty.clone()))
                    }
                    _ => None,
                })
            })
            .collect();
        if let Some(fields) = fields {
            return Ok(fields);
        }
    }
    if names.len() == 1 {
        return Ok(vec![(names[0].to_owned(), ty.clone())]);
    }
    Err(route_error(
        &p.route,
        format!(
            "the path has {} parameters but `Path<…>` gives `{}`: take a tuple or a struct with one field per parameter",
            names.len(),
            ty.render()
        ),
    ))
}

fn build_method(p: &Pending, types: &Types) -> Result<Method, TsGenError> {
    let route = &p.route;
    let mut params = Vec::new();
    for (wire, ty) in path_params(p, types)? {
        params.push(Param {
            name: camel_identifier(&wire),
            ty,
            optional: false,
            source: Source::Path(wire),
        });
    }
    for (i, ty) in p.queries.iter().enumerate() {
        let optional = is_optional_object(types, ty);
        params.push(Param {
            name: if i == 0 {
                "query".into()
            } else {
                format!("query{}", i + 1)
            },
            ty: ty.clone(),
            optional,
            source: Source::Query,
        });
    }
    if let Some(body) = &p.body {
        params.push(Param {
            name: "body".into(),
            ty: body.clone(),
            optional: false,
            source: Source::Body,
        });
    }
    for (wire, required, ty) in &p.headers {
        params.push(Param {
            name: camel_identifier(wire),
            ty: ty.clone(),
            optional: !*required,
            source: Source::Header(wire.clone()),
        });
    }
    // Optional parameters go last, and a sole parameter is never optional: the hooks pass
    // a lone argument bare.
    params.sort_by_key(|p| p.optional);
    if route.hooks.infinite_query {
        let first = params
            .iter()
            .position(|p| matches!(p.source, Source::Query))
            .ok_or_else(|| {
                route_error(
                    route,
                    "an infinite query must take a `Query<…>` with `page` and `page_size` (a `PaginatedFilter`)",
                )
            })?;
        let has_paging = types.members(&params[first].ty).is_some_and(|members| {
            ["page", "pageSize"].iter().all(|field| {
                members
                    .iter()
                    .any(|m| matches!(&m.kind, MemberKind::Prop { key, .. } if key == field))
            })
        });
        if !has_paging {
            return Err(route_error(
                route,
                "an infinite query's `Query<…>` must have `page` and `page_size` fields",
            ));
        }
        // The infinite-query hook pages through the first argument.
        let mut query = params.remove(first);
        query.optional = false;
        params.insert(0, query);
    }
    if params.len() == 1 {
        params[0].optional = false;
    }
    // Parameter names are unique.
    let mut seen = BTreeSet::new();
    for param in &mut params {
        while !seen.insert(param.name.clone()) {
            param.name.push('_');
        }
    }
    let returns = match (&p.returns, p.text) {
        (Some(ty), _) => ty.clone(),
        (None, true) => Ty::Ref("string".into(), Vec::new()),
        (None, false) => Ty::Ref("void".into(), Vec::new()),
    };
    // The infinite-query hook stops paging when a page has fewer than `pageSize` items.
    let paged = types.members(&returns).is_some_and(|members| {
        ["items", "total"].iter().all(|field| {
            members
                .iter()
                .any(|m| matches!(&m.kind, MemberKind::Prop { key, .. } if key == field))
        })
    });
    if route.hooks.infinite_query && !paged {
        return Err(route_error(
            route,
            "an infinite query must return a page with `items` and `total` (a `Paginated<…>`)",
        ));
    }
    Ok(Method {
        name: method_name(&route.handler),
        route: route.clone(),
        params,
        returns,
        text: p.text,
    })
}

/// A route's method name: camelCase, which may be a reserved word (`delete`) but not the
/// names a class gives its constructor and backend.
fn method_name(handler: &str) -> String {
    let name = camel_identifier(handler);
    let name = name
        .strip_suffix('_')
        .filter(|n| names::is_reserved(n))
        .map_or(name.clone(), str::to_owned);
    match name.as_str() {
        "constructor" | "httpBackend" => name + "_",
        _ => name,
    }
}

fn render_method(method: &Method, prefix: &str, uses: &mut Uses, out: &mut String) {
    let signature: Vec<String> = method
        .params
        .iter()
        .map(|p| {
            format!(
                "{}{}: {}",
                p.name,
                if p.optional { "?" } else { "" },
                p.ty.render()
            )
        })
        .collect();
    let returns = method.returns.render();
    if let Some(summary) = &method.route.summary {
        crate::syntax::write_docs(out, &format!("/** {summary} */"), "  ");
    }
    let _ = writeln!(
        out,
        "  async {}({}): Promise<{returns}> {{",
        method.name,
        signature.join(", ")
    );
    let _ = writeln!(
        out,
        "    return await this.httpBackend.request<{returns}>({{"
    );
    let _ = writeln!(
        out,
        "      method: {},",
        quote(method.route.method.as_str())
    );
    let _ = writeln!(
        out,
        "      path: {},",
        quote(&client_path(prefix, &method.route.path))
    );
    // Longest first: the runtime replaces the first `:name` it finds, and `:id` is a prefix
    // of `:id_2`.
    let mut path: Vec<(&str, &str)> = method
        .params
        .iter()
        .filter_map(|p| match &p.source {
            Source::Path(wire) => Some((wire.as_str(), p.name.as_str())),
            _ => None,
        })
        .collect();
    path.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
    let path: Vec<String> = path
        .iter()
        .map(|(wire, name)| format!("{}: {name}", quote(wire)))
        .collect();
    let _ = writeln!(out, "      pathParams: {{{}}},", spaced(&path));
    let headers: Vec<String> = method
        .params
        .iter()
        .filter_map(|p| match &p.source {
            Source::Header(wire) if p.optional => Some(format!(
                "...({name} === undefined || {name} === null ? {{}} : {{ {}: String({name}) }})",
                quote(wire),
                name = p.name
            )),
            Source::Header(wire) => Some(format!("{}: String({})", quote(wire), p.name)),
            _ => None,
        })
        .collect();
    let _ = writeln!(out, "      headers: {{{}}},", spaced(&headers));
    let queries: Vec<&str> = method
        .params
        .iter()
        .filter(|p| matches!(p.source, Source::Query))
        .map(|p| p.name.as_str())
        .collect();
    if queries.is_empty() {
        let _ = writeln!(out, "      query: {{}},");
    } else {
        uses.query_params = true;
        let _ = writeln!(out, "      query: queryParams({}),", queries.join(", "));
    }
    match method
        .params
        .iter()
        .find(|p| matches!(p.source, Source::Body))
    {
        Some(body) => {
            let _ = writeln!(out, "      body: {},", body.name);
        }
        None => {
            let _ = writeln!(out, "      body: undefined,");
        }
    }
    if method.text {
        let _ = writeln!(out, "      responseType: \"text\",");
    }
    let _ = writeln!(out, "    }});");
    let _ = writeln!(out, "  }}");
}

fn spaced(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" {} ", items.join(", "))
    }
}

fn render_hooks(class: &str, methods: &[Method], uses: &mut Uses, out: &mut String) {
    let queries: Vec<String> = methods
        .iter()
        .filter(|m| m.route.hooks.query)
        .map(|m| quote(&m.name))
        .collect();
    let infinite: Vec<String> = methods
        .iter()
        .filter(|m| m.route.hooks.infinite_query)
        .map(|m| {
            format!(
                "{}: paginationModelByFirstArgPaginationFilter()",
                quote(&m.name)
            )
        })
        .collect();
    let mutations: Vec<String> = methods
        .iter()
        .filter(|m| m.route.hooks.mutation)
        .map(|m| quote(&m.name))
        .collect();
    if queries.is_empty() && infinite.is_empty() && mutations.is_empty() {
        return;
    }
    // A method with both a query and a mutation hook would give two `use<Name>`: the
    // bundle is then split by kind, as the reference does.
    let nested = methods
        .iter()
        .any(|m| m.route.hooks.mutation && (m.route.hooks.query || m.route.hooks.infinite_query));
    let _ = writeln!(out, "\nexport const {} = {{", lower_first(class));
    let mut section = |key: &str, call: String| {
        if nested {
            let _ = writeln!(out, "  {key}: {{\n    ...{call},\n  }},");
        } else {
            let _ = writeln!(out, "  ...{call},");
        }
    };
    if !queries.is_empty() {
        uses.query_hooks = true;
        section(
            "queries",
            format!("createClassQueryHooks({class}, {})", queries.join(", ")),
        );
    }
    if !infinite.is_empty() {
        uses.infinite_hooks = true;
        section(
            "infiniteQueries",
            format!(
                "createClassInfiniteQueryHooks({class}, {{ {} }})",
                infinite.join(", ")
            ),
        );
    }
    if !mutations.is_empty() {
        uses.mutation_hooks = true;
        section(
            "mutations",
            format!(
                "createClassMutationHooks({class}, {})",
                mutations.join(", ")
            ),
        );
    }
    let _ = writeln!(out, "}};");
}

const QUERY_PARAMS: &str = r#"
/** The query string of a request: names as the server reads them, nested values as JSON. */
function queryParams(...parts: Array<object | undefined>): { [key: string]: unknown } {
  const query: { [key: string]: unknown } = {};
  for (const part of parts) {
    if (part === undefined) {
      continue;
    }
    const snake: { [key: string]: unknown } = recursiveCamelToSnakeCase(part);
    for (const [key, value] of Object.entries(snake)) {
      if (value === undefined || value === null) {
        continue;
      }
      const nested = typeof value === "object" && (!Array.isArray(value) || value.some((item) => typeof item === "object" && item !== null));
      query[key] = nested ? JSON.stringify(value) : value;
    }
  }
  return query;
}
"#;

/// Generates the whole file.
pub(crate) fn generate(api: &ApiDescription, options: &Options) -> Result<String, TsGenError> {
    let mut set = TypeSet::new();
    // WebSocket messages, by id.
    let mut messages: BTreeMap<String, (Ty, &'static str)> = BTreeMap::new();
    for message in &api.websocket_messages {
        let ty = set.add(&message.ty, false)?;
        match messages.get(&message.id) {
            Some((_, rust)) if *rust != message.ty.rust_name() => {
                return Err(TsGenError::DuplicateMessage {
                    id: message.id.clone(),
                    first: rust.to_string(),
                    second: message.ty.rust_name().to_owned(),
                });
            }
            _ => {
                messages.insert(message.id.clone(), (ty, message.ty.rust_name()));
            }
        }
    }
    for exposed in &api.exposed_types {
        set.add(exposed, false)?;
    }
    let pending = collect(api, &mut set)?;
    let types = set.finish()?;

    // Controllers, by name; methods by name.
    let mut controllers: BTreeMap<String, Vec<Method>> = BTreeMap::new();
    for p in &pending {
        let method = build_method(p, &types)?;
        controllers
            .entry(p.route.controller.clone())
            .or_default()
            .push(method);
    }
    for (class, methods) in &mut controllers {
        if !names::is_identifier(class) || names::is_reserved(class) {
            return Err(TsGenError::Name(format!(
                "controller `{class}` cannot name a TypeScript class: name it like `TasksController`"
            )));
        }
        methods.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in methods.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(TsGenError::Name(format!(
                    "`{class}` has two routes named `{}` in TypeScript ({} {} and {} {}): give one another name with `.name(\"…\")`",
                    pair[0].name,
                    pair[0].route.method,
                    pair[0].route.path,
                    pair[1].route.method,
                    pair[1].route.path
                )));
            }
        }
    }
    let mut taken: BTreeSet<String> = TAKEN.iter().map(|s| s.to_string()).collect();
    for class in controllers.keys() {
        taken.insert(class.clone());
        taken.insert(lower_first(class));
    }
    for ident in types.idents() {
        if taken.contains(ident) {
            return Err(TsGenError::Name(format!(
                "type `{ident}` has a name the client needs for itself; rename it with `#[ts(rename = \"…\")]`"
            )));
        }
    }

    let mut uses = Uses::default();
    let mut body = String::new();
    // The message map and its wrapper.
    if !messages.is_empty() {
        body.push_str(
            "\n/** Every message the server pushes over WebSocket, by `MESSAGE_ID`. */\n",
        );
        body.push_str("export type WebSocketMessageMap = {\n");
        for (id, (ty, _)) in &messages {
            let _ = writeln!(body, "  {}: {};", quote(id), ty.render());
        }
        body.push_str("};\n");
        body.push_str(
            "\n/** A WebSocket frame as the server sends it. */\nexport interface WebSocketMessageWrapper<INHERITS_WS_MESSAGE> {\n  MESSAGE_ID: string;\n  message: INHERITS_WS_MESSAGE;\n}\n",
        );
    }
    types.render(&mut body)?;
    for (class, methods) in &controllers {
        uses.http_service = true;
        let _ = writeln!(body, "\nexport class {class} extends HttpService {{");
        for (i, method) in methods.iter().enumerate() {
            if i > 0 {
                body.push('\n');
            }
            render_method(method, &options.prefix, &mut uses, &mut body);
        }
        body.push_str("}\n");
        render_hooks(class, methods, &mut uses, &mut body);
    }

    let mut out = String::new();
    out.push_str("/* eslint-disable */\n");
    out.push_str(
        "// Generated by jararaca-tsgen from the service's API description: do not edit.\n",
    );
    let mut values = Vec::new();
    if uses.http_service {
        values.push("HttpService");
    }
    if uses.infinite_hooks {
        values.push("createClassInfiniteQueryHooks");
    }
    if uses.mutation_hooks {
        values.push("createClassMutationHooks");
    }
    if uses.query_hooks {
        values.push("createClassQueryHooks");
    }
    if uses.infinite_hooks {
        values.push("paginationModelByFirstArgPaginationFilter");
    }
    if uses.query_params {
        values.push("recursiveCamelToSnakeCase");
    }
    if !values.is_empty() {
        let _ = writeln!(
            out,
            "\nimport {{ {} }} from \"@jararaca/core\";",
            values.join(", ")
        );
    }
    if uses.query_params {
        out.push_str(QUERY_PARAMS);
    }
    out.push_str(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_use_the_runtimes_syntax_under_the_prefix() {
        assert_eq!(client_path("", "/tasks/{id}"), "/tasks/:id");
        assert_eq!(client_path("/api/", "/tasks/{id}/x"), "/api/tasks/:id/x");
        assert_eq!(client_path("/api", "/"), "/api");
        assert_eq!(client_path("", "/files/{*rest}"), "/files/:rest");
    }
}
