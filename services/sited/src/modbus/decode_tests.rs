//! Decoding every type, both word orders, scaling and the range check.

use appliance::profile::{Finite, ModbusRegister, ModbusTable, ModbusType, WordOrder};

use super::*;

fn entry(value_type: ModbusType) -> ModbusRegister {
    ModbusRegister {
        sensor: "t".into(),
        unit: 1,
        table: if value_type == ModbusType::Bool {
            ModbusTable::Discrete
        } else {
            ModbusTable::Holding
        },
        address: 0,
        value_type,
        word_order: None,
        scale: None,
        offset: None,
        unit_of_measure: None,
        min: None,
        max: None,
    }
}

fn finite(value: f64) -> Option<Finite> {
    Some(Finite::new(value).unwrap())
}

fn number(entry: &ModbusRegister, words: &[u16]) -> f64 {
    match decode(entry, Raw::Registers(words)) {
        Ok(Value::Number(n)) => n,
        other => panic!("{words:?}: {other:?}"),
    }
}

#[test]
fn sixteen_bit_types() {
    assert_eq!(number(&entry(ModbusType::U16), &[0xFFFE]), 65534.0);
    assert_eq!(number(&entry(ModbusType::I16), &[0xFFFE]), -2.0);
    assert_eq!(number(&entry(ModbusType::I16), &[0x7FFF, 9]), 32767.0);
}

#[test]
fn thirty_two_bit_types_in_both_word_orders() {
    let mut u32_big = entry(ModbusType::U32);
    assert_eq!(number(&u32_big, &[0x0001, 0x0002]), 65538.0);
    u32_big.word_order = Some(WordOrder::Little);
    assert_eq!(number(&u32_big, &[0x0002, 0x0001]), 65538.0);

    let i32_big = entry(ModbusType::I32);
    assert_eq!(number(&i32_big, &[0xFFFF, 0xFFFE]), -2.0);

    let bits = 21.5f32.to_bits();
    let (high, low) = ((bits >> 16) as u16, bits as u16);
    let mut f32_entry = entry(ModbusType::F32);
    assert_eq!(number(&f32_entry, &[high, low]), 21.5);
    f32_entry.word_order = Some(WordOrder::Little);
    assert_eq!(number(&f32_entry, &[low, high]), 21.5);
}

#[test]
fn scale_and_offset_apply_to_the_raw_number() {
    let mut temp = entry(ModbusType::I16);
    temp.scale = finite(0.1);
    temp.offset = finite(-5.0);
    let value = number(&temp, &[(-153i16) as u16]);
    assert!((value - -20.3).abs() < 1e-9, "{value}");
}

#[test]
fn values_outside_the_range_are_a_broken_probe() {
    let mut temp = entry(ModbusType::I16);
    temp.scale = finite(0.1);
    temp.min = finite(-40.0);
    temp.max = finite(125.0);
    assert_eq!(number(&temp, &[1250]), 125.0);
    let err = decode(&temp, Raw::Registers(&[0x7FFF])).unwrap_err();
    assert_eq!(
        err,
        DecodeError::OutOfRange {
            value: 3276.7000000000003,
            min: -40.0,
            max: 125.0
        }
    );
    assert!(matches!(err.lost_reason(), LostReason::OutOfRange { .. }));
    let low = decode(&temp, Raw::Registers(&[(-401i16) as u16])).unwrap_err();
    assert!(matches!(low, DecodeError::OutOfRange { min, .. } if min == -40.0));
}

#[test]
fn contacts_come_from_bits() {
    let door = entry(ModbusType::Bool);
    assert_eq!(decode(&door, Raw::Bits(&[true])), Ok(Value::Contact(true)));
    assert_eq!(
        decode(&door, Raw::Bits(&[false, true])),
        Ok(Value::Contact(false))
    );
}

#[test]
fn missing_or_wrong_data_is_malformed() {
    let cases = [
        (entry(ModbusType::U32), Raw::Registers(&[1])),
        (entry(ModbusType::U16), Raw::Registers(&[])),
        (entry(ModbusType::Bool), Raw::Bits(&[])),
        (entry(ModbusType::Bool), Raw::Registers(&[1])),
        (entry(ModbusType::U16), Raw::Bits(&[true])),
    ];
    for (entry, raw) in cases {
        let err = decode(&entry, raw).unwrap_err();
        assert!(
            matches!(err.lost_reason(), LostReason::Malformed { .. }),
            "{raw:?}: {err}"
        );
    }
    let short = decode(&entry(ModbusType::F32), Raw::Registers(&[1])).unwrap_err();
    assert_eq!(
        short.to_string(),
        "2 registers needed for a `f32`, 1 received"
    );
}

#[test]
fn nan_infinity_and_overflow_are_not_values() {
    let nan = f32::NAN.to_bits();
    let f = entry(ModbusType::F32);
    assert!(matches!(
        decode(&f, Raw::Registers(&[(nan >> 16) as u16, nan as u16])),
        Err(DecodeError::NotANumber(_))
    ));
    let inf = f32::INFINITY.to_bits();
    assert!(matches!(
        decode(&f, Raw::Registers(&[(inf >> 16) as u16, inf as u16])),
        Err(DecodeError::NotANumber(_))
    ));
    let mut huge = entry(ModbusType::F32);
    huge.scale = finite(1e300);
    let max = f32::MAX.to_bits();
    assert!(matches!(
        decode(&huge, Raw::Registers(&[(max >> 16) as u16, max as u16])),
        Err(DecodeError::Overflow { .. })
    ));
}
