//! Who the client of a request is, decided once and the same way for REST, gRPC and gRPC-Web.
//!
//! A client can write any `X-Forwarded-For` or `Forwarded` it likes, so the edge believes them
//! only from a peer in `gateway.trusted_proxies` (a load balancer in front of it; none by
//! default). From any other peer they are dropped. Either way the peer the edge saw is appended,
//! so every upstream receives one `x-forwarded-for` ending in an address the edge vouches for,
//! and auth's per-address login throttle, the edge's rate limits and the logs all count the same
//! client, whichever protocol it speaks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const FORWARDED: &str = "forwarded";

/// The client's address as the edge decided it: the peer, or, when the peer is a trusted proxy,
/// the nearest address its forwarding headers name that is not a trusted proxy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The peers whose forwarding headers the edge believes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Trusts `proxies`.
    pub fn new(proxies: &[IpNet]) -> Self {
        Self(proxies.into())
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

/// The middleware: decides the client of every request (see [`decide`]).
pub async fn enforce(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    decide(&mut request, &trusted);
    next.run(request).await
}

/// Rewrites `request`'s forwarding headers into the one `x-forwarded-for` the upstream gets (the
/// believed chain, then the peer; `Forwarded` removed) and records the [`ClientAddress`]. Without
/// a known peer (a router driven in-process) both headers are only removed.
pub fn decide(request: &mut Request, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let headers = request.headers_mut();
    let Some(peer) = peer else {
        headers.remove(X_FORWARDED_FOR);
        headers.remove(FORWARDED);
        return None;
    };
    let mut chain = if trusted.contains(&peer) {
        believed_chain(headers)
    } else {
        Vec::new()
    };
    headers.remove(FORWARDED);
    chain.push(peer.to_string());
    // Every hop came from a valid header value, so the joined chain is one too; the peer alone
    // is the fallback all the same.
    let value = HeaderValue::from_str(&chain.join(", "))
        .or_else(|_| HeaderValue::from_str(&peer.to_string()));
    if let Ok(value) = value {
        headers.insert(X_FORWARDED_FOR, value);
    }
    let client = chain
        .iter()
        .rev()
        .map_while(|hop| parse_hop(hop))
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer);
    request.extensions_mut().insert(ClientAddress(client));
    Some(client)
}

/// Decides the client of a request the middleware has not seen (a router driven without the
/// whole edge), trusting no proxy.
pub fn ensure_decided(request: &mut Request) {
    if request.extensions().get::<ClientAddress>().is_none() {
        decide(request, &TrustedProxies::default());
    }
}

/// The hops a trusted proxy says came before it: every `X-Forwarded-For` entry, or the `for=`
/// of each `Forwarded` element when there is no `X-Forwarded-For`.
fn believed_chain(headers: &HeaderMap) -> Vec<String> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let forwarded_for = values(X_FORWARDED_FOR);
    if !forwarded_for.is_empty() {
        return forwarded_for;
    }
    values(FORWARDED)
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for")
                    .then(|| value.trim_matches('"').to_owned())
            })
        })
        .collect()
}

/// The address of one hop: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')?.split_once(']')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, headers: &[(&'static str, &'static str)]) -> Request {
        let mut request = Request::new(axum::body::Body::empty());
        for (name, value) in headers {
            request
                .headers_mut()
                .append(*name, HeaderValue::from_static(value));
        }
        let peer: SocketAddr = peer.parse().expect("an address");
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        let nets: Vec<IpNet> = nets.iter().map(|n| n.parse().expect("a net")).collect();
        TrustedProxies::new(&nets)
    }

    #[test]
    fn an_untrusted_peers_forwarding_headers_are_replaced_by_the_peer() {
        let mut spoofed = request(
            "198.51.100.4:5000",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("forwarded", "for=203.0.113.10"),
            ],
        );
        let client = decide(&mut spoofed, &trusted(&["10.0.0.0/8"]));
        assert_eq!(client, Some("198.51.100.4".parse().expect("an ip")));
        assert_eq!(spoofed.headers()["x-forwarded-for"], "198.51.100.4");
        assert!(spoofed.headers().get("forwarded").is_none());
        assert_eq!(
            spoofed.extensions().get::<ClientAddress>(),
            Some(&ClientAddress("198.51.100.4".parse().expect("an ip")))
        );
    }

    #[test]
    fn a_trusted_proxys_chain_is_kept_and_the_nearest_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let mut behind = request(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.0.0.3")],
        );
        let client = decide(&mut behind, &proxies);
        assert_eq!(client, Some("198.51.100.7".parse().expect("an ip")));
        assert_eq!(
            behind.headers()["x-forwarded-for"],
            "203.0.113.9, 198.51.100.7, 10.0.0.3, 10.0.0.2"
        );
        let mut rfc7239 = request(
            "10.0.0.2:5000",
            &[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")],
        );
        assert_eq!(
            decide(&mut rfc7239, &proxies),
            Some("2001:db8::1".parse().expect("an ip"))
        );
        assert_eq!(
            rfc7239.headers()["x-forwarded-for"],
            "[2001:db8::1]:4711, 10.0.0.2"
        );
    }

    #[test]
    fn without_a_peer_forwarding_headers_are_dropped() {
        let mut request = Request::new(axum::body::Body::empty());
        request
            .headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert_eq!(decide(&mut request, &TrustedProxies::default()), None);
        assert!(request.headers().get("x-forwarded-for").is_none());
    }
}
