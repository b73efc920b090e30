//! Network namespaces for tests that need real interfaces (TUN, veth): created by the test,
//! removed when the guard drops (on failure too), named with the test's PID so concurrent runs
//! do not meet.

use std::fs::File;
use std::process::{Command, Output};

/// Why namespaces cannot be used here, if they cannot (not root, no `ip netns`).
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: network namespaces need CAP_SYS_ADMIN".to_owned());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Some(format!("cannot run `ip` (iproute2): {error}")),
    }
}

/// The namespaces of one test; each is deleted when this drops (with its interfaces).
#[derive(Default)]
pub struct Namespaces {
    names: Vec<String>,
    /// Cables made so far between two namespaces, for the interface names.
    cables: std::sync::Mutex<std::collections::BTreeMap<(String, String), u32>>,
}

impl Namespaces {
    /// A new namespace `<short>-<pid>` with its loopback up; returns its name.
    pub fn add(&mut self, short: &str) -> String {
        let name = format!("{short}-{}", std::process::id());
        // A namespace left by a killed run of the same PID would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        // `ip netns add` in two processes at once can race on /run/netns: try again.
        for _ in 0..5 {
            let added = Command::new("ip").args(["netns", "add", &name]).output();
            if added.is_ok_and(|output| output.status.success()) {
                break;
            }
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.names.push(name.clone());
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair between namespaces `a` and `b`, addressed `a_address` and `b_address`
    /// (`10.99.1.1/24` style), both up. Each end is named `to-<other's short name>`; a second
    /// cable between the same two namespaces gets `-2`, and so on.
    pub fn veth(&self, (a, a_address): (&str, &str), (b, b_address): (&str, &str)) {
        run(
            "ip",
            &[
                "link", "add", "veth-a", "netns", a, "type", "veth", "peer", "name", "veth-b",
                "netns", b,
            ],
        );
        // Rename so further pairs can reuse the names.
        let cable = {
            let mut cables = self.cables.lock().unwrap();
            let count = cables.entry((a.to_owned(), b.to_owned())).or_insert(0);
            *count += 1;
            *count
        };
        let suffix = if cable == 1 {
            String::new()
        } else {
            format!("-{cable}")
        };
        let a_name = format!("to-{}{suffix}", short_of(b));
        let b_name = format!("to-{}{suffix}", short_of(a));
        run("ip", &["-n", a, "link", "set", "veth-a", "name", &a_name]);
        run("ip", &["-n", b, "link", "set", "veth-b", "name", &b_name]);
        for (ns, name, address) in [(a, &a_name, a_address), (b, &b_name, b_address)] {
            run("ip", &["-n", ns, "addr", "add", address, "dev", name]);
            run("ip", &["-n", ns, "link", "set", name, "up"]);
        }
    }

    /// `ip -n NS ARGS…`, which must succeed.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        stdout_of("ip", &all)
    }

    /// `ip netns exec NS PROGRAM ARGS…`, whatever its outcome.
    pub fn exec(&self, ns: &str, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program} in {ns}: {error}"))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// `work` run on a thread that has entered the network namespace `netns` (e.g. to reach a
/// daemon's loopback there).
pub fn within<T: Send>(netns: &str, work: impl FnOnce() -> T + Send) -> Option<T> {
    let handle = File::open(format!("/run/netns/{netns}")).ok()?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&handle),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .ok()?;
                Some(work())
            })
            .join()
            .ok()
            .flatten()
    })
}

/// The short name before the PID suffix.
fn short_of(name: &str) -> &str {
    name.rsplit_once('-').map_or(name, |(short, _)| short)
}

/// `program args…`, which must succeed: its stdout.
pub fn stdout_of(program: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(program, args).stdout).into_owned()
}

/// `program args…`, which must succeed.
fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
