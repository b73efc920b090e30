//! ICMP "destination unreachable" for packets the IP plane cannot send on: what a router says,
//! so a client fails at once ("Destination Net Unreachable", "No route to destination") instead
//! of waiting for a timeout. The answers come from an address of the TUN's network ([`router`]),
//! as from a gateway: ICMPv4 type 3 code 0 on an IPv4 TUN (RFC 792), ICMPv6 type 1 code 0 on an
//! IPv6 one (RFC 4443). A packet of the other family than the TUN's address is dropped without
//! an answer (there is no address to answer from). As RFC 1122 and RFC 4443 § 2.4 require, never
//! in answer to an ICMP error, to a packet sent to a multicast or broadcast address, or from an
//! address that cannot be answered; at most one every [`SPACING`] (a flood of unroutable packets
//! is not answered in kind).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::packet::checksum;

/// Least time between two answers.
pub const SPACING: Duration = Duration::from_millis(10);

/// ICMPv6 errors quote as much of the packet as fits in the IPv6 minimum MTU (RFC 4443 § 3.1).
const IPV6_MIN_MTU: usize = 1280;
const ICMPV4: u8 = 1;
const ICMPV6: u8 = 58;

/// The rate limit of the answers.
#[derive(Debug, Default)]
pub struct Limiter {
    last: Mutex<Option<Instant>>,
}

impl Limiter {
    /// Whether an answer may go now (and if so, it counts as sent).
    pub fn allow(&self) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < SPACING) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// The address answers come from: the first of the TUN's `network` that is not the TUN's
/// `own` address (the kernel drops a packet that arrives from one of its own addresses). `None`
/// when the two are not of one family.
pub fn router(own: IpAddr, network: IpAddr) -> Option<IpAddr> {
    match (own, network) {
        (IpAddr::V4(own), IpAddr::V4(network)) => {
            let first = Ipv4Addr::from(u32::from(network).wrapping_add(1));
            let second = Ipv4Addr::from(u32::from(network).wrapping_add(2));
            Some(IpAddr::V4(if first == own { second } else { first }))
        }
        (IpAddr::V6(own), IpAddr::V6(network)) => {
            let first = Ipv6Addr::from(u128::from(network).wrapping_add(1));
            let second = Ipv6Addr::from(u128::from(network).wrapping_add(2));
            Some(IpAddr::V6(if first == own { second } else { first }))
        }
        _ => None,
    }
}

/// The "destination unreachable" from `router` answering `packet` (a well-formed packet that no
/// hub announces the destination of, or no circuit could carry), or `None` where none is due.
pub fn answer(router: IpAddr, packet: &[u8]) -> Option<Vec<u8>> {
    match router {
        IpAddr::V4(router) => answer_v4(router, packet),
        IpAddr::V6(router) => answer_v6(router, packet),
    }
}

/// ICMPv4 net unreachable (type 3, code 0): the IP header and 8 bytes of payload quoted.
fn answer_v4(router: Ipv4Addr, packet: &[u8]) -> Option<Vec<u8>> {
    if packet.first()? >> 4 != 4 || packet.len() < 20 {
        return None;
    }
    let header = usize::from(packet[0] & 0x0f) * 4;
    let source = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).ok()?);
    let destination = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[16..20]).ok()?);
    if !answerable_v4(source) || destination.is_multicast() || destination.is_broadcast() {
        return None;
    }
    // Answer an echo request, never an ICMP error (or anything ICMP but echo).
    if packet[9] == ICMPV4 && packet.get(header) != Some(&8) {
        return None;
    }
    let quoted = &packet[..packet.len().min(header + 8)];
    let mut message = vec![3, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(quoted);
    let sum = checksum(&message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = u16::try_from(20 + message.len()).expect("at most 20 + 8 + 68 bytes");
    let mut answer = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, ICMPV4, 0, 0];
    answer[2..4].copy_from_slice(&total.to_be_bytes());
    answer.extend_from_slice(&router.octets());
    answer.extend_from_slice(&source.octets());
    let sum = checksum(&answer);
    answer[10..12].copy_from_slice(&sum.to_be_bytes());
    answer.extend_from_slice(&message);
    Some(answer)
}

/// A source an error can go back to: not unspecified, multicast, broadcast or loopback.
fn answerable_v4(source: Ipv4Addr) -> bool {
    !(source.is_unspecified()
        || source.is_multicast()
        || source.is_broadcast()
        || source.is_loopback())
}

/// ICMPv6 no route to destination (type 1, code 0): as much of the packet quoted as keeps the
/// answer within 1280 bytes; the checksum covers the pseudo-header (RFC 8200 § 8.1).
fn answer_v6(router: Ipv6Addr, packet: &[u8]) -> Option<Vec<u8>> {
    if packet.first()? >> 4 != 6 || packet.len() < 40 {
        return None;
    }
    let source = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[8..24]).ok()?);
    let destination = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).ok()?);
    if source.is_unspecified() || source.is_multicast() || source.is_loopback() {
        return None;
    }
    if destination.is_multicast() || is_icmpv6_error(packet) {
        return None;
    }
    let quoted = &packet[..packet.len().min(IPV6_MIN_MTU - 40 - 8)];
    let mut message = vec![1, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(quoted);
    let length = u16::try_from(message.len()).expect("at most 1240 bytes");
    let mut pseudo = Vec::with_capacity(40 + message.len());
    pseudo.extend_from_slice(&router.octets());
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&u32::from(length).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    pseudo.extend_from_slice(&message);
    let sum = checksum(&pseudo);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut answer = vec![0x60, 0, 0, 0];
    answer.extend_from_slice(&length.to_be_bytes());
    answer.extend_from_slice(&[ICMPV6, 64]);
    answer.extend_from_slice(&router.octets());
    answer.extend_from_slice(&source.octets());
    answer.extend_from_slice(&message);
    Some(answer)
}

/// Whether `packet` (IPv6) carries an ICMPv6 error (types 0–127), past the usual extension
/// headers; a chain that cannot be followed counts as one, so it is never answered.
fn is_icmpv6_error(packet: &[u8]) -> bool {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const DESTINATION_OPTIONS: u8 = 60;
    let mut next = packet[6];
    let mut at = 40;
    loop {
        match next {
            ICMPV6 => return packet.get(at).is_none_or(|kind| *kind < 128),
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS => {
                let (Some(&following), Some(&length)) = (packet.get(at), packet.get(at + 1)) else {
                    return true;
                };
                next = following;
                at += (usize::from(length) + 1) * 8;
            }
            FRAGMENT => {
                let Some(&following) = packet.get(at) else {
                    return true;
                };
                let offset = packet
                    .get(at + 2..at + 4)
                    .map_or(1, |field| u16::from_be_bytes([field[0], field[1]]) >> 3);
                if offset != 0 {
                    // A later fragment: its upper-layer header is elsewhere; say nothing.
                    return true;
                }
                next = following;
                at += 8;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_plane::packet::{self, tests::ipv4};

    #[test]
    fn an_answer_is_a_valid_icmp_error_quoting_the_packet() {
        let mut ping = ipv4(
            [10, 77, 1, 1],
            [10, 77, 9, 9],
            &[8, 0, 0, 0, 0, 1, 0, 1, 9, 9],
        );
        ping[9] = 1;
        ping[10..12].fill(0);
        let sum = checksum(&ping[..20]);
        ping[10..12].copy_from_slice(&sum.to_be_bytes());
        let router: IpAddr = "10.77.1.1".parse().unwrap();
        let answer = answer(router, &ping).unwrap();
        let header = packet::parse(&answer).unwrap();
        assert_eq!(header.source, router);
        assert_eq!(header.destination, "10.77.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(&answer[20..22], &[3, 0]);
        assert_eq!(checksum(&answer[20..]), 0, "ICMP checksum");
        assert_eq!(&answer[28..], &ping[..28], "header and 8 bytes quoted");
        // Never in answer to an ICMP error, nor to IPv6 on an IPv4 TUN.
        assert_eq!(super::answer(router, &answer), None);
        assert_eq!(super::answer(router, &ipv6_udp(64)), None);
    }

    #[test]
    fn ipv4_multicast_broadcast_and_unanswerable_sources_get_no_answer() {
        let router: IpAddr = "10.77.0.1".parse().unwrap();
        assert!(super::answer(router, &ipv4([10, 77, 1, 1], [10, 9, 9, 9], &[0; 8])).is_some());
        for (source, destination) in [
            ([10, 77, 1, 1], [224, 0, 0, 251]),
            ([10, 77, 1, 1], [255, 255, 255, 255]),
            ([0, 0, 0, 0], [10, 9, 9, 9]),
            ([127, 0, 0, 1], [10, 9, 9, 9]),
        ] {
            assert_eq!(
                super::answer(router, &ipv4(source, destination, &[0; 8])),
                None
            );
        }
    }

    /// A UDP packet from fd77:1::1 to fd77:9::9 with `payload` bytes of payload.
    fn ipv6_udp(payload: usize) -> Vec<u8> {
        let mut packet = vec![0x60, 0, 0, 0];
        packet.extend_from_slice(&u16::try_from(payload).unwrap().to_be_bytes());
        packet.extend_from_slice(&[17, 64]);
        packet.extend_from_slice(&"fd77:1::1".parse::<Ipv6Addr>().unwrap().octets());
        packet.extend_from_slice(&"fd77:9::9".parse::<Ipv6Addr>().unwrap().octets());
        packet.extend((0..payload).map(|i| i as u8));
        packet
    }

    #[test]
    fn an_ipv6_answer_is_a_valid_icmpv6_error_within_the_minimum_mtu() {
        let router: IpAddr = "fd77::1".parse().unwrap();
        for payload in [8, 1500] {
            let sent = ipv6_udp(payload);
            let answer = super::answer(router, &sent).unwrap();
            let header = packet::parse(&answer).unwrap();
            assert_eq!(header.source, router);
            assert_eq!(header.destination, "fd77:1::1".parse::<IpAddr>().unwrap());
            assert_eq!(answer[6], ICMPV6);
            assert_eq!(&answer[40..42], &[1, 0], "type 1, code 0");
            assert!(answer.len() <= IPV6_MIN_MTU);
            let length = usize::from(u16::from_be_bytes([answer[4], answer[5]]));
            assert_eq!(length, answer.len() - 40);
            assert_eq!(
                &answer[48..],
                &sent[..sent.len().min(IPV6_MIN_MTU - 48)],
                "the packet quoted"
            );
            // The checksum over the pseudo-header and the message is right.
            let mut pseudo = answer[8..40].to_vec();
            pseudo.extend_from_slice(&u32::try_from(length).unwrap().to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
            pseudo.extend_from_slice(&answer[40..]);
            assert_eq!(checksum(&pseudo), 0, "ICMPv6 checksum");
            // Never in answer to an ICMPv6 error, nor to IPv4 on an IPv6 TUN.
            assert_eq!(super::answer(router, &answer), None);
        }
        let v4 = ipv4([10, 77, 1, 1], [10, 9, 9, 9], &[0; 8]);
        assert_eq!(super::answer(router, &v4), None);
    }

    #[test]
    fn ipv6_errors_behind_extension_headers_multicast_and_fragments_get_no_answer() {
        let router: IpAddr = "fd77::1".parse().unwrap();
        // An echo request is answered; an error behind a hop-by-hop header is not.
        let mut echo = ipv6_udp(8);
        echo[6] = ICMPV6;
        echo[40] = 128;
        assert!(super::answer(router, &echo).is_some());
        let mut behind = ipv6_udp(16);
        behind[6] = 0;
        behind[40..42].copy_from_slice(&[ICMPV6, 0]);
        behind[48] = 1;
        assert_eq!(super::answer(router, &behind), None);
        behind[48] = 128;
        assert!(super::answer(router, &behind).is_some());
        // A later fragment is not answered; to a multicast group, nothing.
        let mut fragment = ipv6_udp(16);
        fragment[6] = 44;
        fragment[40..44].copy_from_slice(&[17, 0, 0, 8]);
        assert_eq!(super::answer(router, &fragment), None);
        let mut multicast = ipv6_udp(8);
        multicast[24] = 0xff;
        assert_eq!(super::answer(router, &multicast), None);
        // A truncated extension chain is never answered.
        let mut cut = ipv6_udp(0);
        cut[6] = 0;
        assert_eq!(super::answer(router, &cut), None);
    }

    #[test]
    fn answers_come_from_the_tun_network_never_the_tun_address() {
        let at = |own: &str, network: &str| {
            router(own.parse().unwrap(), network.parse().unwrap()).map(|a| a.to_string())
        };
        assert_eq!(at("10.77.1.1", "10.77.0.0").as_deref(), Some("10.77.0.1"));
        assert_eq!(at("10.77.0.1", "10.77.0.0").as_deref(), Some("10.77.0.2"));
        assert_eq!(at("fd77::5", "fd77::").as_deref(), Some("fd77::1"));
        assert_eq!(at("fd77::1", "fd77::").as_deref(), Some("fd77::2"));
        assert_eq!(at("10.77.0.1", "fd77::"), None);
    }

    #[test]
    fn answers_are_spaced() {
        let limiter = Limiter::default();
        assert!(limiter.allow());
        assert!(!limiter.allow());
        std::thread::sleep(SPACING);
        assert!(limiter.allow());
    }
}
