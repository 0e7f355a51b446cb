//! The route table: every [`Binding`] with its parsed [`PathTemplate`], checked at start-up and
//! searched per request (literal before `*` before `**`; 405 with `Allow` when only the method
//! differs).

use std::collections::HashMap;

use prost_reflect::DescriptorPool;

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
    Found(&'a Route, Vec<(Vec<String>, String)>),
    /// The path matches only under other methods: the `Allow` header's methods.
    MethodNotAllowed(Vec<http::Method>),
    /// No template matches the path.
    NotFound,
}

/// Every route of a descriptor pool, in precedence order.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Builds the table from the `google.api.http` rules in `pool`.
    ///
    /// # Errors
    /// A rule that does not parse, a GET or DELETE rule with a body, a body or path variable naming
    /// a field the request does not have, or two identical templates under one HTTP method.
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
            for variable in &template.variables {
                let mut message = Some(input.clone());
                for (i, part) in variable.field_path.iter().enumerate() {
                    let field = message
                        .as_ref()
                        .and_then(|m| m.get_field_by_name(part))
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "{name}: path variable {} is not a field of {}",
                                variable.field_path.join("."),
                                input.full_name()
                            )
                        })?;
                    let last = i + 1 == variable.field_path.len();
                    anyhow::ensure!(
                        last != field.kind().as_message().is_some() && !field.is_list(),
                        "{name}: path variable {} must name a singular scalar",
                        variable.field_path.join(".")
                    );
                    message = field.kind().as_message().cloned();
                }
            }
            let key = (binding.http_method.clone(), template.shape());
            if let Some(other) = shapes.insert(key, name.clone()) {
                anyhow::bail!(
                    "{name} and {other}: ambiguous template {} under {}",
                    template.shape(),
                    binding.http_method
                );
            }
            routes.push(Route { binding, template });
        }
        // Stable: equal precedence keeps descriptor order.
        routes.sort_by(|a, b| a.template.precedence(&b.template));
        Ok(Self { routes })
    }

    /// The routes, in the order they are tried.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Finds the route for a request's method and raw (percent-encoded) path.
    pub fn lookup(&self, method: &http::Method, raw_path: &str) -> Lookup<'_> {
        let mut allow = Vec::new();
        for route in &self.routes {
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
