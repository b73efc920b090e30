//! Stand-ins on the test bus for what cannot run here: systemd's unit objects (systemd is not
//! PID 1 in the test container; the QEMU test checks the real one), hubd's `Links()`, and the
//! two commands the gate runs (scripts that record their arguments).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use appliance::dbus::{Bus, serve};
use zbus::Connection;
use zbus::zvariant::OwnedObjectPath;

/// Whether systemd checked a unit's conditions, and what they said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Held,
    Failed,
}

/// A unit's state as the stand-in reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub active: &'static str,
    pub sub: &'static str,
    pub result: &'static str,
    pub condition: Condition,
}

impl UnitState {
    pub const RUNNING: UnitState = UnitState {
        active: "active",
        sub: "running",
        result: "success",
        condition: Condition::Held,
    };
    pub const FAILED: UnitState = UnitState {
        active: "failed",
        sub: "failed",
        result: "exit-code",
        condition: Condition::Held,
    };
    pub const STARTING: UnitState = UnitState {
        active: "activating",
        sub: "start",
        result: "success",
        condition: Condition::Held,
    };
    pub const SKIPPED: UnitState = UnitState {
        active: "inactive",
        sub: "dead",
        result: "success",
        condition: Condition::Failed,
    };
}

type Shared = Arc<Mutex<UnitState>>;

struct ManagerObject {
    units: Vec<String>,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl ManagerObject {
    fn load_unit(&self, name: &str) -> zbus::fdo::Result<OwnedObjectPath> {
        if !self.units.iter().any(|unit| unit == name) {
            return Err(zbus::fdo::Error::Failed(format!(
                "no unit {name} in this stand-in"
            )));
        }
        Ok(unit_path(name))
    }
}

struct UnitObject(Shared);

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl UnitObject {
    #[zbus(property)]
    fn load_state(&self) -> String {
        "loaded".to_owned()
    }

    #[zbus(property)]
    fn active_state(&self) -> String {
        self.0.lock().unwrap().active.to_owned()
    }

    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.0.lock().unwrap().sub.to_owned()
    }

    #[zbus(property)]
    fn condition_result(&self) -> bool {
        self.0.lock().unwrap().condition == Condition::Held
    }

    /// Every stand-in unit has had its conditions checked (at 1 s after boot).
    #[zbus(property)]
    fn condition_timestamp_monotonic(&self) -> u64 {
        1_000_000
    }
}

struct ServiceObject(Shared);

#[zbus::interface(name = "org.freedesktop.systemd1.Service")]
impl ServiceObject {
    #[zbus(property)]
    fn result(&self) -> String {
        self.0.lock().unwrap().result.to_owned()
    }
}

/// systemd's unit object path: `trustd.service` → `/org/freedesktop/systemd1/unit/trustd_2eservice`.
fn unit_path(unit: &str) -> OwnedObjectPath {
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    for byte in unit.bytes() {
        if byte.is_ascii_alphanumeric() {
            path.push(byte as char);
        } else {
            path.push_str(&format!("_{byte:02x}"));
        }
    }
    OwnedObjectPath::try_from(path).unwrap()
}

/// `org.freedesktop.systemd1` with the given units.
pub struct StandInSystemd {
    _connection: Connection,
    units: Vec<(String, Shared)>,
}

impl StandInSystemd {
    pub async fn start(bus: &Bus, units: &[(&str, UnitState)]) -> Self {
        let manager = ManagerObject {
            units: units.iter().map(|(name, _)| (*name).to_owned()).collect(),
        };
        let connection = serve(
            bus,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            manager,
        )
        .await
        .unwrap();
        let mut shared = Vec::new();
        for (name, state) in units {
            let state: Shared = Arc::new(Mutex::new(state.clone()));
            let server = connection.object_server();
            server
                .at(unit_path(name), UnitObject(state.clone()))
                .await
                .unwrap();
            server
                .at(unit_path(name), ServiceObject(state.clone()))
                .await
                .unwrap();
            shared.push(((*name).to_owned(), state));
        }
        Self {
            _connection: connection,
            units: shared,
        }
    }

    /// Changes a unit's state, as systemd would.
    pub fn set(&self, unit: &str, state: UnitState) {
        let (_, shared) = self.units.iter().find(|(name, _)| name == unit).unwrap();
        *shared.lock().unwrap() = state;
    }
}

struct HubObject {
    links: String,
}

#[zbus::interface(name = "org.bunkeros.Hub1")]
impl HubObject {
    fn links(&self) -> String {
        self.links.clone()
    }
}

/// `org.bunkeros.Hub1` answering `Links()` with a fixed document.
pub async fn stand_in_hub(bus: &Bus, links: &str) -> Connection {
    let hub = HubObject {
        links: links.to_owned(),
    };
    serve(bus, "org.bunkeros.Hub1", "/org/bunkeros/Hub1", hub)
        .await
        .unwrap()
}

/// `systemd-bless-boot` and `systemctl` as scripts that append their arguments to a log and
/// exit with a chosen status.
pub struct Commands {
    dir: tempfile::TempDir,
}

impl Commands {
    pub fn new() -> Self {
        let commands = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        commands.script("systemd-bless-boot", 0);
        commands.script("systemctl", 0);
        commands
    }

    /// (Re)writes the stand-in `name` to exit with `status` after recording its arguments.
    pub fn script(&self, name: &str, status: u8) {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.path(name);
        let log = self.log(name);
        let refusal = if status == 0 {
            String::new()
        } else {
            format!("echo 'stand-in {name} refuses' >&2\n")
        };
        let text = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n{refusal}exit {status}\n",
            log.display()
        );
        // Write then rename: a script being executed is never rewritten in place.
        let temporary = self.dir.path().join(format!(".{name}"));
        std::fs::write(&temporary, text).unwrap();
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.calls"))
    }

    /// The argument lists `name` was called with, in order.
    pub fn calls(&self, name: &str) -> Vec<String> {
        read_lines(&self.log(name))
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}
