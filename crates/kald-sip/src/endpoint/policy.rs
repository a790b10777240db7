//! Who may call: trunks (the carrier's or SBC's addresses) and the numbers they may dial.
//!
//! kald is not an open relay. A request out of a dialog is served only when its source
//! address is inside a configured trunk network, and an INVITE only when the dialled number
//! belongs to an entry point (an IVR flow). Everything else is refused at once and counted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// One carrier or SBC connection allowed to send calls to kald.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// A name for logs and statistics (e.g. `"carrier-a"`).
    pub name: String,
    /// The networks requests may come from.
    pub networks: Vec<IpNet>,
    /// Dialled number → entry point; the first match wins.
    pub numbers: Vec<NumberRoute>,
}

/// A dialled-number pattern and the entry point (IVR flow) it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRoute {
    /// `"70101010"` matches exactly, `"7010*"` by prefix, `"*"` any number.
    pub pattern: String,
    /// The entry point's name (the flow file's stem, e.g. `"hovednummer"`).
    pub entry_point: String,
}

impl NumberRoute {
    /// A route from a pattern to an entry point.
    pub fn new(pattern: impl Into<String>, entry_point: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            entry_point: entry_point.into(),
        }
    }

    fn matches(&self, number: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => number.starts_with(prefix),
            None => self.pattern == number,
        }
    }
}

impl Trunk {
    /// The default for a fresh checkout: calls from loopback to any number go to `entry_point`.
    pub fn loopback(entry_point: &str) -> Self {
        Self {
            name: "loopback".into(),
            networks: vec![
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
            ],
            numbers: vec![NumberRoute::new("*", entry_point)],
        }
    }

    /// Whether `addr` is inside one of this trunk's networks.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.networks.iter().any(|n| n.contains(&addr))
    }

    /// The entry point for a dialled number, if any.
    pub fn route(&self, number: &str) -> Option<&str> {
        let number = normalise_number(number);
        self.numbers
            .iter()
            .find(|r| r.matches(&number))
            .map(|r| r.entry_point.as_str())
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Strip visual separators from a dialled number (RFC 3966 allows `-`, `.`, `(`, `)`).
fn normalise_number(number: &str) -> String {
    number
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_trunk_allows_only_loopback() {
        let t = Trunk::loopback("hovednummer");
        assert!(t.allows("127.0.0.1".parse().unwrap()));
        assert!(t.allows("127.1.2.3".parse().unwrap()));
        assert!(t.allows("::1".parse().unwrap()));
        assert!(t.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!t.allows("192.0.2.1".parse().unwrap()));
        assert!(!t.allows("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn number_routes() {
        let t = Trunk {
            name: "c".into(),
            networks: vec![],
            numbers: vec![
                NumberRoute::new("+4570101010", "hovednummer"),
                NumberRoute::new("7020*", "jobcenter"),
            ],
        };
        assert_eq!(t.route("+45-7010-1010"), Some("hovednummer"));
        assert_eq!(t.route("70201234"), Some("jobcenter"));
        assert_eq!(t.route("12345678"), None);
    }
}
