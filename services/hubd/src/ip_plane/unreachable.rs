//! ICMP "destination unreachable" for packets the IP plane cannot send on: what a router says,
//! so a client fails at once ("Destination Net Unreachable") instead of waiting for a timeout.
//! The answers come from an address of the TUN's network ([`router`]), as from a gateway.
//! IPv4 only (an IPv6 packet is dropped without an answer), never in answer to an ICMP error,
//! at most one every [`SPACING`] (a flood of unroutable packets is not answered in kind).

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::packet::checksum;

/// Least time between two answers.
pub const SPACING: Duration = Duration::from_millis(10);

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
/// `own` address (the kernel drops a packet that arrives from one of its own addresses).
pub fn router(own: Ipv4Addr, network: Ipv4Addr) -> Ipv4Addr {
    let first = Ipv4Addr::from(u32::from(network).wrapping_add(1));
    if first == own {
        Ipv4Addr::from(u32::from(network).wrapping_add(2))
    } else {
        first
    }
}

/// The ICMP "net unreachable" (type 3, code 0) from `router` answering `packet` (a well-formed
/// IPv4 packet that no hub announces the destination of, or no circuit could carry): its IP
/// header and first 8 bytes of payload quoted. `None` for IPv6 and for ICMP errors.
pub fn answer(router: Ipv4Addr, packet: &[u8]) -> Option<Vec<u8>> {
    if packet.first()? >> 4 != 4 || packet.len() < 20 {
        return None;
    }
    let header = usize::from(packet[0] & 0x0f) * 4;
    let icmp = 1;
    // Answer an echo request, never an ICMP error (or anything ICMP but echo).
    if packet[9] == icmp && packet.get(header) != Some(&8) {
        return None;
    }
    let quoted = &packet[..packet.len().min(header + 8)];
    let mut message = vec![3, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(quoted);
    let sum = checksum(&message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = u16::try_from(20 + message.len()).expect("at most 20 + 8 + 68 bytes");
    let mut answer = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, icmp, 0, 0];
    answer[2..4].copy_from_slice(&total.to_be_bytes());
    answer.extend_from_slice(&router.octets());
    answer.extend_from_slice(&packet[12..16]);
    let sum = checksum(&answer);
    answer[10..12].copy_from_slice(&sum.to_be_bytes());
    answer.extend_from_slice(&message);
    Some(answer)
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
        let router = Ipv4Addr::new(10, 77, 1, 1);
        let answer = answer(router, &ping).unwrap();
        let header = packet::parse(&answer).unwrap();
        assert_eq!(header.source, std::net::IpAddr::V4(router));
        assert_eq!(
            header.destination,
            "10.77.1.1".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(&answer[20..22], &[3, 0]);
        assert_eq!(checksum(&answer[20..]), 0, "ICMP checksum");
        assert_eq!(&answer[28..], &ping[..28], "header and 8 bytes quoted");
        // Never in answer to an ICMP error, nor to IPv6.
        assert_eq!(super::answer(router, &answer), None);
        assert_eq!(super::answer(router, &[0x60; 40]), None);
    }

    #[test]
    fn answers_come_from_the_tun_network_never_the_tun_address() {
        let network = Ipv4Addr::new(10, 77, 0, 0);
        assert_eq!(
            router(Ipv4Addr::new(10, 77, 1, 1), network),
            Ipv4Addr::new(10, 77, 0, 1)
        );
        assert_eq!(
            router(Ipv4Addr::new(10, 77, 0, 1), network),
            Ipv4Addr::new(10, 77, 0, 2)
        );
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
