//! Loading real files: layering, positions of errors, and files that cannot be read.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde::Deserialize;
use tempfile::TempDir;

use super::*;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Pool {
    url: String,
    timeout: DurationSecs<1, 600>,
    failover_after: DurationSecs<1, 600>,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            url: "stratum+tcp://127.0.0.1:3333".into(),
            timeout: DurationSecs::from_const(30),
            failover_after: DurationSecs::from_const(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Minerd {
    port: Port,
    bind: String,
    metrics: LoopbackAddr,
    pool: Pool,
    tags: Vec<String>,
}

impl Default for Minerd {
    fn default() -> Self {
        Self {
            port: Port::from_const(3333),
            bind: "0.0.0.0".into(),
            metrics: LoopbackAddr::localhost(Port::from_const(9103)),
            pool: Pool::default(),
            tags: vec!["default".into()],
        }
    }
}

impl ServiceConfig for Minerd {
    fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        if self.pool.failover_after >= self.pool.timeout {
            problems.push(Invalid::new(
                "pool.failover_after",
                format!(
                    "must be shorter than `pool.timeout` ({})",
                    self.pool.timeout
                ),
            ));
        }
        if self.tags.iter().any(String::is_empty) {
            problems.push(Invalid::new("tags", "must not contain an empty tag"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A scratch root with the two standard directories.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        fs::create_dir_all(dir.path().join("usr/share/bunkeros")).unwrap();
        fs::create_dir_all(dir.path().join("var/lib/bunkeros/config")).unwrap();
        Self { dir }
    }
    fn paths(&self) -> ConfigPaths {
        ConfigPaths::under_root(Some(self.dir.path()), "minerd", None)
    }
    fn write_defaults(&self, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.paths().defaults;
        fs::write(&path, text).unwrap();
        path
    }
    fn write_site(&self, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.paths().site;
        fs::write(&path, text).unwrap();
        path
    }
    fn load(&self) -> Result<Loaded<Minerd>, ConfigError> {
        self.paths().load::<Minerd>()
    }
}

#[test]
fn paths_follow_the_root_and_the_explicit_file() {
    let p = ConfigPaths::under_root(None, "hubd", None);
    assert_eq!(p.defaults, Path::new("/usr/share/bunkeros/hubd.toml"));
    assert_eq!(p.site, Path::new("/var/lib/bunkeros/config/hubd.toml"));
    assert!(!p.site_required);

    let p = ConfigPaths::under_root(Some(Path::new("/tmp/r")), "hubd", None);
    assert_eq!(p.defaults, Path::new("/tmp/r/usr/share/bunkeros/hubd.toml"));
    assert_eq!(
        p.site,
        Path::new("/tmp/r/var/lib/bunkeros/config/hubd.toml")
    );

    let p = ConfigPaths::under_root(
        Some(Path::new("/tmp/r")),
        "hubd",
        Some(Path::new("my.toml")),
    );
    assert_eq!(p.defaults, Path::new("/tmp/r/usr/share/bunkeros/hubd.toml"));
    assert_eq!(p.site, Path::new("my.toml"));
    assert!(p.site_required);
}

#[test]
fn no_files_means_built_in_defaults() {
    let root = Root::new();
    let loaded = root.load().unwrap();
    assert_eq!(loaded.value, Minerd::default());
    assert!(loaded.files.is_empty());
    assert_eq!(
        loaded.summary(),
        "config OK: no configuration files found, using built-in defaults"
    );
}

#[test]
fn site_overrides_defaults_and_nested_tables_merge() {
    let root = Root::new();
    let defaults = root.write_defaults(
        "port = 4000\ntags = [\"a\", \"b\"]\n[pool]\nurl = \"stratum+tcp://pool.example:3333\"\ntimeout = 60\n",
    );
    let site = root.write_site("port = 5000\ntags = [\"c\"]\n[pool]\nfailover_after = 20\n");
    let loaded = root.load().unwrap();
    let v = &loaded.value;
    assert_eq!(v.port.get(), 5000, "site wins");
    assert_eq!(
        v.tags,
        vec!["c".to_string()],
        "arrays are replaced, not appended"
    );
    assert_eq!(
        v.pool.url, "stratum+tcp://pool.example:3333",
        "kept from the defaults file"
    );
    assert_eq!(v.pool.timeout.secs(), 60, "kept from the defaults file");
    assert_eq!(v.pool.failover_after.secs(), 20, "set by the site file");
    assert_eq!(v.bind, "0.0.0.0", "built-in default");
    assert_eq!(loaded.files, vec![defaults.clone(), site.clone()]);
    assert_eq!(
        loaded.summary(),
        format!("config OK: read {}, {}", defaults.display(), site.display())
    );
}

#[test]
fn either_file_alone_is_fine() {
    let root = Root::new();
    root.write_site("port = 5000\n");
    assert_eq!(root.load().unwrap().port.get(), 5000);

    let root = Root::new();
    root.write_defaults("port = 4000\n");
    assert_eq!(root.load().unwrap().port.get(), 4000);
}

#[test]
fn unknown_key_is_reported_with_its_line() {
    let root = Root::new();
    let site = root.write_site("port = 5000\n\n[pool]\n    timout = 5\n");
    let err = root.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:4:5: unknown key `timout`, expected one of `url`, `timeout`, `failover_after`",
            site.display()
        )
    );
}

#[test]
fn wrong_type_is_reported_with_its_line() {
    let root = Root::new();
    let defaults = root.write_defaults("bind = 5\n");
    let err = root.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:8: wrong type: found integer `5`, expected a string",
            defaults.display()
        )
    );
}

#[test]
fn out_of_range_is_reported_with_its_line_and_value() {
    let root = Root::new();
    let site = root.write_site("bind = \"::\"\nport = 70000\n");
    let err = root.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:8: port 70000 is out of range, expected 1 to 65535",
            site.display()
        )
    );
}

#[test]
fn syntax_errors_have_positions_too() {
    let root = Root::new();
    let site = root.write_site("port = 1\nport = 2\n");
    let err = root.load().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:2:1: ", site.display())),
        "{err}"
    );
}

#[test]
fn problems_in_both_files_are_all_reported() {
    let root = Root::new();
    let defaults = root.write_defaults("prot = 1\n");
    let site = root.write_site("[pool]\ntimeout = 0\n");
    let err = root.load().unwrap_err();
    assert_eq!(err.problems().len(), 2);
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(&format!("{}:1:1: unknown key `prot`", defaults.display())));
    assert_eq!(
        lines[1],
        format!(
            "{}:2:11: duration 0 is out of range, expected 1 to 600 seconds",
            site.display()
        )
    );
}

#[test]
fn validation_names_the_key_and_the_file_that_set_it() {
    let root = Root::new();
    root.write_defaults("[pool]\ntimeout = 30\n");
    let site = root.write_site("tags = [\"x\"]\n\n[pool]\nfailover_after = 45\n");
    let err = root.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:4:1: `pool.failover_after`: must be shorter than `pool.timeout` (30 s)",
            site.display()
        )
    );
}

#[test]
fn validation_of_a_key_set_only_by_defaults_names_the_defaults_file() {
    let root = Root::new();
    let defaults = root.write_defaults("tags = [\"\"]\n");
    root.write_site("port = 4444\n");
    let err = root.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:1: `tags`: must not contain an empty tag",
            defaults.display()
        )
    );
}

#[test]
fn validation_of_a_built_in_value_says_so() {
    let root = Root::new();
    root.write_site("[pool]\ntimeout = 5\n");
    let err = root.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        "built-in default: `pool.failover_after`: must be shorter than `pool.timeout` (5 s)"
    );
}

#[test]
fn an_explicit_config_file_must_exist() {
    let root = Root::new();
    root.write_defaults("port = 4000\n");
    let missing = root.dir.path().join("nope.toml");
    let paths = ConfigPaths::under_root(Some(root.dir.path()), "minerd", Some(&missing));
    let err = paths.load::<Minerd>().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: the file does not exist", missing.display())
    );
    assert_eq!(ConfigError::EXIT_CODE, 78);
}

#[test]
fn an_explicit_config_file_replaces_the_site_file() {
    let root = Root::new();
    root.write_defaults("port = 4000\nbind = \"127.0.0.1\"\n");
    root.write_site("port = 5000\n");
    let explicit = root.dir.path().join("other.toml");
    fs::write(&explicit, "port = 6000\n").unwrap();
    let paths = ConfigPaths::under_root(Some(root.dir.path()), "minerd", Some(&explicit));
    let loaded = paths.load::<Minerd>().unwrap();
    assert_eq!(loaded.port.get(), 6000);
    assert_eq!(loaded.bind, "127.0.0.1");
    assert_eq!(loaded.files, vec![paths.defaults.clone(), explicit]);
}

#[test]
fn a_file_that_is_not_utf8_is_named_with_the_position_of_the_bad_byte() {
    let root = Root::new();
    let site = root.write_site(b"port = 5000\nbind = \"caf\xe9\"\n");
    let err = root.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:12: the file is not valid UTF-8 text (byte 0xe9 here)",
            site.display()
        )
    );
}

#[test]
fn a_directory_in_place_of_the_file_is_an_error() {
    let root = Root::new();
    let site = root.paths().site;
    fs::create_dir(&site).unwrap();
    let err = root.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: is a directory, not a configuration file",
            site.display()
        )
    );
}

#[test]
fn an_unreadable_file_is_an_error_not_a_missing_layer() {
    let root = Root::new();
    let site = root.write_site("port = 5000\n");
    fs::set_permissions(&site, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&site).is_ok() {
        // Running as root (CAP_DAC_OVERRIDE): permissions cannot make the file unreadable, so
        // make the path unreadable another way: a file where a directory is expected.
        let parent = site.parent().unwrap();
        fs::remove_dir_all(parent).unwrap();
        fs::write(parent, "not a directory").unwrap();
    }
    let err = root.load().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read the file: ", site.display())),
        "{err}"
    );
}

#[test]
fn load_file_reads_one_required_document() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("doc.toml");
    fs::write(&path, "port = 4000\n").unwrap();
    let v: Minerd = load_file(&path, |_: &Minerd| Ok(())).unwrap();
    assert_eq!(v.port.get(), 4000);

    let refused = load_file(&path, |_: &Minerd| {
        Err(vec![Invalid::new("bind", "is bad")])
    });
    assert_eq!(
        refused.unwrap_err().to_string(),
        format!("{}: `bind`: is bad", path.display()),
        "a key the file does not set is reported at the file"
    );

    let missing = dir.path().join("missing.toml");
    let err = load_file(&missing, |_: &Minerd| Ok(())).unwrap_err();
    assert!(matches!(err.problems(), [ConfigProblem::Missing { .. }]));
}

#[test]
fn a_validator_failing_without_reasons_still_refuses() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("doc.toml");
    fs::write(&path, "").unwrap();
    let err = load_file(&path, |_: &Minerd| Err(Vec::new())).unwrap_err();
    assert_eq!(err.problems().len(), 1);
}
