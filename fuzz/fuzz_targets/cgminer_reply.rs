//! minerd's cgminer reply parser and snapshot builder (bytes from any miner on the site LAN,
//! possibly hijacked or broken): hostile bytes must give an error or a snapshot, never a panic,
//! a hang or unbounded memory; and what the snapshot holds must be physically sensible.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minerd::cgminer::{MinerSnapshot, parse_reply};

/// The first byte picks the request the reply answers, so joined and single shapes are both
/// reached from one corpus.
const COMMANDS: [&str; 6] = [
    "summary",
    "stats",
    "pools",
    "summary+pools",
    "version+summary+stats+pools",
    "version+summary+devs+devdetails+temps+fans+tunerstatus+pools",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, reply)) = data.split_first() else {
        return;
    };
    let command = COMMANDS[usize::from(pick) % COMMANDS.len()];
    let Ok(reply) = parse_reply(command, reply) else {
        return;
    };
    for c in command.split('+') {
        let _ = reply.section(c);
    }
    let snap = MinerSnapshot::from_reply(&reply);
    for rate in [snap.hashrate_5s, snap.hashrate_average, snap.hashrate_ideal]
        .into_iter()
        .flatten()
        .chain(snap.boards.iter().filter_map(|b| b.hashrate))
    {
        assert!(rate.hashes_per_second.is_finite() && rate.hashes_per_second >= 0.0);
    }
    for t in snap
        .boards
        .iter()
        .flat_map(|b| b.chip_temps_c.iter().chain(&b.pcb_temps_c))
    {
        assert!(t.is_finite());
    }
});
