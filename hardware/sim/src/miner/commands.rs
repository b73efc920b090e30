//! The commands that change a miner: pool management (addpool, switchpool, enablepool,
//! disablepool, removepool), restart and quit, BOSminer's pause/resume (its sleep over the
//! cgminer API), and LuxOS's session-guarded curtail (sleep/wakeup) and profileset (power). Each answers with cgminer's status codes and messages, and changes the
//! firmware's list and its Stratum client together.

use super::firmware::{code, luxos};
use super::model::Firmware;
use super::render::Section;
use super::request::ApiRequest;
use super::state::ConfiguredPool;
use super::{Miner, physics, unix_now};
use crate::stratum_client::SimPool;

/// What a privileged command asks of the connection after its reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Reply(Section),
    /// `restart` / `quit`: a bare word, then the firmware goes down for its restart window.
    BareThenRestart(&'static str),
}

/// Whether a command changes the miner (refused with Code 45 without write access).
pub fn is_privileged(command: &str) -> bool {
    matches!(
        command,
        "addpool"
            | "switchpool"
            | "enablepool"
            | "disablepool"
            | "removepool"
            | "restart"
            | "quit"
            | "pause"
            | "resume"
            | "curtail"
            | "profileset"
            | "logoff"
    )
}

/// LuxOS `logon`: opens the API session privileged commands must name (or returns the open
/// one). `None` for firmware without sessions.
pub fn logon(miner: &Miner) -> Option<Section> {
    if miner.personality().firmware() != Firmware::Luxos {
        return None;
    }
    let mut state = miner.state();
    let salt = state.booted_at.elapsed().as_nanos() as u64;
    let id = state
        .session_id
        .get_or_insert_with(|| format!("{:08x}", physics::mix(unix_now() ^ salt) as u32))
        .clone();
    Some(luxos::session(Some(&id)))
}

/// LuxOS privileged commands name the session first; the rest are their arguments.
fn luxos_arguments(miner: &Miner, request: &ApiRequest) -> Result<Vec<String>, Section> {
    let mut fields = request.parameter_fields();
    let open = miner.state().session_id.clone();
    if fields.is_empty() || open.is_none() || open.as_deref() != Some(fields[0].as_str()) {
        return Err(Section::error(
            code::LUXOS_INVALID_SESSION,
            "Invalid session id",
        ));
    }
    fields.remove(0);
    Ok(fields)
}

fn luxos_command(miner: &Miner, command: &str, request: &ApiRequest) -> Section {
    let args = match luxos_arguments(miner, request) {
        Ok(args) => args,
        Err(refusal) => return refusal,
    };
    match (command, args.first().map(String::as_str)) {
        ("curtail", Some(mode @ ("sleep" | "wakeup"))) => {
            miner.set_sleeping(mode == "sleep");
            Section::action(code::LUXOS_CURTAIL, format!("Curtail {mode} requested"))
        }
        ("profileset", Some(name)) => {
            let hardware = miner.personality().hardware();
            match luxos::profiles(hardware)
                .into_iter()
                .find(|p| p.name == name)
            {
                Some(profile) => {
                    miner.set_power_target(profile.watts);
                    Section::ok(
                        code::LUXOS_PROFILE_SET,
                        "Profile set",
                        "PROFILE",
                        vec![
                            vec![
                                ("Profile", profile.name.into()),
                                ("Result", "success".into()),
                            ]
                            .into(),
                        ],
                    )
                }
                None => {
                    Section::error(code::LUXOS_PROFILE_SET, format!("Invalid profile '{name}'"))
                }
            }
        }
        ("logoff", _) => {
            miner.state().session_id = None;
            Section::action(code::LUXOS_SESSION, "Session closed")
        }
        _ => Section::error(
            code::INVALID_COMMAND,
            format!("Invalid parameters for '{command}'"),
        ),
    }
}

/// Runs a privileged command; `None` if this firmware does not have it.
pub fn run(miner: &Miner, command: &str, request: &ApiRequest) -> Option<Effect> {
    let section = match command {
        "addpool" => add_pool(miner, request),
        "switchpool" | "enablepool" | "disablepool" | "removepool" => {
            match pool_index(request, miner) {
                Ok(index) => match command {
                    "switchpool" => switch_pool(miner, index),
                    "enablepool" => set_enabled(miner, index, true),
                    "disablepool" => set_enabled(miner, index, false),
                    _ => remove_pool(miner, index),
                },
                Err(refusal) => refusal,
            }
        }
        "restart" => return Some(Effect::BareThenRestart("RESTART")),
        "quit" => return Some(Effect::BareThenRestart("BYE")),
        "curtail" | "profileset" | "logoff"
            if miner.personality().firmware() == Firmware::Luxos =>
        {
            luxos_command(miner, command, request)
        }
        "pause" | "resume" if miner.personality().firmware() == Firmware::Bosminer => {
            let sleep = command == "pause";
            miner.set_sleeping(sleep);
            if sleep {
                Section::action(code::PAUSE, "Mining paused")
            } else {
                Section::action(code::RESUME, "Mining resumed")
            }
        }
        _ => return None,
    };
    Some(Effect::Reply(section))
}

/// The pool number of switchpool & co., checked against the list as shown.
fn pool_index(request: &ApiRequest, miner: &Miner) -> Result<usize, Section> {
    let Some(raw) = request.parameter.as_deref().map(str::trim) else {
        return Err(Section::error(code::MISSING_POOL_ID, "Missing pool id"));
    };
    let shown = miner.state().effective_pools().len();
    match raw.parse::<usize>() {
        Ok(i) if i < shown => Ok(i),
        _ => Err(Section::error(
            code::INVALID_POOL_ID,
            format!(
                "Invalid pool id {raw} - range is 0 - {}",
                shown.saturating_sub(1)
            ),
        )),
    }
}

fn add_pool(miner: &Miner, request: &ApiRequest) -> Section {
    let fields = request.parameter_fields();
    let [url, user, password] = fields.as_slice() else {
        return match request.parameter {
            None => Section::error(code::MISSING_ADDPOOL_DETAILS, "Missing addpool details"),
            Some(ref p) => Section::error(
                code::INVALID_ADDPOOL_DETAILS,
                format!("Invalid addpool details '{p}'"),
            ),
        };
    };
    if url.trim().is_empty() {
        return Section::error(
            code::INVALID_ADDPOOL_DETAILS,
            format!(
                "Invalid addpool details '{}'",
                request.parameter_fields().join(",")
            ),
        );
    }
    let mut state = miner.state();
    state.pools.push(ConfiguredPool {
        pool: SimPool {
            url: url.clone(),
            user: user.clone(),
            password: password.clone(),
        },
        enabled: true,
    });
    miner.sync_pools(&state);
    let index = state.effective_pools().len() - 1;
    Section::action(code::ADD_POOL, format!("Added pool {index}: '{url}'"))
}

fn switch_pool(miner: &Miner, shown: usize) -> Section {
    let mut state = miner.state();
    let Some(index) = state.configured_index(shown) else {
        return Section::error(code::INVALID_POOL_ID, format!("Invalid pool id {shown}"));
    };
    state.preferred = index;
    state.pools[index].enabled = true;
    miner.sync_pools(&state);
    let url = state.pools[index].pool.url.clone();
    Section::action(
        code::SWITCH_POOL,
        format!("Switching to pool {shown}:'{url}'"),
    )
}

fn set_enabled(miner: &Miner, shown: usize, enabled: bool) -> Section {
    let mut state = miner.state();
    let Some(index) = state.configured_index(shown) else {
        return Section::error(code::INVALID_POOL_ID, format!("Invalid pool id {shown}"));
    };
    let url = state.pools[index].pool.url.clone();
    if state.pools[index].enabled == enabled {
        return if enabled {
            Section::error(
                code::ALREADY_ENABLED,
                format!("Pool {shown}:'{url}' already enabled"),
            )
            .with_outcome(super::render::Outcome::Info)
        } else {
            Section::error(
                code::ALREADY_DISABLED,
                format!("Pool {shown}:'{url}' already disabled"),
            )
            .with_outcome(super::render::Outcome::Info)
        };
    }
    if !enabled && state.pools.iter().filter(|p| p.enabled).count() == 1 {
        return Section::error(
            code::DISABLE_LAST_POOL,
            format!("Cannot disable last active pool {shown}:'{url}'"),
        );
    }
    state.pools[index].enabled = enabled;
    if !enabled && state.preferred == index {
        state.preferred = state.pools.iter().position(|p| p.enabled).unwrap_or(0);
    }
    miner.sync_pools(&state);
    if enabled {
        Section::action(code::ENABLE_POOL, format!("Enabling pool {shown}:'{url}'"))
    } else {
        Section::action(
            code::DISABLE_POOL,
            format!("Disabling pool {shown}:'{url}'"),
        )
    }
}

fn remove_pool(miner: &Miner, shown: usize) -> Section {
    let mut state = miner.state();
    let Some(index) = state.configured_index(shown) else {
        return Section::error(code::INVALID_POOL_ID, format!("Invalid pool id {shown}"));
    };
    let url = state.pools[index].pool.url.clone();
    if state.pools.len() == 1 {
        return Section::error(
            code::REMOVE_LAST_POOL,
            format!("Cannot remove last pool {shown}:'{url}'"),
        );
    }
    let active = miner
        .stratum()
        .status()
        .get(shown)
        .is_some_and(|l| l.active);
    if active || state.preferred == index {
        return Section::error(
            code::REMOVE_ACTIVE_POOL,
            format!("Cannot remove active pool {shown}:'{url}'"),
        );
    }
    state.pools.remove(index);
    if state.preferred > index {
        state.preferred -= 1;
    }
    miner.sync_pools(&state);
    Section::action(code::REMOVE_POOL, format!("Removed pool {shown}:'{url}'"))
}
