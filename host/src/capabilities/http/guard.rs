//! The SSRF guard: which addresses a handler's request may connect to. Pure logic.
//!
//! Always on. A request's host is resolved once; every address that is not public unicast
//! (loopback, private, link-local and so the cloud metadata address 169.254.169.254, CGNAT,
//! ULA, multicast, unspecified, documentation, reserved, IPv4 in IPv6 of any form, NAT64 and
//! 6to4) is dropped, and the connection goes to one of the addresses left, never to a second
//! resolution (no DNS rebinding). The only way through to a non-public address is an operator
//! setting, `--allow-private-network CIDR`; plain `http://` goes only to such networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// What kind of address a non-public address is, for the log's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7 (ULA).
    Private,
    /// 169.254/16 (the metadata address), fe80::/10.
    LinkLocal,
    /// 100.64/10.
    SharedCgnat,
    /// 224/4, ff00::/8, 255.255.255.255.
    Multicast,
    /// Documentation, benchmarking, protocol-assignment and reserved ranges; NAT64, 6to4,
    /// Teredo, site-local: addresses that are not plain public unicast.
    Reserved,
}

impl Special {
    /// The word the log uses.
    pub fn describe(self) -> &'static str {
        match self {
            Special::Unspecified => "unspecified",
            Special::Loopback => "loopback",
            Special::Private => "private",
            Special::LinkLocal => "link-local",
            Special::SharedCgnat => "carrier-grade NAT",
            Special::Multicast => "multicast or broadcast",
            Special::Reserved => "reserved",
        }
    }
}

/// Returns the IPv4 address an IPv6 address embeds as v4-mapped (`::ffff:a.b.c.d`) or
/// v4-compatible (`::a.b.c.d`), or the address itself: what the guard and the operator's
/// networks are checked against.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
            let compatible = s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1);
            if mapped || compatible {
                let [.., a, b, c, d] = v6.octets();
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            } else {
                ip
            }
        }
        v4 => v4,
    }
}

/// Classifies `ip`: `None` for a public unicast address, else what it is.
pub fn classify(ip: IpAddr) -> Option<Special> {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Special> {
    const TABLE: &[([u8; 4], u32, Special)] = &[
        ([0, 0, 0, 0], 8, Special::Unspecified),
        ([10, 0, 0, 0], 8, Special::Private),
        ([100, 64, 0, 0], 10, Special::SharedCgnat),
        ([127, 0, 0, 0], 8, Special::Loopback),
        ([169, 254, 0, 0], 16, Special::LinkLocal),
        ([172, 16, 0, 0], 12, Special::Private),
        ([192, 0, 0, 0], 24, Special::Reserved),
        ([192, 0, 2, 0], 24, Special::Reserved),
        ([192, 88, 99, 0], 24, Special::Reserved),
        ([192, 168, 0, 0], 16, Special::Private),
        ([198, 18, 0, 0], 15, Special::Reserved),
        ([198, 51, 100, 0], 24, Special::Reserved),
        ([203, 0, 113, 0], 24, Special::Reserved),
        ([224, 0, 0, 0], 4, Special::Multicast),
        ([255, 255, 255, 255], 32, Special::Multicast),
        ([240, 0, 0, 0], 4, Special::Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, kind)| *kind)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v6(ip: Ipv6Addr) -> Option<Special> {
    if ip.is_unspecified() {
        return Some(Special::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Special::Loopback);
    }
    let table: [(Ipv6Addr, u32, Special); 9] = [
        (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
            Special::LinkLocal,
        ),
        (
            Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
            7,
            Special::Private,
        ),
        (
            Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
            8,
            Special::Multicast,
        ),
        // NAT64 (well-known and local-use): a way to reach any IPv4 address.
        (
            Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
            96,
            Special::Reserved,
        ),
        (
            Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
            48,
            Special::Reserved,
        ),
        // 6to4, which embeds an IPv4 address too.
        (
            Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
            16,
            Special::Reserved,
        ),
        // Protocol assignments (Teredo among them) and documentation.
        (
            Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
            23,
            Special::Reserved,
        ),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
            32,
            Special::Reserved,
        ),
        (
            Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
            20,
            Special::Reserved,
        ),
    ];
    if let Some((_, _, kind)) = table.iter().find(|(net, p, _)| in_v6(ip, *net, *p)) {
        return Some(*kind);
    }
    // Only 2000::/3 is global unicast; everything else is reserved (site-local, discard, ...).
    let global = Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0);
    (!in_v6(ip, global, 3)).then_some(Special::Reserved)
}

/// The operator's exceptions: networks a request may reach although they are not public,
/// and the only networks plain `http://` may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateNetworks {
    nets: Vec<IpNet>,
}

impl PrivateNetworks {
    /// The networks given (an IPv4 network also admits its v4-mapped IPv6 form).
    pub fn new(nets: Vec<IpNet>) -> PrivateNetworks {
        PrivateNetworks { nets }
    }

    /// Parses `CIDR` or a bare address (a /32 or /128).
    pub fn parse_one(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map(|n| n.trunc())
            .map_err(|_| format!("{text:?} is not a network (CIDR like 10.0.0.0/8) or address"))
    }

    /// Whether `ip` lies in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The networks, as given.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// What the guard says of one resolved address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Connect to it.
    Allowed,
    /// Not public, and not in an operator-allowed network.
    Blocked(Special),
    /// Public, but the request is plain `http://`, which goes to operator networks only.
    PlainHttpToInternet,
}

/// Decides whether a request (`tls` or plain) may connect to `ip`.
pub fn check(ip: IpAddr, tls: bool, operator: &PrivateNetworks) -> Verdict {
    if operator.contains(ip) {
        return Verdict::Allowed;
    }
    match classify(ip) {
        Some(kind) => Verdict::Blocked(kind),
        None if tls => Verdict::Allowed,
        None => Verdict::PlainHttpToInternet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn non_public_v4_addresses_are_blocked() {
        for (addr, kind) in [
            ("127.0.0.1", Special::Loopback),
            ("127.255.255.254", Special::Loopback),
            ("10.1.2.3", Special::Private),
            ("172.16.0.1", Special::Private),
            ("172.31.255.255", Special::Private),
            ("192.168.1.1", Special::Private),
            ("169.254.169.254", Special::LinkLocal),
            ("100.64.0.1", Special::SharedCgnat),
            ("100.127.255.255", Special::SharedCgnat),
            ("0.0.0.0", Special::Unspecified),
            ("0.1.2.3", Special::Unspecified),
            ("224.0.0.1", Special::Multicast),
            ("255.255.255.255", Special::Multicast),
            ("192.0.2.7", Special::Reserved),
            ("198.18.0.1", Special::Reserved),
            ("240.0.0.1", Special::Reserved),
        ] {
            assert_eq!(classify(ip(addr)), Some(kind), "{addr}");
        }
    }

    #[test]
    fn public_v4_addresses_pass() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
        ] {
            assert_eq!(classify(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn non_public_v6_addresses_are_blocked_including_every_v4_in_v6_form() {
        for (addr, kind) in [
            ("::1", Special::Loopback),
            ("::", Special::Unspecified),
            ("fe80::1", Special::LinkLocal),
            ("fd00:ec2::254", Special::Private),
            ("fc00::1", Special::Private),
            ("ff02::1", Special::Multicast),
            ("::ffff:127.0.0.1", Special::Loopback),
            ("::ffff:169.254.169.254", Special::LinkLocal),
            ("::ffff:10.0.0.1", Special::Private),
            ("::127.0.0.1", Special::Loopback),
            ("64:ff9b::7f00:1", Special::Reserved),
            ("64:ff9b::808:808", Special::Reserved),
            ("2002:7f00:1::", Special::Reserved),
            ("2001:db8::1", Special::Reserved),
            ("2001::1", Special::Reserved),
            ("fec0::1", Special::Reserved),
            ("100::1", Special::Reserved),
        ] {
            assert_eq!(classify(ip(addr)), Some(kind), "{addr}");
        }
        assert_eq!(classify(ip("2606:4700:4700::1111")), None);
        assert_eq!(classify(ip("::ffff:8.8.8.8")), None);
    }

    #[test]
    fn the_operator_can_open_a_private_network_and_only_that() {
        let operator =
            PrivateNetworks::new(vec![PrivateNetworks::parse_one("127.0.0.0/8").unwrap()]);
        assert_eq!(check(ip("127.0.0.1"), false, &operator), Verdict::Allowed);
        assert_eq!(
            check(ip("::ffff:127.0.0.1"), true, &operator),
            Verdict::Allowed
        );
        assert_eq!(
            check(ip("10.0.0.1"), true, &operator),
            Verdict::Blocked(Special::Private)
        );
        assert_eq!(
            check(ip("::1"), true, &operator),
            Verdict::Blocked(Special::Loopback)
        );
        assert_eq!(
            check(ip("127.0.0.1"), true, &PrivateNetworks::default()),
            Verdict::Blocked(Special::Loopback)
        );
    }

    #[test]
    fn plain_http_never_goes_to_the_internet() {
        let none = PrivateNetworks::default();
        assert_eq!(
            check(ip("8.8.8.8"), false, &none),
            Verdict::PlainHttpToInternet
        );
        assert_eq!(check(ip("8.8.8.8"), true, &none), Verdict::Allowed);
    }

    #[test]
    fn operator_networks_parse_as_cidrs_or_addresses() {
        assert_eq!(
            PrivateNetworks::parse_one("10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            PrivateNetworks::parse_one("10.1.2.3/8")
                .unwrap()
                .to_string(),
            "10.0.0.0/8"
        );
        assert!(PrivateNetworks::parse_one("ten").is_err());
    }
}
