//! sited's Modbus register decoding (registers and bits from any device on the site network,
//! possibly broken or hostile) under any register-map entry the profile allows: hostile data
//! must give a value or a typed error, never a panic; a number must be finite and inside the
//! entry's range, a contact only come from a `bool` entry.
#![no_main]

use appliance::profile::{Finite, ModbusRegister, ModbusTable, ModbusType, WordOrder};
use libfuzzer_sys::fuzz_target;
use sited::modbus::decode::{DecodeError, Raw, decode};
use sited::sensor::{LostReason, Value};

const TYPES: [ModbusType; 6] = [
    ModbusType::U16,
    ModbusType::I16,
    ModbusType::U32,
    ModbusType::I32,
    ModbusType::F32,
    ModbusType::Bool,
];

// Input layout: type byte, flags byte (bit 0 little word order, 1 min set, 2 max set, 3 data
// as bits instead of registers), scale, offset, min, max (8 bytes each, f64 big endian; a
// non-finite one is left unset), then the data (pairs of bytes as registers, or one byte per
// bit).
fuzz_target!(|data: &[u8]| {
    let Some((&[type_byte, flags], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let Some((numbers, payload)) = rest.split_first_chunk::<32>() else {
        return;
    };
    let number = |i: usize| {
        let bytes: [u8; 8] = numbers[i * 8..i * 8 + 8].try_into().unwrap();
        Finite::new(f64::from_be_bytes(bytes)).ok()
    };
    let value_type = TYPES[usize::from(type_byte) % TYPES.len()];
    let entry = ModbusRegister {
        sensor: "fuzz".into(),
        unit: 1,
        table: if value_type == ModbusType::Bool {
            ModbusTable::Coil
        } else {
            ModbusTable::Holding
        },
        address: 0,
        value_type,
        word_order: (flags & 1 != 0).then_some(WordOrder::Little),
        scale: number(0),
        offset: number(1),
        unit_of_measure: None,
        min: number(2).filter(|_| flags & 2 != 0),
        max: number(3).filter(|_| flags & 4 != 0),
    };
    let words: Vec<u16> = payload
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    let bits: Vec<bool> = payload.iter().map(|b| b & 1 == 1).collect();
    let raw = if flags & 8 != 0 {
        Raw::Bits(&bits)
    } else {
        Raw::Registers(&words)
    };
    match decode(&entry, raw) {
        Ok(Value::Number(n)) => {
            assert!(n.is_finite());
            assert_ne!(value_type, ModbusType::Bool);
            assert!(entry.min.is_none_or(|min| n >= min.get()));
            assert!(entry.max.is_none_or(|max| n <= max.get()));
        }
        Ok(Value::Contact(_)) => assert_eq!(value_type, ModbusType::Bool),
        Err(error) => {
            let reason = error.lost_reason();
            let out_of_range = matches!(error, DecodeError::OutOfRange { .. });
            assert_eq!(
                matches!(reason, LostReason::OutOfRange { .. }),
                out_of_range
            );
            let _ = error.to_string();
        }
    }
});
