//! Client-side load balancing over every address a DNS name resolves to.
//!
//! HTTP/2 multiplexes every call of a client over one long-lived connection. Behind a Kubernetes
//! `ClusterIP` Service, kube-proxy balances *connections*, not calls, so all the calls of one caller
//! land on the one pod its connection reached, however many replicas the autoscaler adds. Callers
//! therefore resolve a headless Service (whose DNS name answers with every ready pod's address),
//! open a connection to each, and spread calls over them; the name is resolved again every few
//! seconds so pods that start, stop or fail readiness join or leave the set.
//!
//! A service URL asks for this with the `dns` scheme of gRPC's naming convention:
//! `dns:///auth-headless:50051` (or `dns://auth-headless:50051`). Plain `http://` URLs keep one
//! ordinary channel. See [`crate::client::lazy_channel`].

use std::{collections::BTreeSet, io, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint, channel::Change};

use crate::mtls::TlsFiles;

/// How often a balanced channel resolves its name again.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// Turns a host and port into addresses; the system resolver by default, injectable for tests.
pub trait Resolve: Send + Sync + 'static {
    /// Every address `host:port` stands for now.
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
}

/// The system resolver (`/etc/hosts`, then DNS), through [`tokio::net::lookup_host`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// A `dns:` target: the name to resolve and the port to call on every address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    /// The DNS name (or an IP literal).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl DnsTarget {
    /// Parses `dns:///host:port` or `dns://host:port`; `None` for any other scheme.
    ///
    /// # Errors
    /// A `dns:` URL without a host or a valid port.
    pub fn parse(url: &str) -> anyhow::Result<Option<Self>> {
        let Some(rest) = url.strip_prefix("dns:") else {
            return Ok(None);
        };
        let authority = rest.trim_start_matches('/').trim_end_matches('/');
        let (host, port) = authority
            .rsplit_once(':')
            .with_context(|| format!("{url:?} names no port (dns:///host:port)"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("{url:?} names no host (dns:///host:port)");
        }
        let port = port
            .parse()
            .with_context(|| format!("{url:?} has an invalid port"))?;
        Ok(Some(Self {
            host: host.to_owned(),
            port,
        }))
    }
}

/// A channel that spreads calls over every address `target` resolves to, with `connections`
/// connections to each (at least one), re-resolving every `refresh`. `endpoint` configures each
/// connection (its URI is replaced per address).
///
/// The resolving task ends by itself once every clone of the channel is dropped. A failed lookup
/// keeps the last known addresses, so a DNS hiccup does not empty the set.
pub fn balanced_channel(
    target: DnsTarget,
    endpoint: impl Fn(SocketAddr) -> anyhow::Result<Endpoint> + Send + 'static,
    resolver: Arc<dyn Resolve>,
    refresh: Duration,
    connections: usize,
) -> Channel {
    renewing_balanced_channel(target, endpoint, resolver, refresh, connections, None)
}

/// [`balanced_channel`] whose endpoints are built again each time `renewals` are (mTLS
/// certificates rotated), so that the connections opened next present the new certificate.
pub(crate) fn renewing_balanced_channel(
    target: DnsTarget,
    endpoint: impl Fn(SocketAddr) -> anyhow::Result<Endpoint> + Send + 'static,
    resolver: Arc<dyn Resolve>,
    refresh: Duration,
    connections: usize,
    mut renewals: Option<TlsFiles>,
) -> Channel {
    let slots = 0..connections.max(1);
    let (channel, changes) = Channel::balance_channel::<(SocketAddr, usize)>(64);
    tokio::spawn(async move {
        let mut current = BTreeSet::new();
        // Builds a fresh endpoint for each address (the failures logged and skipped).
        let build = move |addrs: Vec<SocketAddr>| -> Vec<(SocketAddr, Endpoint)> {
            addrs
                .into_iter()
                .filter_map(|addr| match endpoint(addr) {
                    Ok(endpoint) => Some((addr, endpoint)),
                    Err(error) => {
                        tracing::warn!(%addr, "skipping address: {error:#}");
                        None
                    }
                })
                .collect()
        };
        // Inserts every slot of each address (replacing an existing one); false once the
        // channel is gone.
        let insert = async |built: Vec<(SocketAddr, Endpoint)>| -> bool {
            for (addr, endpoint) in built {
                for slot in slots.clone() {
                    let change = Change::Insert((addr, slot), endpoint.clone());
                    if changes.send(change).await.is_err() {
                        return false;
                    }
                }
            }
            true
        };
        loop {
            match resolver.resolve(&target.host, target.port).await {
                Ok(addrs) => {
                    let next: BTreeSet<SocketAddr> = addrs.into_iter().collect();
                    for gone in current.difference(&next) {
                        for slot in slots.clone() {
                            if changes.send(Change::Remove((*gone, slot))).await.is_err() {
                                return;
                            }
                        }
                    }
                    if !insert(build(next.difference(&current).copied().collect())).await {
                        return;
                    }
                    if current != next {
                        tracing::debug!(host = %target.host, addrs = ?next, "upstream addresses");
                    }
                    current = next;
                }
                Err(error) => {
                    tracing::warn!(host = %target.host, "cannot resolve upstream: {error}");
                }
            }
            let sleep = tokio::time::sleep(refresh);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    () = changes.closed() => return,
                    renewed = renewed(&mut renewals) => {
                        if !renewed {
                            renewals = None;
                        } else if !insert(build(current.iter().copied().collect())).await {
                            return;
                        }
                    }
                }
            }
        }
    });
    channel
}

/// Resolves when `files` are loaded again (`false`: never again); never without files.
pub(crate) async fn renewed(files: &mut Option<TlsFiles>) -> bool {
    match files {
        Some(files) => files.renewed().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_urls_parse_with_one_or_three_slashes_and_other_schemes_are_left_alone() {
        let three = DnsTarget::parse("dns:///auth-headless:50051").expect("valid");
        let one = DnsTarget::parse("dns://auth-headless:50051").expect("valid");
        let expected = DnsTarget {
            host: "auth-headless".into(),
            port: 50051,
        };
        assert_eq!(three, Some(expected.clone()));
        assert_eq!(one, Some(expected));
        assert_eq!(
            DnsTarget::parse("dns:///[::1]:7").expect("valid"),
            Some(DnsTarget {
                host: "::1".into(),
                port: 7
            })
        );
        assert_eq!(DnsTarget::parse("http://auth:50051").expect("valid"), None);
    }

    #[test]
    fn dns_urls_without_host_or_port_are_errors() {
        assert!(DnsTarget::parse("dns:///auth").is_err());
        assert!(DnsTarget::parse("dns:///:50051").is_err());
        assert!(DnsTarget::parse("dns:///auth:http").is_err());
    }
}
