//! The physical side of one miner: from its operating point (power target, sleeping, work or
//! none) and the room temperature to what the sensors read (wall power, hashrate per board,
//! chip and PCB temperatures, fan speed). Deterministic: a unit's small differences from its
//! siblings come from its seed, and the 5-second jitter from the seed and the clock second.

use super::model::HardwareModel;

/// How much a unit differs from the nominal model, fixed at manufacture (from the seed).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitTraits {
    /// Multiplies the model's J/TH: 0.97 is a good unit, 1.03 a poor one.
    pub efficiency_factor: f64,
    /// Per-board share of the unit's hashrate (mean 1.0).
    pub board_factors: Vec<f64>,
    /// Offset of this unit's temperatures (airflow in its rack slot).
    pub temp_offset_c: f64,
    /// Hardware errors per hour at full load.
    pub hw_errors_per_hour: f64,
    pub seed: u64,
}

/// splitmix64: a good, tiny, deterministic mixer for seeds (no randomness crate needed).
pub fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value in [-1, 1) derived from a seed.
pub fn unit_interval(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

impl UnitTraits {
    pub fn from_seed(seed: u64, boards: usize) -> UnitTraits {
        let board_factors = (0..boards)
            .map(|b| 1.0 + 0.02 * unit_interval(seed ^ (0xb0a7d << 8) ^ b as u64))
            .collect();
        UnitTraits {
            efficiency_factor: 1.0 + 0.03 * unit_interval(seed ^ 0xeff),
            board_factors,
            temp_offset_c: 2.0 * unit_interval(seed ^ 0x7e3b),
            hw_errors_per_hour: 20.0 + 15.0 * unit_interval(seed ^ 0x4e77),
            seed,
        }
    }
}

impl UnitTraits {
    /// The model's datasheet unit, for rated figures.
    pub fn nominal(boards: usize) -> UnitTraits {
        UnitTraits {
            efficiency_factor: 1.0,
            board_factors: vec![1.0; boards],
            temp_offset_c: 0.0,
            hw_errors_per_hour: 0.0,
            seed: 0,
        }
    }
}

/// What the miner is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingPoint {
    /// Hash boards on: awake, booted, and with work from a pool.
    pub hashing: bool,
    /// The power the boards are tuned to (the model's nominal power without a power target).
    pub power_target_w: f64,
    pub ambient_c: f64,
}

/// One reading of every sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorReading {
    pub power_w: f64,
    /// Per board, TH/s, in the model's chain order.
    pub board_ths: Vec<f64>,
    /// Per board, the hottest chip sensor and the PCB sensor, °C.
    pub chip_temp_c: Vec<f64>,
    pub pcb_temp_c: Vec<f64>,
    /// Per fan slot, RPM.
    pub fan_rpm: Vec<u32>,
    /// Fan duty cycle, percent.
    pub fan_pwm: u32,
}

impl SensorReading {
    pub fn hashrate_ths(&self) -> f64 {
        self.board_ths.iter().sum()
    }
}

/// Fans never stop while the control board runs: a sleeping miner keeps them at this duty.
const IDLE_FAN_PWM: f64 = 30.0;

/// Hashrate at a power: chips at a lower voltage hash less but more efficiently, so hashrate
/// falls slower than power (exponent below 1), as an autotuner's curve does.
pub fn hashrate_at(model: &HardwareModel, traits: &UnitTraits, power_w: f64) -> f64 {
    let load = power_w / model.nominal_w;
    model.nominal_ths * load.powf(0.8) / traits.efficiency_factor
}

pub fn read(model: &HardwareModel, traits: &UnitTraits, op: OperatingPoint) -> SensorReading {
    let boards = model.chains.len();
    let fans = model.fan_slots.len();
    if !op.hashing {
        let rpm = (model.fan_max_rpm as f64 * IDLE_FAN_PWM / 100.0) as u32;
        return SensorReading {
            power_w: model.idle_w,
            board_ths: vec![0.0; boards],
            chip_temp_c: vec![op.ambient_c + 3.0 + traits.temp_offset_c; boards],
            pcb_temp_c: vec![op.ambient_c + 2.0 + traits.temp_offset_c; boards],
            fan_rpm: vec![rpm; fans],
            fan_pwm: IDLE_FAN_PWM as u32,
        };
    }
    let power_w = op
        .power_target_w
        .clamp(model.min_power_w, model.max_power_w);
    let total_ths = hashrate_at(model, traits, power_w);
    let load = power_w / model.nominal_w;
    // The fan controller holds the chips near 75 °C: it spins up with the heat to remove,
    // and the heat it cannot remove raises the temperatures.
    let uncooled_chip = op.ambient_c + traits.temp_offset_c + 55.0 * load;
    let pwm = (IDLE_FAN_PWM + (uncooled_chip - 60.0) * 2.5).clamp(IDLE_FAN_PWM, 100.0);
    let cooling = (pwm - IDLE_FAN_PWM) * 0.25;
    let chip = uncooled_chip - cooling;
    let pcb = chip - 14.0 * load;
    let board_ths: Vec<f64> = traits
        .board_factors
        .iter()
        .map(|f| total_ths / boards as f64 * f)
        .collect();
    let chip_temp_c = (0..boards).map(|b| chip + b as f64 * 0.7).collect();
    let pcb_temp_c = (0..boards).map(|b| pcb + b as f64 * 0.5).collect();
    let fan_rpm = (0..fans)
        .map(|f| (model.fan_max_rpm as f64 * pwm / 100.0) as u32 + 30 * f as u32)
        .collect();
    SensorReading {
        power_w,
        board_ths,
        chip_temp_c,
        pcb_temp_c,
        fan_rpm,
        fan_pwm: pwm as u32,
    }
}

/// The 5-second hashrate wobbles around the average by under 1 %, the same for the same
/// second and seed (so two reads in one second agree).
pub fn five_second_jitter(seed: u64, unix_second: u64) -> f64 {
    1.0 + 0.008 * unit_interval(seed ^ unix_second.wrapping_mul(0x2545_f491_4f6c_dd1d))
}
