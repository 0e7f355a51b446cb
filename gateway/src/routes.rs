//! The route table: every [`Binding`] with its parsed [`PathTemplate`], checked at start-up and
//! searched per request (literal before `*` before `**`; 405 with `Allow` when only the method
//! differs). A custom verb is a verb wherever some template declares it, so `GET /v1/items/a:cancel`
//! never reaches `/v1/items/{id}` with the id `a:cancel` once any template ends in `:cancel`.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::{DescriptorPool, MessageDescriptor};

use crate::rules::{self, Binding};
use crate::template::PathTemplate;

/// One route: a binding and its parsed template.
#[derive(Debug, Clone)]
pub struct Route {
    /// The HTTP rule the route comes from (put in the request's extensions for the edge layers).
    pub binding: Binding,
    /// The parsed path template.
    pub template: PathTemplate,
}

/// The outcome of looking a request up.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route matched; each variable's field path with its decoded value.
    Found(&'a Arc<Route>, Vec<(Vec<String>, String)>),
    /// The path matches only under other methods: the `Allow` header's methods.
    MethodNotAllowed(Vec<http::Method>),
    /// No template matches the path.
    NotFound,
}

/// Every route of a descriptor pool, in precedence order.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Arc<Route>>,
    /// Every custom verb some template declares: a path ending in `:<verb>` is matched only
    /// against templates with that verb, and a colon before any other word is part of a value.
    verbs: Vec<String>,
}

impl Routes {
    /// Builds the table from the `google.api.http` rules in `pool`.
    ///
    /// # Errors
    /// A rule that does not parse, a GET or DELETE rule with a body, a body or path variable naming
    /// a field the request does not have, a path variable that is not a singular scalar, a
    /// `response_body` naming a field the response does not have, or two identical templates
    /// under one HTTP method.
    pub fn build(pool: &DescriptorPool) -> anyhow::Result<Self> {
        let mut routes = Vec::new();
        let mut shapes: HashMap<(http::Method, String), String> = HashMap::new();
        for binding in rules::bindings(pool)? {
            let name = binding.method.full_name().to_owned();
            let template = PathTemplate::parse(&binding.template)?;
            if binding.body.is_some()
                && matches!(
                    binding.http_method,
                    http::Method::GET | http::Method::DELETE
                )
            {
                anyhow::bail!("{name}: a {} rule may not have a body", binding.http_method);
            }
            let input = binding.method.input();
            if let Some(body) = binding.body.as_deref().filter(|b| *b != "*")
                && input.get_field_by_name(body).is_none()
            {
                anyhow::bail!(
                    "{name}: body field {body:?} is not in {}",
                    input.full_name()
                );
            }
            let output = binding.method.output();
            if let Some(field) = binding.response_body.as_deref()
                && output.get_field_by_name(field).is_none()
            {
                anyhow::bail!(
                    "{name}: response_body field {field:?} is not in {}",
                    output.full_name()
                );
            }
            for variable in &template.variables {
                check_variable(&name, &input, &variable.field_path)?;
            }
            let key = (binding.http_method.clone(), template.shape());
            if let Some(other) = shapes.insert(key, name.clone()) {
                anyhow::bail!(
                    "{name} and {other}: ambiguous template {} under {}",
                    template.shape(),
                    binding.http_method
                );
            }
            routes.push(Arc::new(Route { binding, template }));
        }
        // Stable: equal precedence keeps descriptor order.
        routes.sort_by(|a, b| a.template.precedence(&b.template));
        let mut verbs: Vec<String> = routes
            .iter()
            .filter_map(|r| r.template.verb.clone())
            .collect();
        verbs.sort();
        verbs.dedup();
        Ok(Self { routes, verbs })
    }

    /// The routes, in the order they are tried.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|route| &**route)
    }

    /// Finds the route for a request's method and raw (percent-encoded) path.
    pub fn lookup(&self, method: &http::Method, raw_path: &str) -> Lookup<'_> {
        let verb = self.verb_of(raw_path);
        let mut allow = Vec::new();
        for route in &self.routes {
            if route.template.verb.as_deref() != verb {
                continue;
            }
            if let Some(values) = route.template.matches(raw_path) {
                if route.binding.http_method == *method {
                    return Lookup::Found(route, values);
                }
                if !allow.contains(&route.binding.http_method) {
                    allow.push(route.binding.http_method.clone());
                }
            }
        }
        if allow.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed(allow)
        }
    }

    /// The declared custom verb a path ends with (`/v1/items/a:publish` -> `publish`), if any.
    fn verb_of(&self, raw_path: &str) -> Option<&str> {
        let last = raw_path.rsplit('/').next()?;
        let (_, verb) = last.rsplit_once(':')?;
        self.verbs.iter().map(String::as_str).find(|v| *v == verb)
    }
}

/// A path variable must name a singular scalar, through singular messages only: not a list, a
/// map, or a well-known type (whose JSON form is not an object with fields).
fn check_variable(name: &str, input: &MessageDescriptor, path: &[String]) -> anyhow::Result<()> {
    let dotted = path.join(".");
    let mut message = input.clone();
    for (i, part) in path.iter().enumerate() {
        let field = message.get_field_by_name(part).ok_or_else(|| {
            anyhow::anyhow!(
                "{name}: path variable {dotted} is not a field of {}",
                input.full_name()
            )
        })?;
        let last = i + 1 == path.len();
        let nested = field
            .kind()
            .as_message()
            .filter(|m| !m.full_name().starts_with("google.protobuf."))
            .cloned();
        let singular = !field.is_list() && !field.is_map();
        match (last, nested) {
            (true, None) if singular && field.kind().as_message().is_none() => return Ok(()),
            (false, Some(next)) if singular => message = next,
            _ => anyhow::bail!("{name}: path variable {dotted} must name a singular scalar"),
        }
    }
    anyhow::bail!("{name}: path variable {dotted} must name a singular scalar")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contracts() -> Routes {
        let pool = DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
            .expect("the contracts decode");
        Routes::build(&pool).expect("the contracts' rules build")
    }

    #[test]
    fn every_rule_of_the_contracts_builds_into_a_route() {
        let routes = contracts();
        let pool = DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
            .expect("the contracts decode");
        let bindings = rules::bindings(&pool).expect("rules parse");
        assert!(!bindings.is_empty());
        assert_eq!(routes.iter().count(), bindings.len());
    }

    #[test]
    fn a_product_is_found_by_id_and_other_methods_on_its_path_are_listed_in_allow() {
        let routes = contracts();
        match routes.lookup(&http::Method::GET, "/v1/products/p%2D1") {
            Lookup::Found(route, values) => {
                assert_eq!(route.binding.method.name(), "GetProduct");
                assert_eq!(values.len(), 1);
                assert_eq!(values[0].1, "p-1");
            }
            other => panic!("expected GetProduct, got {other:?}"),
        }
        match routes.lookup(&http::Method::PUT, "/v1/products/p-1") {
            Lookup::MethodNotAllowed(allow) => assert!(allow.contains(&http::Method::GET)),
            other => panic!("expected 405, got {other:?}"),
        }
        assert!(matches!(
            routes.lookup(&http::Method::GET, "/v1/nothing-here"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn a_declared_verb_is_never_read_as_part_of_an_id_but_an_escaped_colon_is() {
        let routes = contracts();
        match routes.lookup(&http::Method::GET, "/v1/orders/o-1:cancel") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, [http::Method::POST]),
            other => panic!("expected 405, got {other:?}"),
        }
        match routes.lookup(&http::Method::GET, "/v1/orders/o-1%3Acancel") {
            Lookup::Found(route, values) => {
                assert_eq!(route.binding.method.name(), "GetOrder");
                assert_eq!(values[0].1, "o-1:cancel");
            }
            other => panic!("expected GetOrder, got {other:?}"),
        }
        match routes.lookup(&http::Method::GET, "/v1/orders/o-1:watch") {
            Lookup::Found(route, _) => assert_eq!(route.binding.method.name(), "WatchOrder"),
            other => panic!("expected WatchOrder, got {other:?}"),
        }
    }

    /// Compiles one of the start-up test protos with the contracts' `google/api` imports.
    fn startup_pool(file: &str) -> DescriptorPool {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut compiler =
            protox::Compiler::new([dir.join("tests/proto/startup"), dir.join("../proto")])
                .expect("include paths exist");
        compiler.include_imports(true);
        compiler.open_file(file).expect("the test proto compiles");
        DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice())
            .expect("the set decodes")
    }

    #[test]
    fn a_get_rule_with_a_body_is_refused_at_start_up() {
        let error = Routes::build(&startup_pool("get_with_body.proto")).expect_err("refused");
        assert!(error.to_string().contains("may not have a body"), "{error}");
    }

    #[test]
    fn two_identical_templates_under_one_method_are_refused_at_start_up() {
        let error = Routes::build(&startup_pool("ambiguous.proto")).expect_err("refused");
        assert!(error.to_string().contains("ambiguous template"), "{error}");
    }

    #[test]
    fn a_path_variable_naming_a_missing_field_is_refused_at_start_up() {
        let error = Routes::build(&startup_pool("unknown_variable.proto")).expect_err("refused");
        assert!(error.to_string().contains("is not a field"), "{error}");
    }
}
