//! Turning what a Modbus device sent into a sensor value: the raw registers or bits of one
//! register-map entry become a number (type, word order, scale, offset) or a contact, checked
//! against the range a working probe can report. Pure, so the fuzz target drives it directly:
//! whatever the device sends gives a value or a typed error, never a panic.

use appliance::profile::{ModbusRegister, ModbusType, WordOrder};

use crate::sensor::{LostReason, Value};

/// The data read for one entry, starting at the entry's address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw<'a> {
    /// Holding or input registers.
    Registers(&'a [u16]),
    /// Coils or discrete inputs.
    Bits(&'a [bool]),
}

/// Why the data read cannot be the entry's value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer registers (or bits) than the type spans.
    #[error("{needed} {what} needed for a `{value_type}`, {got} received")]
    Short {
        value_type: ModbusType,
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// Registers for a bit entry, or bits for a register entry.
    #[error("a `{value_type}` entry cannot be read from {got}")]
    WrongData {
        value_type: ModbusType,
        got: &'static str,
    },
    /// An `f32` register pair that holds NaN or an infinity.
    #[error("the device sent {0} for an f32, not a number")]
    NotANumber(f32),
    /// Scaling took the value beyond what a number can hold.
    #[error("{raw} scaled by {scale} and offset by {offset} is not a finite number")]
    Overflow { raw: f64, scale: f64, offset: f64 },
    /// The scaled value is outside the entry's `min`..`max` (a broken probe).
    #[error("{value} is outside {min}..{max}")]
    OutOfRange { value: f64, min: f64, max: f64 },
}

impl DecodeError {
    /// How the sensor is reported lost for this error.
    pub fn lost_reason(&self) -> LostReason {
        match self {
            DecodeError::OutOfRange { value, min, max } => LostReason::OutOfRange {
                value: *value,
                min: *min,
                max: *max,
            },
            other => LostReason::Malformed {
                detail: other.to_string(),
            },
        }
    }
}

/// The value of `entry` from `raw` (which starts at the entry's address; extra data after the
/// entry's width is ignored).
pub fn decode(entry: &ModbusRegister, raw: Raw<'_>) -> Result<Value, DecodeError> {
    let value_type = entry.value_type;
    match (value_type, raw) {
        (ModbusType::Bool, Raw::Bits(bits)) => match bits.first() {
            Some(&bit) => Ok(Value::Contact(bit)),
            None => Err(short(value_type, "bits", 0)),
        },
        (_, Raw::Bits(_)) => Err(DecodeError::WrongData {
            value_type,
            got: "bits",
        }),
        (_, Raw::Registers(words)) => {
            let number = raw_number(value_type, entry.word_order(), words)?;
            scale_and_check(entry, number).map(Value::Number)
        }
    }
}

fn short(value_type: ModbusType, what: &'static str, got: usize) -> DecodeError {
    DecodeError::Short {
        value_type,
        what,
        needed: usize::from(value_type.width()),
        got,
    }
}

/// The unscaled number the registers hold.
fn raw_number(
    value_type: ModbusType,
    word_order: WordOrder,
    words: &[u16],
) -> Result<f64, DecodeError> {
    let width = usize::from(value_type.width());
    let Some(words) = words.get(..width) else {
        return Err(short(value_type, "registers", words.len()));
    };
    let bits32 = || {
        let (high, low) = match word_order {
            WordOrder::Big => (words[0], words[1]),
            WordOrder::Little => (words[1], words[0]),
        };
        (u32::from(high) << 16) | u32::from(low)
    };
    Ok(match value_type {
        ModbusType::U16 => f64::from(words[0]),
        ModbusType::I16 => f64::from(words[0] as i16),
        ModbusType::U32 => f64::from(bits32()),
        ModbusType::I32 => f64::from(bits32() as i32),
        ModbusType::F32 => {
            let float = f32::from_bits(bits32());
            if !float.is_finite() {
                return Err(DecodeError::NotANumber(float));
            }
            f64::from(float)
        }
        ModbusType::Bool => {
            return Err(DecodeError::WrongData {
                value_type,
                got: "registers",
            });
        }
    })
}

/// `raw * scale + offset`, inside the entry's range.
fn scale_and_check(entry: &ModbusRegister, raw: f64) -> Result<f64, DecodeError> {
    let (scale, offset) = (entry.scale(), entry.offset());
    let value = raw * scale + offset;
    if !value.is_finite() {
        return Err(DecodeError::Overflow { raw, scale, offset });
    }
    let min = entry.min.map_or(f64::NEG_INFINITY, |m| m.get());
    let max = entry.max.map_or(f64::INFINITY, |m| m.get());
    if value < min || value > max {
        return Err(DecodeError::OutOfRange { value, min, max });
    }
    Ok(value)
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
