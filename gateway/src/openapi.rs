//! `/openapi.json` and `/docs`: the REST API described from the same descriptors and
//! `google.api.http` rules the routes are built from, so the document cannot drift from the edge.
//!
//! The document is OpenAPI 3.1: one operation per binding (additional bindings included), the
//! proto comments as summaries and descriptions, path and query parameters from the template and
//! the request message, request and response bodies as JSON Schemas following the proto3 JSON
//! mapping, `google.rpc.Status` as the error body, and the bearer scheme on every method that
//! needs a signed-in caller. `/docs` is a self-contained page (no CDN, nothing fetched but the
//! document itself) that renders it.

use std::sync::Arc;

use axum::{
    Router,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, header::CONTENT_TYPE};
use prost_reflect::{DescriptorPool, Kind};
use serde_json::{Map, Value, json};

use crate::{
    auth::{Rule, rule_of},
    rules::Binding,
};
use agora_platform::access::Access;

mod comments;
mod parameters;
mod schema;

use comments::Comments;
use parameters::{field_at, query_parameters};
pub(crate) use parameters::{openapi_path, parameter_name};
use schema::{Schemas, describe, reference};

/// The name of the error schema.
const STATUS: &str = "google.rpc.Status";
/// How deep query parameters follow nested messages (`filter.price.min`).
const QUERY_DEPTH: usize = 3;

/// Builds the document for `bindings`, with the comments and schemas of `pool`.
pub fn document(pool: &DescriptorPool, bindings: &[Binding]) -> Value {
    let comments = Comments::new(pool);
    let mut schemas = Schemas::new(&comments);
    let mut paths: Map<String, Value> = Map::new();
    let mut tags: Vec<(String, String)> = Vec::new();
    let mut operation_ids: std::collections::HashSet<String> = Default::default();
    for binding in bindings {
        let service = binding.method.parent_service();
        if !tags.iter().any(|(name, _)| name == service.full_name()) {
            let text = comments
                .of(&service.parent_file(), service.path())
                .unwrap_or_default();
            tags.push((service.full_name().to_owned(), text.to_owned()));
        }
        let (path, variables) = openapi_path(&binding.template.to_string());
        let mut id = format!("{}_{}", service.name(), binding.method.name());
        let mut n = 1;
        while !operation_ids.insert(id.clone()) {
            n += 1;
            id = format!("{}_{}{n}", service.name(), binding.method.name());
        }
        let operation = operation(&mut schemas, &comments, binding, &variables, id);
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[binding.http_method.as_str().to_ascii_lowercase()] = operation;
    }
    let mut components = schemas.components;
    components.insert(STATUS.into(), status_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Agora API",
            "version": "v1",
            "description": "The REST face of Agora's gRPC services, generated from their contracts. \
                JSON follows the proto3 JSON mapping: 64-bit integers are strings, enums are names, \
                times are RFC 3339. Errors are google.rpc.Status objects.",
        },
        "servers": [{ "url": "/" }],
        "tags": tags.into_iter().map(|(name, description)| {
            let mut tag = json!({ "name": name });
            describe(&mut tag, &description);
            tag
        }).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from `POST /v1/auth/login`, sent as `Authorization: Bearer <token>`.",
                }
            }
        },
    })
}
fn operation(
    schemas: &mut Schemas<'_>,
    comments: &Comments,
    binding: &Binding,
    variables: &[String],
    operation_id: String,
) -> Value {
    let method = &binding.method;
    let input = method.input();
    let text = comments
        .of(&method.parent_file(), method.path())
        .unwrap_or_default();
    let summary = first_sentence(text);

    let mut parameters: Vec<Value> = variables
        .iter()
        .map(|variable| {
            let field = field_at(&input, variable);
            let mut parameter = json!({
                "name": parameter_name(variable),
                "in": "path",
                "required": true,
                "schema": field.as_ref().map_or(json!({ "type": "string" }), |f| schemas.kind(&f.kind())),
            });
            let mut text = field
                .and_then(|f| comments.of(&f.parent_file(), f.path()).map(str::to_owned))
                .unwrap_or_default();
            if variable.contains('.') {
                text = format!("`{variable}`. {text}").trim_end().to_owned();
            }
            if !text.is_empty() {
                parameter["description"] = text.into();
            }
            parameter
        })
        .collect();

    let body = binding.body.as_deref().filter(|b| !b.is_empty());
    // Fields neither in the path nor in the body come from the query string.
    if body != Some("*") {
        let mut bound: Vec<String> = variables.to_vec();
        if let Some(field) = body {
            bound.push(field.to_owned());
        }
        query_parameters(schemas, comments, &input, "", &bound, 0, &mut parameters);
    }

    let mut operation = json!({
        "operationId": operation_id,
        "tags": [method.parent_service().full_name()],
        "parameters": parameters,
        "responses": responses(schemas, binding),
        "x-grpc-method": format!("/{}/{}", method.parent_service().full_name(), method.name()),
    });
    if !summary.is_empty() {
        operation["summary"] = summary.into();
    }
    let access = rule_of(method);
    let mut description = text.to_owned();
    description.push_str(&format!("\n\nAccess: {}.", access_text(access)));
    operation["description"] = description.trim().into();
    if matches!(access, Rule::Declared(level) if level != Access::Public) {
        operation["security"] = json!([{ "bearerAuth": [] }]);
    }
    if let Some(body) = body {
        let excluded = |prefix: &str| -> Vec<String> {
            variables
                .iter()
                .filter_map(|v| {
                    if prefix.is_empty() {
                        Some(v.clone())
                    } else {
                        v.strip_prefix(&format!("{prefix}.")).map(str::to_owned)
                    }
                })
                .collect()
        };
        let schema = if body == "*" {
            let excluded = excluded("");
            if excluded.is_empty() {
                schemas.message(&input)
            } else {
                schemas.object(&input, &excluded)
            }
        } else {
            match input.get_field_by_name(body) {
                Some(field) => match field.kind() {
                    Kind::Message(inner)
                        if !field.is_list() && !field.is_map() && !excluded(body).is_empty() =>
                    {
                        schemas.object(&inner, &excluded(body))
                    }
                    _ => schemas.field(&field),
                },
                None => json!({}),
            }
        };
        operation["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema } },
        });
    }
    operation
}

/// The first sentence of a comment's first paragraph, on one line: an operation's summary.
/// "e.g." and "i.e." do not end a sentence.
fn first_sentence(comment: &str) -> String {
    let paragraph = comment
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .replace('\n', " ");
    let mut end = paragraph.len();
    for (at, _) in paragraph.match_indices(". ") {
        let before = &paragraph[..at];
        if !(before.ends_with("e.g") || before.ends_with("i.e")) {
            end = at;
            break;
        }
    }
    paragraph[..end].trim_end_matches('.').to_owned()
}

fn responses(schemas: &mut Schemas<'_>, binding: &Binding) -> Value {
    let output = binding.method.output();
    let schema = match binding.response_body.as_deref().filter(|b| !b.is_empty()) {
        Some(field) => output
            .get_field_by_name(field)
            .map_or(json!({}), |f| schemas.field(&f)),
        None => schemas.message(&output),
    };
    let success = if binding.method.is_server_streaming() {
        json!({
            "description": "A stream: one JSON object per line, `{\"result\": ...}` for each message and `{\"error\": Status}` if the stream fails; with `Accept: text/event-stream`, Server-Sent Events carrying the same objects.",
            "content": {
                "application/x-ndjson": { "schema": {
                    "type": "object",
                    "properties": { "result": schema, "error": reference(STATUS) },
                }},
                "text/event-stream": { "schema": { "type": "string" } },
            },
        })
    } else {
        json!({
            "description": "Success.",
            "content": { "application/json": { "schema": schema } },
        })
    };
    let error = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": reference(STATUS) } },
        })
    };
    let mut responses = json!({
        "200": success,
        "400": error("The request is malformed or breaks a rule (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE); `details` names the fields."),
        "429": error("Too many requests (RESOURCE_EXHAUSTED); `Retry-After` says when to try again."),
        "default": error("Any other error, as a google.rpc.Status by the canonical gRPC-to-HTTP table."),
    });
    if matches!(rule_of(&binding.method), Rule::Declared(level) if level != Access::Public) {
        responses["401"] = error("No valid access token (UNAUTHENTICATED).");
        responses["403"] = error("The caller may not call this method (PERMISSION_DENIED).");
    }
    responses
}

fn access_text(rule: Rule) -> &'static str {
    match rule {
        Rule::Declared(Access::Public) => "anyone",
        Rule::Declared(Access::User) => "signed-in users",
        Rule::Declared(Access::Admin) => "administrators",
        Rule::Declared(Access::Service) => "Agora services only",
        Rule::Undeclared => "nobody (the method declares no access rule)",
        Rule::Foreign => "decided by the upstream service",
    }
}

/// `google.rpc.Status` as the edge writes it.
fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": "An error: the gRPC status code, a message for developers, and typed details (google.rpc.BadRequest with field violations, google.rpc.RequestInfo with the request id, ...).",
        "properties": {
            "code": { "type": "integer", "format": "int32", "description": "The gRPC status code, e.g. 3 for INVALID_ARGUMENT." },
            "message": { "type": "string" },
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": { "@type": { "type": "string" } },
                    "required": ["@type"],
                },
            },
        },
        "required": ["code", "message"],
    })
}

/// The API page: one HTML file with its script inline, fetching only `/openapi.json`.
const DOCS_PAGE: &str = include_str!("openapi/docs.html");

/// The paths [`router`] serves: the document and its page.
pub const PATHS: [&str; 2] = ["/openapi.json", "/docs"];

/// `GET /openapi.json` and `GET /docs`, serving a document built once.
///
/// Mount beside the API routes, outside auth and rate limits:
///
/// ```ignore
/// let docs = openapi::router(openapi::document(&pool, &bindings));
/// let app = api_routes.merge(docs);
/// ```
pub fn router<S: Clone + Send + Sync + 'static>(document: Value) -> Router<S> {
    let body: Arc<[u8]> = serde_json::to_vec(&document).unwrap_or_default().into();
    Router::new()
        .route(
            PATHS[0],
            get(move || {
                let body = body.clone();
                async move { json_response(body) }
            }),
        )
        .route(PATHS[1], get(|| async { Html(DOCS_PAGE) }))
}

fn json_response(body: Arc<[u8]>) -> Response {
    let mut response = axum::body::Bytes::copy_from_slice(&body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests;
