//! An upstream's descriptors read from its gRPC server reflection at start-up, so a service
//! written in any language joins the edge by configuration alone: its `google.api.http` rules
//! become routes like Agora's own once [`add_to_pool`] has put its files in the pool.
//!
//! The exchange is one bidirectional `ServerReflectionInfo` stream: `list_services`, then
//! `file_containing_symbol` for each service, then `file_by_filename` for every import not sent
//! yet, until the set is closed. `grpc.reflection.v1` is asked first; a server answering
//! UNIMPLEMENTED is asked again over `grpc.reflection.v1alpha`, the same messages on the wire.
//!
//! Each file keeps the bytes the server sent: decoding a `FileDescriptorProto` with prost-types
//! drops extension options, and the HTTP rules are extension options.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use prost::Message;
use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorProto;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::{
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

mod session;

use session::{Session, Version, content};

/// Services every gRPC server may list that are not the upstream's own API.
const LEFT_OUT: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// What an upstream's reflection told about it.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// The full names of its services (health and reflection left out), in the server's order.
    pub services: Vec<String>,
    /// The files defining them and everything they import, each once, as the server sent them.
    pub files: Vec<DiscoveredFile>,
}

/// One file descriptor as an upstream sent it.
#[derive(Debug, Clone)]
pub struct DiscoveredFile {
    /// The decoded descriptor, for its name and imports. Its options lack every extension (such
    /// as `google.api.http`): prost-types drops them; [`Self::encoded`] keeps them.
    pub proto: FileDescriptorProto,
    /// The encoded `FileDescriptorProto`, byte for byte, which is what goes into the pool.
    pub encoded: Bytes,
}

impl DiscoveredFile {
    /// A file from its encoded `FileDescriptorProto`.
    ///
    /// # Errors
    /// Bytes that are not a `FileDescriptorProto`, or one without a name.
    pub fn decode(encoded: Bytes) -> anyhow::Result<Self> {
        let proto = FileDescriptorProto::decode(encoded.clone())
            .context("a file descriptor that does not decode")?;
        anyhow::ensure!(!proto.name().is_empty(), "a file descriptor without a name");
        Ok(Self { proto, encoded })
    }

    /// The file's name, e.g. `greeter/v1/greeter.proto`.
    pub fn name(&self) -> &str {
        self.proto.name()
    }

    /// The full names of the services the file defines.
    pub fn services(&self) -> impl Iterator<Item = String> + '_ {
        let package = self.proto.package();
        self.proto.service.iter().map(move |s| match package {
            "" => s.name().to_owned(),
            package => format!("{package}.{}", s.name()),
        })
    }
}

/// Asks the upstream behind `channel` for its services and every file descriptor they need.
///
/// # Errors
/// A server without reflection, an unreachable one, a reflection error, no services but health
/// and reflection, a file that does not decode or a service no sent file defines; and the whole exchange taking longer than
/// `timeout`. The messages say what was asked; callers add which upstream it was.
pub async fn discover(channel: Channel, timeout: Duration) -> anyhow::Result<Discovered> {
    tokio::time::timeout(timeout, exchange(channel))
        .await
        .map_err(|_| {
            anyhow::anyhow!("the upstream's reflection did not answer within {timeout:?}")
        })?
}

/// Adds `files` to `pool`, each after its imports, skipping files the pool already has by name
/// (`google/api/annotations.proto`, `google/protobuf/*`). All or nothing: on an error the pool
/// is unchanged.
///
/// # Errors
/// A new file defining a service the pool already has; a file skipped by name whose services
/// the pool's file of that name lacks; an import neither sent nor in the pool; an import cycle;
/// or a file the pool refuses (a type defined twice, an unknown type).
pub fn add_to_pool(pool: &mut DescriptorPool, files: &[DiscoveredFile]) -> anyhow::Result<()> {
    let mut staged = pool.clone();
    let mut pending: Vec<&DiscoveredFile> = Vec::new();
    for file in files {
        if pending.iter().any(|f| f.name() == file.name()) {
            continue;
        }
        if staged.get_file_by_name(file.name()).is_some() {
            if let Some(service) = file
                .services()
                .find(|s| staged.get_service_by_name(s).is_none())
            {
                anyhow::bail!(
                    "the upstream's {} defines {service}, but the gateway's own file of that name \
                     does not",
                    file.name()
                );
            }
            continue;
        }
        for service in file.services() {
            if let Some(existing) = staged.get_service_by_name(&service) {
                anyhow::bail!(
                    "the upstream's {} defines {service}, a service the gateway already has \
                     (from {})",
                    file.name(),
                    existing.parent_file().name()
                );
            }
        }
        pending.push(file);
    }
    while !pending.is_empty() {
        let ready = pending.iter().position(|f| {
            f.proto
                .dependency
                .iter()
                .all(|d| staged.get_file_by_name(d).is_some())
        });
        let Some(index) = ready else {
            return Err(unresolved(&staged, &pending));
        };
        let file = pending.remove(index);
        staged
            .decode_file_descriptor_proto(file.encoded.clone())
            .with_context(|| format!("adding the upstream's {}", file.name()))?;
    }
    *pool = staged;
    Ok(())
}

/// Why none of `pending` can be added: an import missing everywhere, or else a cycle.
fn unresolved(pool: &DescriptorPool, pending: &[&DiscoveredFile]) -> anyhow::Error {
    for file in pending {
        let missing = file.proto.dependency.iter().find(|d| {
            pool.get_file_by_name(d).is_none() && !pending.iter().any(|p| p.name() == d.as_str())
        });
        if let Some(missing) = missing {
            return anyhow::anyhow!(
                "the upstream's {} imports {missing}, which the upstream did not send and the \
                 gateway does not have",
                file.name()
            );
        }
    }
    let names: Vec<&str> = pending.iter().map(|f| f.name()).collect();
    anyhow::anyhow!(
        "the upstream's files import each other in a cycle: {}",
        names.join(", ")
    )
}

async fn exchange(channel: Channel) -> anyhow::Result<Discovered> {
    let (mut session, listed) = match Session::open(channel.clone(), Version::V1).await {
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            Session::open(channel, Version::V1Alpha)
                .await
                .map_err(|alpha| match alpha.code() {
                    tonic::Code::Unimplemented => anyhow::anyhow!(
                        "the upstream serves no gRPC server reflection: grpc.reflection.v1 and \
                         v1alpha both answered UNIMPLEMENTED ({})",
                        alpha.message()
                    ),
                    _ => failed("listing the services over grpc.reflection.v1alpha", &alpha),
                })?
        }
        other => other
            .map_err(|status| failed("listing the services over grpc.reflection.v1", &status))?,
    };
    let MessageResponse::ListServicesResponse(list) = content(listed, "list_services")? else {
        anyhow::bail!("the upstream's reflection answered list_services with something else");
    };
    let services: Vec<String> = list
        .service
        .into_iter()
        .map(|s| s.name)
        .filter(|name| !LEFT_OUT.contains(&name.as_str()))
        .collect();
    anyhow::ensure!(
        !services.is_empty(),
        "the upstream's reflection lists no services besides health and reflection"
    );

    let mut files = Files::default();
    for service in &services {
        let sent = session
            .files(MessageRequest::FileContainingSymbol(service.clone()))
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the upstream lists {service}, but its reflection has no file for it"
                )
            })?;
        files.add(sent)?;
        anyhow::ensure!(
            files
                .all
                .iter()
                .any(|f| f.services().any(|s| s == *service)),
            "the upstream lists {service}, but no file its reflection sent defines it"
        );
    }
    while let Some(import) = files.next_missing() {
        match session
            .files(MessageRequest::FileByFilename(import.clone()))
            .await?
        {
            Some(sent) => {
                files.add(sent)?;
                anyhow::ensure!(
                    files.has(&import),
                    "the upstream's reflection, asked for {import}, sent other files"
                );
            }
            // A server may not have a well-known import; the pool may, which `add_to_pool`
            // checks.
            None => {
                files.unavailable.insert(import);
            }
        }
    }
    Ok(Discovered {
        services,
        files: files.all,
    })
}

fn failed(what: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "the upstream's reflection: {what} failed: {:?}: {}",
        status.code(),
        status.message()
    )
}

/// The files sent so far, each once, and the imports the server said it does not have.
#[derive(Default)]
struct Files {
    all: Vec<DiscoveredFile>,
    unavailable: HashSet<String>,
}

impl Files {
    fn has(&self, name: &str) -> bool {
        self.all.iter().any(|f| f.name() == name)
    }

    /// Keeps every file not sent before (a server may send a file with each that imports it).
    fn add(&mut self, sent: Vec<Bytes>) -> anyhow::Result<()> {
        for encoded in sent {
            let file = DiscoveredFile::decode(encoded)
                .context("a file sent by the upstream's reflection")?;
            if !self.has(file.name()) {
                self.all.push(file);
            }
        }
        Ok(())
    }

    /// An import of a sent file that was neither sent nor refused.
    fn next_missing(&self) -> Option<String> {
        self.all
            .iter()
            .flat_map(|f| &f.proto.dependency)
            .find(|d| !self.has(d) && !self.unavailable.contains(*d))
            .cloned()
    }
}
