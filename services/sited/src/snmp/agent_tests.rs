//! Decoding answers: the fuzz target's seeds (`fuzz/seeds/snmp_answer`), each an answer to
//! request id 1 for community "public" asking for sysUpTime.0 and 1.3.6.1.4.1.99999.1.0.

use super::*;

macro_rules! seed {
    ($name:literal) => {
        include_bytes!(concat!("../../../../fuzz/seeds/snmp_answer/", $name))
    };
}

fn oids() -> Vec<Oid<'static>> {
    vec![
        Oid::from(&[1, 3, 6, 1, 2, 1, 1, 3, 0]).unwrap(),
        Oid::from(&[1, 3, 6, 1, 4, 1, 99999, 1, 0]).unwrap(),
    ]
}

fn decode(datagram: &[u8]) -> Result<Vec<Reading>, Failure> {
    decode_answer(datagram, 1, b"public", &oids())
}

#[test]
fn values_of_every_numeric_type_are_read() {
    assert_eq!(
        decode(seed!("two-values.bin")),
        Ok(vec![Reading::Integer(123_456), Reading::Integer(215)])
    );
    assert_eq!(
        decode(seed!("text-and-counter64.bin")),
        Ok(vec![Reading::Integer(1 << 40), Reading::Decimal(0.15)])
    );
}

#[test]
fn absent_values_are_read_as_absent() {
    assert_eq!(
        decode(seed!("no-such-object.bin")),
        Ok(vec![Reading::Integer(1), Reading::Absent("noSuchObject")])
    );
}

#[test]
fn an_error_status_is_a_refusal_naming_the_variable() {
    assert_eq!(
        decode(seed!("gen-err.bin")),
        Err(Failure::Refused(
            "error-status genErr for 1.3.6.1.4.1.99999.1.0".into()
        ))
    );
}

#[test]
fn anything_but_the_answer_to_this_request_is_malformed() {
    for datagram in [
        &seed!("other-request-id.bin")[..],
        seed!("get-request.bin"),
        seed!("truncated.bin"),
        b"",
        b"hello",
    ] {
        assert!(
            matches!(decode(datagram), Err(Failure::Malformed(_))),
            "{datagram:?}"
        );
    }
    assert!(matches!(
        decode_answer(seed!("two-values.bin"), 1, b"private", &oids()),
        Err(Failure::Malformed(_))
    ));
    // Asked for one variable, answered two.
    assert!(matches!(
        decode_answer(seed!("two-values.bin"), 1, b"public", &oids()[..1]),
        Err(Failure::Malformed(_))
    ));
}
