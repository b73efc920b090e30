//! The IP header fields the IP plane decides on: version, addresses, lengths, checked before a
//! packet goes anywhere. Packets come from the kernel (the TUN) or from another hub, which may be
//! compromised: every length is checked against the bytes actually there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a well-formed packet says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// The sender's address.
    pub source: IpAddr,
    /// The receiver's address.
    pub destination: IpAddr,
}

/// Why bytes are not a well-formed IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than the fixed header of its version (or empty).
    #[error("shorter than an IP header")]
    Truncated,
    /// Neither 4 nor 6.
    #[error("IP version {0}")]
    Version(u8),
    /// An IPv4 header length below 20 bytes or beyond the packet.
    #[error("IPv4 header length {0} bytes")]
    HeaderLength(usize),
    /// The length the header gives is not the packet's length.
    #[error("the header says {said} bytes, the packet has {actual}")]
    Length {
        /// From the header.
        said: usize,
        /// Received.
        actual: usize,
    },
    /// The IPv4 header checksum does not add up.
    #[error("bad IPv4 header checksum")]
    Checksum,
}

/// The header of `packet`, if it is a well-formed IPv4 or IPv6 packet.
pub fn parse(packet: &[u8]) -> Result<PacketHeader, Malformed> {
    match packet.first().map(|byte| byte >> 4) {
        None => Err(Malformed::Truncated),
        Some(4) => parse_v4(packet),
        Some(6) => parse_v6(packet),
        Some(other) => Err(Malformed::Version(other)),
    }
}

fn parse_v4(packet: &[u8]) -> Result<PacketHeader, Malformed> {
    if packet.len() < 20 {
        return Err(Malformed::Truncated);
    }
    let header = usize::from(packet[0] & 0x0f) * 4;
    if header < 20 || header > packet.len() {
        return Err(Malformed::HeaderLength(header));
    }
    let said = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if said != packet.len() {
        return Err(Malformed::Length {
            said,
            actual: packet.len(),
        });
    }
    if checksum(&packet[..header]) != 0 {
        return Err(Malformed::Checksum);
    }
    let address = |at: usize| {
        let octets: [u8; 4] = packet[at..at + 4].try_into().expect("4 bytes");
        IpAddr::V4(Ipv4Addr::from(octets))
    };
    Ok(PacketHeader {
        source: address(12),
        destination: address(16),
    })
}

fn parse_v6(packet: &[u8]) -> Result<PacketHeader, Malformed> {
    if packet.len() < 40 {
        return Err(Malformed::Truncated);
    }
    let said = 40 + usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    if said != packet.len() {
        return Err(Malformed::Length {
            said,
            actual: packet.len(),
        });
    }
    let address = |at: usize| {
        let octets: [u8; 16] = packet[at..at + 16].try_into().expect("16 bytes");
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    Ok(PacketHeader {
        source: address(8),
        destination: address(24),
    })
}

/// The Internet checksum of `header`: 0 over bytes whose checksum field is right.
pub(crate) fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4 packet from `source` to `destination` with `payload`, checksum set.
    pub(crate) fn ipv4(source: [u8; 4], destination: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
        packet.extend_from_slice(&source);
        packet.extend_from_slice(&destination);
        packet.extend_from_slice(payload);
        let length = u16::try_from(packet.len()).unwrap();
        packet[2..4].copy_from_slice(&length.to_be_bytes());
        let sum = checksum(&packet[..20]);
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
        packet
    }

    #[test]
    fn well_formed_headers_give_their_addresses() {
        let packet = ipv4([10, 77, 1, 1], [10, 77, 3, 9], b"hello");
        assert_eq!(
            parse(&packet),
            Ok(PacketHeader {
                source: "10.77.1.1".parse().unwrap(),
                destination: "10.77.3.9".parse().unwrap(),
            })
        );
        let mut v6 = vec![0x60, 0, 0, 0, 0, 2, 17, 64];
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(b"hi");
        assert_eq!(
            parse(&v6).unwrap().destination,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn malformed_packets_are_refused_by_kind() {
        let good = ipv4([10, 77, 1, 1], [10, 77, 3, 9], b"hello");
        assert_eq!(parse(&[]), Err(Malformed::Truncated));
        assert_eq!(parse(&good[..19]), Err(Malformed::Truncated));
        assert_eq!(parse(&[0x55; 40]), Err(Malformed::Version(5)));
        let mut short_header = good.clone();
        short_header[0] = 0x44;
        assert_eq!(parse(&short_header), Err(Malformed::HeaderLength(16)));
        let mut long_header = good.clone();
        long_header[0] = 0x4f;
        assert_eq!(parse(&long_header), Err(Malformed::HeaderLength(60)));
        assert!(matches!(
            parse(&good[..24]),
            Err(Malformed::Length {
                said: 25,
                actual: 24
            })
        ));
        let mut tampered = good.clone();
        tampered[19] = 10;
        assert_eq!(parse(&tampered), Err(Malformed::Checksum));
        let mut v6 = vec![0x60, 0, 0, 0, 0, 9, 17, 64];
        v6.extend_from_slice(&[0; 32]);
        assert!(matches!(parse(&v6), Err(Malformed::Length { .. })));
        assert_eq!(parse(&v6[..39]), Err(Malformed::Truncated));
    }
}
