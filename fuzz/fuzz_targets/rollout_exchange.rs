//! What travels through a rollout's exchange from other hubs and the operator: instructions,
//! reports, plans and a coordinator's list of instructions (updated::rollout). Any bytes give a
//! parsed document or a typed error, never a panic; what parses is checked to name the plan and
//! hub of its path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updated::rollout::RolloutPlan;
use updated::rollout::exchange::{parse_instruction, parse_instructions, parse_report};

const PLAN: &str = "2026-11-spring";
const HUB: &str = "zurich-1";

fuzz_target!(|data: &[u8]| {
    if let Ok(instruction) = parse_instruction(data, PLAN, HUB) {
        assert_eq!(instruction.plan_id, PLAN);
        assert_eq!(instruction.hub, HUB);
    }
    if let Ok(report) = parse_report(data, PLAN, HUB) {
        assert_eq!(report.plan_id, PLAN);
        assert_eq!(report.hub, HUB);
    }
    // the coordinator's answer to a hub over hubd: every entry that parses is the hub's
    if let Ok(entries) = parse_instructions(data, HUB) {
        for instruction in entries.into_iter().flatten() {
            assert_eq!(instruction.hub, HUB);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(plan) = RolloutPlan::parse(text) {
            // a plan that parses has passed its checks: every hub is in exactly one wave
            let placed: usize = plan.waves.iter().map(|wave| wave.hubs.len()).sum();
            assert_eq!(placed, plan.hubs.len());
        }
    }
});
