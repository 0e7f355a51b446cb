//! The edge's own server reflection: every service it routes and the reflection services,
//! described from the descriptors the edge routes by. Answered here, never forwarded: each
//! upstream knows only itself.

use anyhow::Context as _;
use prost_reflect::DescriptorPool;
use tonic::service::Routes;
use tonic_reflection::server::Builder;

/// The reflection services the edge answers itself.
pub(super) const SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Reflection v1 and v1alpha listing each service of `pool` that `routed` accepts.
///
/// # Errors
/// Descriptors the reflection service cannot index.
pub(super) fn routes(
    pool: &DescriptorPool,
    routed: impl Fn(&str) -> bool,
) -> anyhow::Result<Routes> {
    // The pool's own encoding keeps extension options (`google.api.http`, the access option),
    // which `prost_types` descriptors would drop, so `describe` shows them.
    let encoded = pool.encode_to_vec();
    let mut listed: Vec<String> = pool
        .services()
        .map(|service| service.full_name().to_owned())
        .filter(|service| routed(service))
        .collect();
    listed.sort();
    listed.dedup();
    let builder = || {
        let builder = Builder::configure()
            .register_encoded_file_descriptor_set(&encoded)
            // Both versions' files in both services, so either resolves either's symbols.
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
            .include_reflection_service(false);
        listed
            .iter()
            .map(String::as_str)
            .chain(SERVICES)
            .fold(builder, |builder, service| {
                builder.with_service_name(service)
            })
    };
    let v1 = builder().build_v1().context("building reflection v1")?;
    let v1alpha = builder()
        .build_v1alpha()
        .context("building reflection v1alpha")?;
    Ok(Routes::new(v1).add_service(v1alpha))
}
