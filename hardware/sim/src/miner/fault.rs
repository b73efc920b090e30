//! Faults a simulated miner can be told to show: the ways real miners misbehave towards a
//! poller (hanging, slow, broken or oversized replies, reboots) and towards the site (mining
//! for someone else: a hijacked pool list, another user, a devfee, hashing off the books).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Accept the API connection, never answer (pyasic#65).
    Hang,
    /// Answer after this delay.
    Slow(Duration),
    /// Invalid JSON replies.
    Malformed,
    /// Reply cut midway, connection closed.
    Truncated,
    /// Reply far larger than any real one.
    Oversized,
    /// Refuse API and Stratum for this long, then come back with uptime 0.
    Rebooting(Duration),
    /// The firmware adds a foreign pool at priority 0, switches to it, and its Stratum client
    /// really mines there.
    SelfHijack { url: String, user: String },
    /// Same pool endpoints, another user identity.
    UserChange { user: String },
    /// Periodically mines for a devfee pool (shown as active in `pools` meanwhile).
    DevFee {
        url: String,
        user: String,
        every: Duration,
        for_: Duration,
    },
    /// Keeps reporting hashrate and the sanctioned pools but sends its shares nowhere
    /// through the proxy (mines off the books).
    HiddenHashing,
}

impl Fault {
    /// Faults that change what the miner mines, as opposed to how its API answers.
    pub fn changes_pools(&self) -> bool {
        matches!(
            self,
            Fault::SelfHijack { .. } | Fault::UserChange { .. } | Fault::DevFee { .. }
        )
    }
}

/// How the API answers one request under the faults in force (the first that applies wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFault {
    Hang,
    Slow(Duration),
    Malformed,
    Truncated,
    Oversized,
}

pub fn reply_fault(faults: &[Fault]) -> Option<ReplyFault> {
    faults.iter().find_map(|f| match f {
        Fault::Hang => Some(ReplyFault::Hang),
        Fault::Slow(d) => Some(ReplyFault::Slow(*d)),
        Fault::Malformed => Some(ReplyFault::Malformed),
        Fault::Truncated => Some(ReplyFault::Truncated),
        Fault::Oversized => Some(ReplyFault::Oversized),
        _ => None,
    })
}

/// Breaks a JSON reply the way a broken firmware does: keys and values no longer separated,
/// so no quirk-stripping makes it parse.
pub fn malform(reply: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(reply);
    text.replace("\":", "\" ").into_bytes()
}

/// Pads a reply past anything real (the largest real reply is tens of KiB) while keeping it
/// valid JSON: a poller must refuse it by size, not by syntax.
pub fn oversize(reply: &[u8]) -> Vec<u8> {
    const PAD: usize = 1024 * 1024;
    let text = String::from_utf8_lossy(reply);
    let trimmed = text.trim_end_matches('\0');
    match trimmed.strip_suffix('}') {
        Some(head) => format!("{head},\"Padding\":\"{}\"}}", "x".repeat(PAD)).into_bytes(),
        None => format!("{trimmed}{}", " ".repeat(PAD)).into_bytes(),
    }
}
