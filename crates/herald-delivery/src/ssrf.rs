//! The SSRF guard: deliveries may not reach loopback, private, link-local,
//! metadata or other special-purpose addresses unless allowlisted.
//!
//! The check runs on the addresses a hostname resolves to, inside the
//! resolver the HTTP client connects with, so a DNS answer that changes
//! between check and connect (rebinding) cannot slip through. IP-literal URLs
//! skip DNS and are checked with [`check_literal`] before sending.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;

/// An address the guard refused.
#[derive(Debug, thiserror::Error)]
#[error("address {0} is not allowed (private, loopback or reserved)")]
pub struct Blocked(pub IpAddr);

/// Which addresses may be connected to.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowlist: Vec<IpNet>,
}

impl Guard {
    /// A guard that also lets `allowlist` through.
    pub fn new(allowlist: Vec<IpNet>) -> Self {
        Self { allowlist }
    }

    /// Whether a connection to `address` is allowed.
    pub fn allows(&self, address: IpAddr) -> bool {
        self.allowlist.iter().any(|net| net.contains(&address)) || is_public(address)
    }

    /// Checks the host of an IP-literal URL (hostnames are checked at resolve time).
    pub fn check_literal(&self, url: &url::Url) -> Result<(), Blocked> {
        let address = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        if self.allows(address) {
            Ok(())
        } else {
            Err(Blocked(address))
        }
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_multicast()
        || address.is_broadcast()
        || address.is_documentation()
        || a == 0
        || (a == 100 && (64..=127).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..=19).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    if let Some(v4) = address.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = address.segments();
    let v4 = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    // NAT64 (64:ff9b::/96) embeds an IPv4 address in the last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(v4(segments[6], segments[7]));
    }
    // 6to4 (2002::/16) routes to the IPv4 address in bits 16-48.
    if segments[0] == 0x2002 {
        return is_public_v4(v4(segments[1], segments[2]));
    }
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link local fe80::/10
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..4] == [0x100, 0, 0, 0] // discard-only 100::/64
        || segments[..2] == [0x2001, 0] // Teredo 2001::/32 (tunnels to an IPv4 peer)
        || segments[..3] == [0x64, 0xff9b, 1] // local-use NAT64 64:ff9b:1::/48
        || (segments[0] & 0xffc0) == 0xfec0 // site local fec0::/10 (deprecated)
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

/// Whether `address` is an ordinary public unicast address.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// A resolver that drops blocked addresses and fails if none is left.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    guard: Arc<Guard>,
}

impl GuardedResolver {
    pub(crate) fn new(guard: Arc<Guard>) -> Self {
        Self { guard }
    }
}

/// What resolving a name comes to: the allowed addresses, or why none is.
type Resolved = Result<std::vec::IntoIter<SocketAddr>, Box<dyn std::error::Error + Send + Sync>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Resolved> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let first = resolved.first().map(SocketAddr::ip);
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| guard.allows(address.ip()))
                .collect();
            if allowed.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> = match first {
                    Some(address) => Box::new(Blocked(address)),
                    None => format!("{host} has no addresses").into(),
                };
                return Err(error);
            }
            Ok(allowed.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> bool {
        !Guard::default().allows(text.parse().expect("test addresses parse"))
    }

    #[test]
    fn special_purpose_ranges_are_blocked() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "fec0::1",
        ] {
            assert!(blocked(address), "{address} should be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
            "2001:db9::1",
        ] {
            assert!(!blocked(address), "{address} should be allowed");
        }
    }

    #[test]
    fn the_allowlist_opens_a_range() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().expect("valid cidr")]);
        assert!(guard.allows("127.0.0.1".parse().expect("valid ip")));
        assert!(!guard.allows("10.0.0.1".parse().expect("valid ip")));
    }
}
