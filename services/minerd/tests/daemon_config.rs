//! The `minerd` binary's configuration edge: `--check-config` accepts the image's default file
//! and, over it, the QEMU profile's simulated site, and prints what it read; a bad file is refused with FILE:LINE and exit status 78, before
//! anything starts; `--version` and `--help` answer.

use std::path::Path;
use std::process::{Command, Output};

fn minerd(args: &[&str], root: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minerd"))
        .args(args)
        .env("BUNKEROS_ROOT", root)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("minerd runs")
}

fn image_config() -> String {
    format!(
        "{}/../../image/config/minerd.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The QEMU profile's site file (copied to /var/lib/bunkeros/config on first boot).
fn simulated_site() -> String {
    format!("{}/../../image/sim/minerd.toml", env!("CARGO_MANIFEST_DIR"))
}

/// A root with the image's defaults installed under /usr/share/bunkeros.
fn installed_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let share = root.path().join("usr/share/bunkeros");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::copy(image_config(), share.join("minerd.toml")).unwrap();
    root
}

#[test]
fn the_simulated_site_over_the_image_defaults_passes_check_config() {
    let root = installed_root();
    let out = minerd(
        &["--check-config", "--config", &simulated_site()],
        root.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("config OK: read "), "{stdout}");
    assert!(stdout.contains("owner client-a"), "{stdout}");
    assert!(stdout.contains("owner client-b"), "{stdout}");
    assert!(
        stdout.contains(
            "proxy: listening on 127.0.0.1:3333; miners mine on stratum+tcp://127.0.0.1:3333"
        ),
        "{stdout}"
    );
}

#[test]
fn the_image_defaults_are_read_from_usr_share_too() {
    // As installed: /usr/share/bunkeros/minerd.toml under the root, no site file.
    let root = installed_root();
    let out = minerd(&["--check-config"], root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("usr/share/bunkeros/minerd.toml"));
}

#[test]
fn a_bad_config_is_refused_with_file_line_and_status_78() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("bad.toml");
    std::fs::write(
        &file,
        "[operations]\nconcurrency = 0\n\n[[layout.range]]\ncidr = \"10.0.0.0/8\"\nowner = \"ghost\"\nlocation = \"hall\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    for args in [
        vec!["--check-config", "--config", path],
        vec!["--config", path],
    ] {
        let out = minerd(&args, root.path());
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{path}:2:")) && stderr.contains("operations.concurrency"),
            "{stderr}"
        );
        assert!(stderr.contains("layout.range[0].cidr"), "{stderr}");
        assert!(stderr.contains("layout.range[0].owner"), "{stderr}");
    }
    // A typo: the unknown key is named with its line.
    std::fs::write(
        &file,
        "[proxy]\nlisten = \"127.0.0.1:3333\"\nlisten_on = \"x\"\n",
    )
    .unwrap();
    let out = minerd(&["--check-config", "--config", path], root.path());
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{path}:3:")), "{stderr}");
    // Metrics off loopback are refused.
    std::fs::write(&file, "[metrics]\nlisten = \"0.0.0.0:9103\"\n").unwrap();
    let out = minerd(&["--check-config", "--config", path], root.path());
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn version_and_help_answer() {
    let root = tempfile::tempdir().unwrap();
    let version = minerd(&["--version"], root.path());
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("minerd "));
    let help = minerd(&["--help"], root.path());
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--check-config") && text.contains("--config"),
        "{text}"
    );
}
