//! Which push endpoints the server will call. The URL comes from a client, so it is an SSRF
//! risk: only `https://` on a public address, checked when it is registered (for a clear
//! `FAIL`) and again at every push, where [`PublicResolver`] is the HTTP client's DNS and hands
//! it public addresses only, so a name that later resolves to 127.0.0.1 (DNS rebinding) is
//! still refused. Hosts listed in `webpush.allow_insecure_endpoints` (tests, closed LANs) may
//! use plain `http://` and any address.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::dns::Name;

/// Longest endpoint accepted (browsers' are under 500 bytes).
pub const MAX_ENDPOINT_LEN: usize = 1024;

/// Why an endpoint is refused; the text goes to the client in the `FAIL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("the endpoint is not a URL")]
    NotUrl,
    #[error("the endpoint must be an https:// URL")]
    NotHttps,
    #[error("the endpoint's host is a loopback, private or link-local address")]
    PrivateAddress,
    #[error("the endpoint's host resolves to no public address")]
    NoPublicAddress,
}

/// The hosts that may be reached without TLS and on any address.
#[derive(Debug, Clone, Default)]
pub struct Allowed(Arc<Vec<String>>);

impl Allowed {
    pub fn new(hosts: &[String]) -> Self {
        Allowed(Arc::new(
            hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        ))
    }

    fn contains(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.0
            .iter()
            .any(|allowed| allowed.trim_start_matches('[').trim_end_matches(']') == host)
    }
}

/// Parse and check an endpoint as far as can be done without DNS: a URL, `https://` (or an
/// allowed host), and not an IP literal that is private.
pub fn check(endpoint: &str, allowed: &Allowed) -> Result<Uri, EndpointError> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(EndpointError::NotUrl);
    }
    let uri: Uri = endpoint.parse().map_err(|_| EndpointError::NotUrl)?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or(EndpointError::NotUrl)?
        .to_ascii_lowercase();
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(EndpointError::NotUrl);
    }
    let insecure_ok = allowed.contains(&host);
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if insecure_ok => {}
        _ => return Err(EndpointError::NotHttps),
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if !insecure_ok && !is_public(ip) {
            return Err(EndpointError::PrivateAddress);
        }
    }
    Ok(uri)
}

/// The origin a VAPID token names as its audience: scheme, host and a port that is not the
/// scheme's default.
pub fn audience(uri: &Uri) -> Option<String> {
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    Some(match uri.port_u16() {
        Some(port) if !matches!((scheme, port), ("https", 443) | ("http", 80)) => {
            format!("{scheme}://{host}:{port}")
        }
        _ => format!("{scheme}://{host}"),
    })
}

/// Whether `ip` is an address on the open internet: not loopback, private (RFC 1918, unique
/// local), link-local, CGNAT, unspecified, multicast, broadcast or documentation space, and
/// not an IPv4 address hidden in IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

/// The push client's DNS: the system resolver, keeping public addresses only (all of them for
/// an allowed host). A name with none left is an error, so nothing is connected to.
#[derive(Debug, Clone, Default)]
pub struct PublicResolver {
    pub allowed: Allowed,
}

type Resolving =
    Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let any = allowed.contains(&host);
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| any || is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(std::io::Error::other(EndpointError::NoPublicAddress));
            }
            Ok(public.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_on_public_hosts_unless_allowed() {
        let none = Allowed::default();
        assert!(check("https://push.example.org/wpush/v2/abc", &none).is_ok());
        assert_eq!(
            check("http://push.example.org/x", &none),
            Err(EndpointError::NotHttps)
        );
        assert_eq!(
            check("ftp://a.example/x", &none),
            Err(EndpointError::NotHttps)
        );
        assert_eq!(check("not a url", &none), Err(EndpointError::NotUrl));
        assert_eq!(check("/relative", &none), Err(EndpointError::NotUrl));
        for private in [
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1:8443/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://[fe80::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://0.0.0.0/x",
            "https://100.64.0.1/x",
        ] {
            assert_eq!(
                check(private, &none),
                Err(EndpointError::PrivateAddress),
                "{private}"
            );
        }
        assert_eq!(
            check("https://user@push.example.org/x", &none),
            Err(EndpointError::NotUrl)
        );
        let loopback = Allowed::new(&["127.0.0.1".to_owned()]);
        assert!(check("http://127.0.0.1:9999/push", &loopback).is_ok());
        assert_eq!(
            check("http://127.0.0.2:9999/push", &loopback),
            Err(EndpointError::NotHttps)
        );
    }

    #[test]
    fn the_audience_is_the_origin() {
        let uri: Uri = "https://push.example.org/a/b?c".parse().expect("uri");
        assert_eq!(audience(&uri).as_deref(), Some("https://push.example.org"));
        let uri: Uri = "http://127.0.0.1:8080/a".parse().expect("uri");
        assert_eq!(audience(&uri).as_deref(), Some("http://127.0.0.1:8080"));
        let uri: Uri = "https://push.example.org:443/a".parse().expect("uri");
        assert_eq!(audience(&uri).as_deref(), Some("https://push.example.org"));
    }

    #[tokio::test]
    async fn the_resolver_drops_private_addresses() {
        use tower_service::Service as _;
        let name: Name = "localhost".parse().expect("name");
        let mut strict = PublicResolver::default();
        assert!(strict.call(name.clone()).await.is_err());
        let mut allowing = PublicResolver {
            allowed: Allowed::new(&["localhost".to_owned()]),
        };
        assert!(allowing.call(name).await.expect("resolved").len() > 0);
    }
}
