//! The rollout_exchange fuzz target's seeds are real documents: each parses for the plan and hub
//! the target names, so the fuzzer starts from what an exchange carries.

use updated::rollout::RolloutPlan;
use updated::rollout::exchange::{parse_instruction, parse_report};

fn seed(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds/rollout_exchange")
        .join(name);
    std::fs::read(path).unwrap()
}

#[test]
fn the_seeds_parse_as_the_fuzz_target_reads_them() {
    let instruction = parse_instruction(&seed("instruction.json"), "2026-11-spring", "zurich-1")
        .expect("the instruction seed parses");
    assert_eq!(instruction.wave, "canary");
    parse_report(&seed("report-failed.json"), "2026-11-spring", "zurich-1")
        .expect("the report seed parses");
    assert!(parse_report(&seed("report-failed.json"), "2026-11-spring", "geneva-1").is_err());
    let plan = RolloutPlan::parse(&String::from_utf8(seed("plan.toml")).unwrap())
        .expect("the plan seed passes its checks");
    assert_eq!(plan.waves.len(), 2);
}
