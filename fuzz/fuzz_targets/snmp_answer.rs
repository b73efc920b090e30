//! sited's SNMP answer decoding (a datagram from a PDU or probe on the site LAN, possibly not
//! SNMP at all): hostile bytes must give a typed failure or exactly one reading per OID asked
//! for, never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sited::snmp::agent::{Reading, decode_answer};
use snmp2::Oid;

fuzz_target!(|data: &[u8]| {
    let oids = [
        Oid::from(&[1, 3, 6, 1, 2, 1, 1, 3, 0]).unwrap(),
        Oid::from(&[1, 3, 6, 1, 4, 1, 99999, 1, 0]).unwrap(),
    ];
    // The seeds answer request id 1 for community "public".
    for count in 1..=oids.len() {
        if let Ok(readings) = decode_answer(data, 1, b"public", &oids[..count]) {
            assert_eq!(readings.len(), count);
            for reading in &readings {
                if let Reading::Decimal(n) = reading {
                    assert!(n.is_finite());
                }
            }
        }
    }
});
