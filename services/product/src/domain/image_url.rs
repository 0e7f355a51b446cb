//! Product picture URLs: absolute `https` URLs a browser can load, or nothing.

use super::FieldError;

/// An absolute `https` URL of at most 2048 characters, or empty (no picture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrl(String);

impl ImageUrl {
    /// The longest URL.
    pub const MAX: usize = 2048;

    /// Checks an image URL: `https://host[:port][/path][?query][#fragment]`, ASCII only (other
    /// characters must be percent-encoded), no credentials, no spaces.
    ///
    /// # Errors
    /// Too long, or not an absolute `https` URL.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Ok(Self(String::new()));
        }
        if raw.len() > Self::MAX {
            return Err(FieldError::TooLong(Self::MAX));
        }
        let Some(scheme_end) = raw.find("://") else {
            return Err(FieldError::NotHttpsUrl);
        };
        if !raw[..scheme_end].eq_ignore_ascii_case("https") {
            return Err(FieldError::NotHttpsUrl);
        }
        let rest = &raw[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let url_char = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
        if valid_authority(authority) && tail.chars().all(url_char) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::NotHttpsUrl)
        }
    }

    /// The URL, empty for none.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `host[:port]`, where host is a DNS name or a bracketed IPv6 address. Credentials
/// (`user:pass@`) are refused by the host rules, since a URL shown to every customer must not
/// carry any.
fn valid_authority(authority: &str) -> bool {
    let valid_port = |port: &str| port.parse::<u16>().is_ok_and(|p| p > 0);
    if let Some(v6) = authority.strip_prefix('[') {
        let Some((address, after)) = v6.split_once(']') else {
            return false;
        };
        return address.parse::<std::net::Ipv6Addr>().is_ok()
            && (after.is_empty() || after.strip_prefix(':').is_some_and(valid_port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    port.is_none_or(valid_port)
        && !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl ImageUrl {
    /// Rebuilds a URL read from the store, where it was checked when written (see the
    /// `stored!` types in [`super`]).
    pub(crate) fn from_store(raw: String) -> Self {
        Self(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_urls_must_be_absolute_https() {
        for good in [
            "",
            "https://cdn.example.com/mug.png",
            "HTTPS://cdn.example.com:8443/a/b.jpg?w=200&h=100#top",
            "https://[2001:db8::1]/mug.png",
            "https://localhost",
        ] {
            assert!(ImageUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "http://cdn.example.com/mug.png",
            "cdn.example.com/mug.png",
            "https://",
            "https:///mug.png",
            "https://user:pass@cdn.example.com/mug.png",
            "https://cdn.example.com/blue mug.png",
            "https://cdn.example.com:99999/",
            "https://cdn..example.com/",
            "https://cdn.example.com/müg.png",
            "javascript:alert(1)",
        ] {
            assert_eq!(ImageUrl::parse(bad), Err(FieldError::NotHttpsUrl), "{bad}");
        }
        let long = format!("https://cdn.example.com/{}", "a".repeat(2048));
        assert_eq!(ImageUrl::parse(&long), Err(FieldError::TooLong(2048)));
    }
}
