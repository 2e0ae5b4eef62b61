//! Who is on the other end of a request, as far as limits care: the
//! client's address (seen through trusted proxies) and the device the app
//! says it runs on.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use anyhow::{Context, bail};

use super::FieldViolation;

/// What the edge learned about the caller's connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientContext {
    /// The client's address; `None` only off a TCP connection (in-process
    /// callers), which no network limit can apply to.
    pub ip: Option<IpAddr>,
    pub device: Option<DeviceId>,
}

impl ClientContext {
    /// The address as limits count it. An IPv6 customer gets a whole /64
    /// and may pick any address in it, so the /64 is what is counted.
    pub fn address_bucket(&self) -> Option<String> {
        match self.ip? {
            IpAddr::V4(v4) => Some(v4.to_string()),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & (u128::MAX << 64);
                Some(format!("{}/64", Ipv6Addr::from(network)))
            }
        }
    }
}

/// An app installation's own id, sent as request metadata. It is what
/// the app says, so it only narrows limits; it never widens them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(field: &str, raw: &str) -> Result<DeviceId, FieldViolation> {
        let plain = |c: char| c.is_ascii_alphanumeric() || "._:-".contains(c);
        if !(8..=128).contains(&raw.len()) || !raw.chars().all(plain) {
            return Err(FieldViolation::new(
                field,
                "must be 8 to 128 letters, digits, '.', '_', ':' or '-' (an installation id)",
            ));
        }
        Ok(DeviceId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An address block, such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A block, or a single address (`/32`, `/128`).
    pub fn parse(text: &str) -> anyhow::Result<Cidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim()
            .parse()
            .with_context(|| format!("{text:?} is not an address or address block"))?;
        let network = network.to_canonical();
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .with_context(|| format!("{text:?}: the prefix length must be 0 to {width}"))?,
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// The reverse proxies and load balancers whose `X-Forwarded-For` is
/// believed. Anyone else can write any address into that header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// A comma-separated list of blocks, e.g. `10.0.0.0/8,127.0.0.1/32`.
    pub fn parse(text: &str) -> anyhow::Result<TrustedProxies> {
        let blocks = text
            .split(',')
            .map(str::trim)
            .filter(|block| !block.is_empty())
            .map(Cidr::parse)
            .collect::<anyhow::Result<Vec<_>>>()?;
        if blocks.is_empty() {
            bail!("name at least one address block");
        }
        Ok(TrustedProxies(blocks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(address))
    }

    /// The client's address: the connection's peer, unless the peer is a
    /// trusted proxy; then the right-most `X-Forwarded-For` address that is
    /// not itself a trusted proxy (each proxy appends the address it saw,
    /// so everything left of that was written by the client and proves
    /// nothing). `forwarded_for` holds the header's lines in order. An
    /// unreadable entry ends the walk at the last address read.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let entries = forwarded_for
            .iter()
            .rev()
            .flat_map(|line| line.split(',').rev());
        for entry in entries {
            let Some(address) = forwarded_address(entry.trim()) else {
                break;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1` or `[2001:db8::1]:443`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let address = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(text: &str) -> TrustedProxies {
        TrustedProxies::parse(text).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        let other = proxies("10.0.0.0/8");

        for trusted in [none, other] {
            let client = trusted.client_ip(ip("198.51.100.9"), &["203.0.113.7"]);
            assert_eq!(client, ip("198.51.100.9"));
        }
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let trusted = proxies("10.0.0.0/8, 127.0.0.1/32");
        let peer = ip("127.0.0.1");

        // The client forged the first entry; the edge proxy appended the
        // real address, and an inner proxy its own.
        let chain = ["192.0.2.66, 203.0.113.7", "10.1.2.3"];
        assert_eq!(trusted.client_ip(peer, &chain), ip("203.0.113.7"));
        assert_eq!(trusted.client_ip(peer, &["203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(trusted.client_ip(peer, &[]), peer);
        // Only proxies in the chain: the left-most is as far as it goes.
        assert_eq!(
            trusted.client_ip(peer, &["10.0.0.5, 10.0.0.6"]),
            ip("10.0.0.5")
        );
        // Ports and IPv6 brackets, as some proxies write them.
        assert_eq!(
            trusted.client_ip(peer, &["[2001:db8::7]:443"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            trusted.client_ip(peer, &["203.0.113.7:4711"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_readable_hop() {
        let trusted = proxies("10.0.0.0/8");
        let peer = ip("10.0.0.1");

        assert_eq!(trusted.client_ip(peer, &["unknown"]), peer);
        assert_eq!(
            trusted.client_ip(peer, &["203.0.113.7, garbage, 10.0.0.2"]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_blocks() {
        let trusted = proxies("127.0.0.1/32");
        let mapped = ip("::ffff:127.0.0.1");

        assert_eq!(
            trusted.client_ip(mapped, &["203.0.113.7"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn blocks_parse_with_clear_errors() {
        assert!(
            Cidr::parse("10.0.0.0/8")
                .unwrap()
                .contains(ip("10.255.0.1"))
        );
        assert!(!Cidr::parse("10.0.0.0/8").unwrap().contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("192.0.2.1")));
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("2001:db8:1::1"))
        );
        assert!(
            !Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("10.0.0.1"))
        );
        assert!(Cidr::parse("192.0.2.1").unwrap().contains(ip("192.0.2.1")));

        let error = TrustedProxies::parse("10.0.0.0/33")
            .unwrap_err()
            .to_string();
        assert!(error.contains("prefix length must be 0 to 32"), "{error}");
        let error = TrustedProxies::parse("proxy.local")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not an address"), "{error}");
        assert!(TrustedProxies::parse(" , ").is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let client = |text: &str| ClientContext {
            ip: Some(ip(text)),
            device: None,
        };
        assert_eq!(
            client("2001:db8:1:2:aaaa::1").address_bucket(),
            client("2001:db8:1:2:bbbb::9").address_bucket()
        );
        assert_eq!(
            client("2001:db8:1:2::1").address_bucket().unwrap(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client("203.0.113.7").address_bucket().unwrap(),
            "203.0.113.7"
        );
    }

    #[test]
    fn device_ids_are_installation_ids() {
        assert!(DeviceId::parse("d", "3f0c2a9e-8d1b-4c55-9f57-1d2a3b4c5d6e").is_ok());
        assert!(DeviceId::parse("d", "short").is_err());
        assert!(DeviceId::parse("d", "has space inside").is_err());
        assert!(DeviceId::parse("d", &"x".repeat(129)).is_err());
    }
}
