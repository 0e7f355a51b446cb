//! The `google.api.http` rules of a descriptor set: one [`Binding`] per HTTP route of a method
//! (its main rule and each of its `additional_bindings`).

use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

/// One HTTP route of a gRPC method.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The method the route calls.
    pub method: MethodDescriptor,
    /// `GET`, `POST`, ... (or a custom verb's method).
    pub http_method: http::Method,
    /// The path template, e.g. `/v1/products/{product_id}`.
    pub template: String,
    /// `*`, a top-level field name, or `None` when every unbound field comes from the query.
    pub body: Option<String>,
    /// The response field sent instead of the whole response, if any.
    pub response_body: Option<String>,
}

/// Every binding of every method in `pool`, in descriptor order.
///
/// # Errors
/// A rule without a pattern, with an unknown HTTP method, or `additional_bindings` nested twice.
pub fn bindings(pool: &DescriptorPool) -> anyhow::Result<Vec<Binding>> {
    let Some(extension) = pool.get_extension_by_name("google.api.http") else {
        return Ok(Vec::new());
    };
    let mut bindings = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&extension) {
                continue;
            }
            let Value::Message(rule) = options.get_extension(&extension).into_owned() else {
                continue;
            };
            bindings.push(binding(&method, &rule)?);
            if let Some(Value::List(more)) = rule
                .get_field_by_name("additional_bindings")
                .map(|v| v.into_owned())
            {
                for extra in more {
                    if let Value::Message(extra) = extra {
                        let nested = extra
                            .get_field_by_name("additional_bindings")
                            .is_some_and(|v| v.as_list().is_some_and(|l| !l.is_empty()));
                        anyhow::ensure!(
                            !nested,
                            "{}: additional_bindings may not nest",
                            method.full_name()
                        );
                        bindings.push(binding(&method, &extra)?);
                    }
                }
            }
        }
    }
    Ok(bindings)
}

fn text(rule: &DynamicMessage, field: &str) -> Option<String> {
    rule.get_field_by_name(field)
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.is_empty())
}

fn binding(method: &MethodDescriptor, rule: &DynamicMessage) -> anyhow::Result<Binding> {
    let mut pattern = None;
    for (field, verb) in [
        ("get", http::Method::GET),
        ("put", http::Method::PUT),
        ("post", http::Method::POST),
        ("delete", http::Method::DELETE),
        ("patch", http::Method::PATCH),
    ] {
        if let Some(template) = text(rule, field) {
            pattern = Some((verb, template));
        }
    }
    if pattern.is_none()
        && let Some(Value::Message(custom)) =
            rule.get_field_by_name("custom").map(|v| v.into_owned())
        && let (Some(kind), Some(path)) = (text(&custom, "kind"), text(&custom, "path"))
    {
        pattern = Some((http::Method::from_bytes(kind.as_bytes())?, path));
    }
    let Some((http_method, template)) = pattern else {
        anyhow::bail!("{}: an HTTP rule without a pattern", method.full_name());
    };
    Ok(Binding {
        method: method.clone(),
        http_method,
        template,
        body: text(rule, "body"),
        response_body: text(rule, "response_body"),
    })
}
