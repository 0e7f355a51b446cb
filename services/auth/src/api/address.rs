//! The client's address behind the edge, which the login throttle and the registration budget
//! count by.

use tonic::Request;

/// The client's address, for throttling: the peer's, or, when the peer is a trusted proxy (the
/// edge), the nearest address in its `x-forwarded-for` that is not itself a trusted proxy.
pub(super) fn client_address<T>(request: &Request<T>, trusted: &[ipnet::IpNet]) -> Option<String> {
    let peer = request.remote_addr()?.ip();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer.to_string());
    }
    let forwarded = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let client = forwarded
        .iter()
        .rev()
        .map_while(|hop| hop.parse::<std::net::IpAddr>().ok())
        .find(|ip| !is_trusted(ip));
    Some(client.unwrap_or(peer).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts the client address of a request from `peer` forwarding for `forwarded`, behind
    /// the trusted proxies 127.0.0.1 and 10.0.0.0/8.
    fn assert_address(peer: &str, forwarded: &str, expected: &str) {
        let mut request = Request::new(());
        let addr: std::net::SocketAddr = peer.parse().expect("an address");
        request
            .extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(addr),
            });
        request
            .metadata_mut()
            .insert("x-forwarded-for", forwarded.parse().expect("ascii"));
        let trusted: [ipnet::IpNet; 2] = [
            "127.0.0.1/32".parse().expect("a net"),
            "10.0.0.0/8".parse().expect("a net"),
        ];
        assert_eq!(
            client_address(&request, &trusted).as_deref(),
            Some(expected),
            "from {peer} for {forwarded}"
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_client_is_the_address() {
        assert_address("127.0.0.1:9000", "203.0.113.9", "203.0.113.9");
        // The nearest untrusted hop wins: what the client itself wrote further left is not
        // believed.
        assert_address(
            "10.1.1.1:9000",
            "198.51.100.1, 203.0.113.9, 10.2.2.2",
            "203.0.113.9",
        );
    }

    #[test]
    fn anyone_elses_forwarded_for_is_ignored() {
        assert_address("192.0.2.4:9000", "203.0.113.9", "192.0.2.4");
        assert_address("127.0.0.1:9000", "not an address", "127.0.0.1");
    }
}
