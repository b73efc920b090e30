//! The real `bunkerctl` binary where systemd cannot be reached, as on a machine that is not a
//! BunkerOS appliance. (With systemd, the QEMU boot test runs `bunkerctl status --json` in the
//! guest; there is no fake systemd here.)

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use appliance::dbus::testbus::TestBus;

const UNREACHABLE: &str = "bunkerctl: cannot reach systemd over D-Bus (";
const NOT_AN_APPLIANCE: &str = "): is this a BunkerOS appliance?";

fn bunkerctl(system_bus: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bunkerctl"));
    command
        .env("DBUS_SYSTEM_BUS_ADDRESS", system_bus)
        .env_remove("NO_COLOR");
    command
}

/// A bus address whose socket does not exist.
fn absent_bus(dir: &tempfile::TempDir) -> String {
    format!("unix:path={}", dir.path().join("no-bus.sock").display())
}

fn run(mut command: Command) -> Output {
    command.output().expect("bunkerctl runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut help = bunkerctl(&absent_bus(&dir));
    help.arg("--help");
    let help = run(help);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("status"));

    let mut version = bunkerctl(&absent_bus(&dir));
    version.arg("--version");
    let version = run(version);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("bunkerctl {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn watch_zero_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = bunkerctl(&absent_bus(&dir));
    command.args(["status", "--watch", "0"]);
    let output = run(command);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--watch"), "{}", stderr(&output));
}

#[test]
fn without_a_system_bus_status_explains_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [&["status"][..], &["status", "--json"]] {
        let mut command = bunkerctl(&absent_bus(&dir));
        command.args(args);
        let output = run(command);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {message}");
        assert!(message.starts_with(UNREACHABLE), "{args:?}: {message}");
        assert!(
            message.trim_end().ends_with(NOT_AN_APPLIANCE),
            "{args:?}: {message}"
        );
        assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn on_a_bus_without_systemd_status_explains_and_exits_1() {
    let bus = TestBus::start().expect("private dbus-daemon (Debian package dbus-daemon)");
    let mut command = bunkerctl(bus.address());
    command.arg("status");
    let output = run(command);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.starts_with(UNREACHABLE), "{message}");
    assert!(message.contains("org.freedesktop.systemd1"), "{message}");
    assert!(message.trim_end().ends_with(NOT_AN_APPLIANCE), "{message}");
}

/// Starts the console screen, waits for two frames showing the error, stops it with `signal`.
fn console_retries_then_stops_on(signal: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = bunkerctl(&absent_bus(&dir));
    command
        .args(["status", "--watch", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut console = command.spawn().expect("bunkerctl starts");
    let screen = read_until_frames(&mut console, 2);

    let frames: Vec<&str> = screen.split("\x1b[H\x1b[2J").skip(1).collect();
    assert!(frames.len() >= 2, "two frames: {screen:?}");
    for frame in &frames[..2] {
        assert!(frame.starts_with("BunkerOS — "), "{frame:?}");
        assert!(
            frame.contains(" UTC\n\ncannot reach systemd over D-Bus ("),
            "{frame:?}"
        );
        assert!(frame.contains("Trying again in 1 s.\n"), "{frame:?}");
        assert!(
            frame.ends_with(
                "This is the appliance console. Refreshes every 1 s. Operators manage this site \
                 with bunkerctl over the management network.\n"
            ),
            "{frame:?}"
        );
    }

    // End only the process this test started, by its PID.
    let pid = console.id().to_string();
    let sent = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = wait_with_timeout(&mut console, Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "console exits 0 on {signal}"
    );
}

#[test]
fn console_keeps_retrying_without_a_bus_and_stops_on_sigterm() {
    console_retries_then_stops_on("-TERM");
}

#[test]
fn console_stops_on_sigint() {
    console_retries_then_stops_on("-INT");
}

/// Reads the console's stdout until it has started `frames + 1` frames (so `frames` are complete),
/// or 15 s pass. Kills the console (our child, by PID) if it never gets there.
fn read_until_frames(console: &mut Child, frames: usize) -> String {
    let mut stdout = console.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0_u8; 4096];
        while let Ok(read) = stdout.read(&mut buffer) {
            if read == 0 || tx.send(buffer[..read].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while String::from_utf8_lossy(&screen)
        .matches("\x1b[H\x1b[2J")
        .count()
        <= frames
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(bytes) => screen.extend(bytes),
            Err(_) => {
                let _ = console.kill();
                let _ = console.wait();
                panic!(
                    "console drew too few frames: {:?}",
                    String::from_utf8_lossy(&screen)
                );
            }
        }
    }
    String::from_utf8_lossy(&screen).into_owned()
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
