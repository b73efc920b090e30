//! 256-bit targets compared exactly, without a big-integer crate: a target is 32 big-endian
//! bytes, and `hash <= target` is a lexicographic comparison of equal-length byte arrays, which is
//! the numeric comparison. Floats are only used to *report* a share's achieved difficulty, never
//! to accept or reject it.

/// A 256-bit unsigned target, big-endian (most significant byte first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target(pub [u8; 32]);

/// Difficulty 1: 0x00000000FFFF0000…0000, i.e. 0xFFFF · 2^208 (the pool convention, "pdiff").
pub const DIFF1: Target = {
    let mut t = [0u8; 32];
    t[4] = 0xff;
    t[5] = 0xff;
    Target(t)
};

impl Target {
    /// The largest target, which every hash meets.
    pub const MAX: Target = Target([0xff; 32]);

    /// The network target from the compact `nbits` form: mantissa · 256^(exponent − 3). `None`
    /// for a negative mantissa (sign bit 0x00800000) or a value beyond 256 bits, which no valid
    /// block header carries.
    pub fn from_nbits(nbits: u32) -> Option<Target> {
        let exponent = (nbits >> 24) as usize;
        let mantissa = nbits & 0x007f_ffff;
        if nbits & 0x0080_0000 != 0 && mantissa != 0 {
            return None;
        }
        let mantissa_bytes = [
            (mantissa >> 16) as u8,
            (mantissa >> 8) as u8,
            mantissa as u8,
        ];
        let mut t = [0u8; 32];
        // Byte i of the mantissa (0 = most significant) has weight 256^(exponent − 1 − i).
        for (i, &b) in mantissa_bytes.iter().enumerate() {
            let Some(power) = exponent.checked_sub(1 + i) else {
                continue; // shifted out to the right: bitcoin truncates these bits
            };
            if power > 31 {
                if b != 0 {
                    return None;
                }
                continue;
            }
            t[31 - power] = b;
        }
        Some(Target(t))
    }

    /// The share target for a pool difficulty: DIFF1 / difficulty, rounded down, computed
    /// exactly for the f64 the pool sent. The difficulty is split into an integer mantissa `m`
    /// (≤ 53 bits) and a power of two `2^e`, so the target is `0xFFFF · 2^(208 − e) / m`: a shift
    /// of a 512-bit value followed by a long division by a u64, one 64-bit limb at a time through
    /// u128. Results beyond 256 bits (tiny difficulties) saturate to `MAX`. `None` for a
    /// difficulty that is not finite and positive.
    pub fn from_difficulty(difficulty: f64) -> Option<Target> {
        if !difficulty.is_finite() || difficulty <= 0.0 {
            return None;
        }
        let (mantissa, exponent) = decompose(difficulty);
        // numerator = 0xFFFF << (208 - exponent), in 8 little-endian u64 limbs (512 bits).
        let shift = 208 - exponent; // exponent ≥ -1074 - 52, ≤ 971: shift fits an i64 easily
        if shift < 0 {
            // 0xFFFF · 2^shift < 1 ≤ m: the target is zero (no hash meets it).
            if shift <= -16 {
                return Some(Target([0; 32]));
            }
            let numerator = 0xffffu64 >> (-shift);
            return Some(from_u64(numerator / mantissa));
        }
        let shift = shift as u64;
        if shift + 16 > 512 {
            return Some(Target::MAX);
        }
        let mut limbs = [0u64; 8];
        let (limb, bit) = ((shift / 64) as usize, shift % 64);
        let wide = 0xffffu128 << bit;
        limbs[limb] = wide as u64;
        if limb + 1 < 8 {
            limbs[limb + 1] = (wide >> 64) as u64;
        }
        // Long division from the most significant limb: remainder < m < 2^64, so
        // (remainder << 64 | limb) fits a u128.
        let mut quotient = [0u64; 8];
        let mut remainder = 0u128;
        for i in (0..8).rev() {
            let current = (remainder << 64) | limbs[i] as u128;
            quotient[i] = (current / mantissa as u128) as u64;
            remainder = current % mantissa as u128;
        }
        if quotient[4..].iter().any(|&l| l != 0) {
            return Some(Target::MAX);
        }
        let mut t = [0u8; 32];
        for (i, limb) in quotient[..4].iter().enumerate() {
            t[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
        }
        Some(Target(t))
    }

    /// Whether a hash (as the big-endian number, see `hash_to_be`) meets this target.
    pub fn is_met_by(&self, hash_be: &[u8; 32]) -> bool {
        hash_be.as_slice() <= self.0.as_slice()
    }

    /// The difficulty this value represents as a hash, DIFF1 / value, as an f64 for reporting
    /// (accounting of accepted difficulty); infinite for a zero hash.
    pub fn difficulty_of(hash_be: &[u8; 32]) -> f64 {
        let value = to_f64(hash_be);
        if value == 0.0 {
            return f64::INFINITY;
        }
        to_f64(&DIFF1.0) / value
    }
}

/// A double-SHA-256 digest as bitcoin stores it (little-endian number) turned into the
/// big-endian byte order that compares numerically.
pub fn hash_to_be(digest: &[u8; 32]) -> [u8; 32] {
    let mut be = *digest;
    be.reverse();
    be
}

fn to_f64(be: &[u8; 32]) -> f64 {
    be.iter().fold(0.0, |acc, &b| acc * 256.0 + b as f64)
}

fn from_u64(value: u64) -> Target {
    let mut t = [0u8; 32];
    t[24..].copy_from_slice(&value.to_be_bytes());
    Target(t)
}

/// Splits a finite positive f64 into (m, e) with value = m · 2^e exactly and m < 2^53.
fn decompose(value: f64) -> (u64, i64) {
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1u64 << 52) - 1);
    if biased == 0 {
        (fraction, -1074) // subnormal
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn difficulty_one_is_diff1() {
        assert_eq!(Target::from_difficulty(1.0), Some(DIFF1));
    }

    #[test]
    fn difficulty_targets_are_exact() {
        // 0xFFFF·2^208 / 2 = 0x7FFF8·2^204
        assert_eq!(
            Target::from_difficulty(2.0).unwrap(),
            Target(hex32(
                "000000007fff8000000000000000000000000000000000000000000000000000"
            ))
        );
        // Difficulty 3 does not divide evenly: floor(0xFFFF·2^208 / 3) = 0x5555·2^208.
        assert_eq!(
            Target::from_difficulty(3.0).unwrap(),
            Target(hex32(
                "0000000055550000000000000000000000000000000000000000000000000000"
            ))
        );
        // 1/256 multiplies by 256: one byte to the left.
        assert_eq!(
            Target::from_difficulty(1.0 / 256.0).unwrap(),
            Target(hex32(
                "000000ffff000000000000000000000000000000000000000000000000000000"
            ))
        );
        // 65536 · 2^-16 ... 0xFFFF · 2^192 for difficulty 65536.
        assert_eq!(
            Target::from_difficulty(65536.0).unwrap(),
            Target(hex32(
                "000000000000ffff000000000000000000000000000000000000000000000000"
            ))
        );
    }

    #[test]
    fn extreme_difficulties_saturate_or_vanish() {
        assert_eq!(Target::from_difficulty(1e-30), Some(Target::MAX));
        assert_eq!(
            Target::from_difficulty(f64::MIN_POSITIVE / 4.0),
            Some(Target::MAX)
        );
        assert_eq!(Target::from_difficulty(1e300), Some(Target([0; 32])));
        assert_eq!(Target::from_difficulty(0.0), None);
        assert_eq!(Target::from_difficulty(-1.0), None);
        assert_eq!(Target::from_difficulty(f64::NAN), None);
        assert_eq!(Target::from_difficulty(f64::INFINITY), None);
        // Just below the 256-bit edge: 2^-32 gives 0xFFFF·2^240, which fits.
        assert_eq!(
            Target::from_difficulty(2f64.powi(-32)).unwrap(),
            Target(hex32(
                "ffff000000000000000000000000000000000000000000000000000000000000"
            ))
        );
    }

    #[test]
    fn nbits_expand_like_bitcoin() {
        // The genesis block's bits.
        assert_eq!(
            Target::from_nbits(0x1d00ffff).unwrap(),
            Target(hex32(
                "00000000ffff0000000000000000000000000000000000000000000000000000"
            ))
        );
        assert_eq!(
            Target::from_nbits(0x1c2ac4af).unwrap(),
            Target(hex32(
                "000000002ac4af00000000000000000000000000000000000000000000000000"
            ))
        );
        // Small exponents shift the mantissa right.
        assert_eq!(Target::from_nbits(0x01123456).unwrap(), from_u64(0x12));
        assert_eq!(Target::from_nbits(0x03123456).unwrap(), from_u64(0x123456));
        assert_eq!(Target::from_nbits(0x04923456), None); // negative
        assert_eq!(Target::from_nbits(0xff123456), None); // overflow
        assert_eq!(Target::from_nbits(0x20010000).unwrap().0[0], 0x01); // exactly 256 bits
        assert_eq!(Target::from_nbits(0x21000100).unwrap().0[0], 0x01);
        assert_eq!(Target::from_nbits(0x21010000), None);
    }

    #[test]
    fn comparison_is_numeric() {
        let t = Target(hex32(
            "00000000ffff0000000000000000000000000000000000000000000000000000",
        ));
        assert!(t.is_met_by(&t.0));
        let mut above = t.0;
        above[31] = 1;
        assert!(!t.is_met_by(&above));
        let mut below = t.0;
        below[5] = 0xfe;
        below[31] = 0xff;
        assert!(t.is_met_by(&below));
        assert_eq!(Target::difficulty_of(&DIFF1.0), 1.0);
        assert_eq!(Target::difficulty_of(&[0; 32]), f64::INFINITY);
    }
}
