//! The OpenAPI 3.1 document, produced from the same route registrations that build the router.

use std::collections::HashMap;

use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::schema::{QueryStyle, query_style};
use jararaca_api::{ApiDescription, ErrorBody, ParamLocation, RouteMeta, TypeInfo};

/// Builds the OpenAPI 3.1 document of `api`.
pub fn document(api: &ApiDescription) -> Value {
    let info = &api.info;
    let routes = &api.routes;
    let mut generator = crate::schema::settings()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let operation_ids = operation_ids(routes);
    let mut paths = Map::new();
    for (route, operation_id) in routes.iter().zip(operation_ids) {
        let item = paths
            .entry(route.path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(
                route.method.as_str().to_ascii_lowercase(),
                operation(route, operation_id, &mut generator),
            );
        }
    }
    let mut info_json = json!({ "title": info.title, "version": info.version });
    if let Some(description) = &info.description {
        info_json["description"] = json!(description);
    }
    let responses = framework_responses(&mut generator);
    json!({
        "openapi": "3.1.0",
        "info": info_json,
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "responses": responses,
        },
    })
}

/// The answers the framework itself gives, whatever the handler: shared by every operation
/// that can get them, by reference.
const FRAMEWORK_RESPONSES: [(&str, &str, &str); 4] = [
    // Any request that declares a body larger than `--max-body-size`.
    (
        "413",
        "PayloadTooLarge",
        "The request body is larger than the server accepts",
    ),
    // A JSON body sent with another content type.
    (
        "415",
        "UnsupportedMediaType",
        "The request body is not `application/json`",
    ),
    // Any request whose parameters or body do not match their schemas.
    (
        "422",
        "ValidationError",
        "Validation Error: every invalid input, each at its location",
    ),
    // Any request whose head does not fit the server's buffer.
    (
        "431",
        "RequestHeaderFieldsTooLarge",
        "The request's headers are larger than the server accepts",
    ),
];

fn framework_responses(generator: &mut SchemaGenerator) -> Map<String, Value> {
    FRAMEWORK_RESPONSES
        .iter()
        .map(|(status, name, description)| {
            let schema = if *status == "422" {
                generator.subschema_for::<crate::error::ValidationBody>()
            } else {
                TypeInfo::of::<ErrorBody>().schema(generator)
            };
            let response = json!({
                "description": description,
                "content": { "application/json": { "schema": schema } },
            });
            ((*name).to_owned(), response)
        })
        .collect()
}

fn framework_response(status: &str) -> Value {
    let name = FRAMEWORK_RESPONSES
        .iter()
        .find(|(s, _, _)| *s == status)
        .map_or("", |(_, name, _)| name);
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// Handler names, qualified by controller only where two controllers share one.
fn operation_ids(routes: &[RouteMeta]) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for route in routes {
        *counts.entry(route.handler.as_str()).or_default() += 1;
    }
    routes
        .iter()
        .map(|r| {
            if counts[r.handler.as_str()] > 1 {
                format!("{}_{}", r.controller, r.handler)
            } else {
                r.handler.clone()
            }
        })
        .collect()
}

fn operation(route: &RouteMeta, operation_id: String, generator: &mut SchemaGenerator) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(operation_id));
    if !route.controller.is_empty() {
        op.insert("tags".into(), json!([route.controller]));
    }
    if let Some(summary) = &route.summary {
        op.insert("summary".into(), json!(summary));
    }
    let parameters = parameters(route, generator);
    let validates = !parameters.is_empty() || route.body.is_some();
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = &route.body {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "application/json": { "schema": body.schema(generator) } },
            }),
        );
    }
    let mut responses = Map::new();
    for response in &route.responses {
        let key = response
            .status
            .map_or_else(|| "default".to_owned(), |s| s.as_u16().to_string());
        let description = response
            .status
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Response");
        let mut entry = json!({ "description": description });
        if let Some(body) = &response.body {
            entry["content"] = json!({ "application/json": { "schema": body.schema(generator) } });
        } else if let Some(content_type) = response.content_type {
            entry["content"] = json!({ content_type: { "schema": { "type": "string" } } });
        }
        responses.insert(key, entry);
    }
    if responses.is_empty() {
        responses.insert("200".into(), json!({ "description": "OK" }));
    }
    let mut framework = vec!["413", "431"];
    if validates {
        framework.push("422");
    }
    if route.body.is_some() {
        framework.push("415");
    }
    for status in framework {
        responses
            .entry(status)
            .or_insert_with(|| framework_response(status));
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

/// A schema with its `$ref` followed into the generator's definitions.
fn resolved(generator: &SchemaGenerator, schema: &Schema) -> Value {
    in_definitions(generator.definitions(), schema.as_value()).clone()
}

/// `schema`, or the definition its `$ref` names.
fn in_definitions<'a>(definitions: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| definitions.get(name))
        .unwrap_or(schema)
}

fn parameters(route: &RouteMeta, generator: &mut SchemaGenerator) -> Vec<Value> {
    let path_names = route.path_param_names();
    let mut out = Vec::new();
    for params in &route.params {
        let schema = params.ty.schema(generator);
        match params.location {
            ParamLocation::Header => {
                if let Some((name, required)) = &params.header {
                    out.push(json!({
                        "name": name, "in": "header", "required": required, "schema": schema,
                    }));
                }
            }
            ParamLocation::Path => {
                let body = resolved(generator, &schema);
                if let Some(properties) = body.get("properties").and_then(Value::as_object) {
                    for name in &path_names {
                        if let Some(property) = properties.get(*name) {
                            out.push(json!({
                                "name": name, "in": "path", "required": true, "schema": property,
                            }));
                        }
                    }
                } else if let Some(items) = body.get("prefixItems").and_then(Value::as_array) {
                    for (name, item) in path_names.iter().zip(items) {
                        out.push(json!({
                            "name": name, "in": "path", "required": true, "schema": item,
                        }));
                    }
                } else if let Some(name) = path_names.first() {
                    out.push(json!({
                        "name": name, "in": "path", "required": true, "schema": schema,
                    }));
                }
            }
            ParamLocation::Query => {
                let body = resolved(generator, &schema);
                let required: Vec<&str> = body
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let definitions = generator.definitions();
                let resolve = |schema| in_definitions(definitions, schema);
                if let Some(properties) = body.get("properties").and_then(Value::as_object) {
                    for (name, property) in properties {
                        let mut parameter = json!({
                            "name": name,
                            "in": "query",
                            "required": required.contains(&name.as_str()),
                        });
                        // What holds objects or lists travels as one JSON text, which OpenAPI
                        // says with `content`; scalars and lists of them as form values.
                        if query_style(property, &resolve) == QueryStyle::Json {
                            parameter["content"] =
                                json!({ "application/json": { "schema": property } });
                        } else {
                            parameter["schema"] = property.clone();
                        }
                        out.push(parameter);
                    }
                }
            }
        }
    }
    // The generator gives its definitions the integer bounds only as they are taken out, at
    // the end; what was copied out of them, and inline schemas, get them here.
    out.into_iter().map(crate::schema::with_bounds).collect()
}
