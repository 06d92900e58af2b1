//! Where deliveries may go: http(s) URLs whose addresses are public, unless
//! the operator allows private ones (tests, on-premises receivers). The
//! check is made when a subscription is created or changed and again on
//! every connection, through the HTTP client's resolver, because what a
//! name resolves to can change after it was checked.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

/// Longest URL a subscription may have.
pub const MAX_URL_LEN: usize = 2048;

/// Which addresses deliveries may reach besides public ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Every private, loopback and link-local address (`--webhook-allow-private`).
    pub allow_private: bool,
    /// Networks allowed even though private (`--webhook-allow-network 10.1.0.0/16`).
    pub allowed_networks: Vec<Network>,
}

/// An address range in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a network such as 10.1.0.0/16 or fd00::/8");
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let address: IpAddr = address.trim().parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() { max } else { prefix.trim().parse().map_err(|_| bad())? };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { address, prefix })
    }
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why an address is not public, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address written as IPv6 is judged as the IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xff00 == 0xff00 {
                Some("multicast")
            } else if v6.segments()[..6] == [0, 0, 0, 0, 0, 0] {
                Some("IPv4-compatible (deprecated)")
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("broadcast, multicast or reserved")
    } else {
        None
    }
}

impl AddressPolicy {
    /// Why deliveries may not reach `ip` (`None`: they may).
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        let why = non_public(ip)?;
        if self.allow_private || self.allowed_networks.iter().any(|n| n.contains(ip)) {
            return None;
        }
        Some(format!(
            "{ip} is a {why} address; deliveries go to public addresses only, unless the server runs with \
             --webhook-allow-private or --webhook-allow-network"
        ))
    }
}

/// Why a subscription's URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("url: {0}")]
pub struct TargetError(pub String);

/// Parses and checks a subscription URL's form: absolute http(s), a host,
/// no credentials (the URL is on the record in clear), no fragment.
pub fn parse(url: &str) -> Result<Url, TargetError> {
    let bad = |m: String| Err(TargetError(m));
    if url.len() > MAX_URL_LEN {
        return bad(format!("at most {MAX_URL_LEN} characters"));
    }
    let parsed = Url::parse(url).map_err(|e| TargetError(format!("{url:?} is not an absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return bad(format!("only http and https URLs are delivered to, not {}:", parsed.scheme()));
    }
    if parsed.host().is_none() {
        return bad("the URL has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad(
            "credentials in the URL would be on the record in clear; the signature authenticates deliveries".into()
        );
    }
    if parsed.fragment().is_some() {
        return bad("a URL with a #fragment".into());
    }
    Ok(parsed)
}

/// Checks that every address `url`'s host resolves to may be delivered to.
pub async fn check(url: &Url, policy: &AddressPolicy) -> Result<(), TargetError> {
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| TargetError(format!("cannot resolve {name}: {e}")))?
            .map(|a| a.ip())
            .collect(),
        None => return Err(TargetError("the URL has no host".into())),
    };
    if addresses.is_empty() {
        return Err(TargetError(format!("{} resolves to no address", url.host_str().unwrap_or_default())));
    }
    for ip in addresses {
        if let Some(why) = policy.refuses(ip) {
            let host = url.host_str().unwrap_or_default();
            return Err(TargetError(if host.trim_matches(['[', ']']) == ip.to_string() {
                why
            } else {
                format!("{host} resolves to {why}")
            }));
        }
    }
    Ok(())
}

/// The HTTP client's resolver: resolves as the system does and refuses a
/// name with any address the policy refuses, so a name that changed to
/// point inside the network is not connected to.
pub struct CheckedResolver(pub Arc<AddressPolicy>);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(why) = found.iter().find_map(|a| policy.refuses(a.ip())) {
                return Err(format!("{host} resolves to {why}").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an IP-literal URL's address is refused (the resolver never sees
/// those), for the check before each delivery.
pub fn literal_refused(url: &Url, policy: &AddressPolicy) -> Option<String> {
    let ip = match url.host()? {
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    policy.refuses(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_mapped_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(non_public(ip).is_some(), "{ip}");
            assert!(AddressPolicy::default().refuses(ip).is_some(), "{ip}");
            assert!(AddressPolicy { allow_private: true, ..Default::default() }.refuses(ip).is_none(), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert_eq!(non_public(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn an_allowed_network_lets_only_its_addresses_through() {
        let policy = AddressPolicy { allow_private: false, allowed_networks: vec!["10.1.0.0/16".parse().unwrap()] };
        assert!(policy.refuses("10.1.200.3".parse().unwrap()).is_none());
        assert!(policy.refuses("10.2.0.1".parse().unwrap()).is_some());
        assert!("10.1.0.0/33".parse::<Network>().is_err());
        assert_eq!("fd00::/8".parse::<Network>().unwrap().prefix, 8);
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        assert!(parse("https://hooks.example.com/govledger?team=risk").is_ok());
        for bad in
            ["ftp://example.com/", "https://user:pw@example.com/", "/relative", "https://example.com/#x", "mailto:a@b"]
        {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
