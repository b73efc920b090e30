//! Atomic state files in the service's state directory.
//!
//! A service may be killed at any instant (watchdog, power loss, OOM) and must restart with its
//! state intact: either the old content or the new one, never a torn mix. Every write therefore
//! goes to a temporary file in the same directory, is flushed to disk, renamed over the old file
//! (atomic on POSIX file systems), and the directory is flushed so the rename itself survives a
//! power cut. A crash between those steps leaves only a temporary file, which the next
//! [`StateDir::open`] removes.
//!
//! State files are created with mode 0600: they hold things like pool credentials and peer keys,
//! and only the service's own user may read them.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Mode of every state file: read and write for the service's user only.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a state directory this module creates (systemd's `StateDirectory=` uses the same).
pub const DIR_MODE: u32 = 0o700;

/// Suffix of temporary files; state names may not produce it (they may not start with a dot).
const TEMP_SUFFIX: &str = ".tmp";

/// Distinguishes temporary files written concurrently by threads of one process.
static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Why a state operation failed; each variant names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The name would leave the directory, hide itself, or collide with temporary files.
    #[error("`{name}` is not a valid state file name: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The state directory could not be created or listed.
    #[error("state directory {}: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// Writing, flushing or renaming a state file failed; the old content is unchanged.
    #[error("cannot write state file {}: {source}", path.display())]
    Write {
        /// The state file that was being replaced.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The state file exists but could not be read.
    #[error("cannot read state file {}: {source}", path.display())]
    Read {
        /// The state file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The value could not be turned into JSON (e.g. a map with non-string keys).
    #[error("cannot encode state `{name}` as JSON: {source}")]
    Encode {
        /// The state file name.
        name: String,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// The file's content is not what the service expects (written by another version?).
    #[error("state file {} does not hold the expected data: {source}", path.display())]
    Decode {
        /// The state file.
        path: PathBuf,
        /// What serde_json said, with line and column.
        source: serde_json::Error,
    },
}

/// A service's state directory; all state files are written through it.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// The directory systemd gives the service in `$STATE_DIRECTORY`, or `/var/lib/<service>`
    /// when run outside systemd.
    pub fn from_env(service: &str) -> Result<Self, StateError> {
        let fallback = Path::new("/var/lib").join(service);
        Self::open(Self::resolve(
            std::env::var_os("STATE_DIRECTORY").as_deref(),
            &fallback,
        ))
    }

    /// The directory named by a `$STATE_DIRECTORY` value, or `fallback`.
    ///
    /// With several `StateDirectory=` entries systemd joins them with `:`; the first is the
    /// service's own.
    pub fn resolve(state_directory: Option<&OsStr>, fallback: &Path) -> PathBuf {
        state_directory
            .and_then(|value| value.to_str())
            .and_then(|value| value.split(':').find(|part| !part.is_empty()))
            .map_or_else(|| fallback.to_path_buf(), PathBuf::from)
    }

    /// Opens (creating with mode 0700 if needed) the directory at `path`, and removes temporary
    /// files left by a process that crashed while writing.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StateError> {
        let path = path.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&path)
            .map_err(|source| StateError::Directory {
                path: path.clone(),
                source,
            })?;
        let dir = Self { path };
        dir.remove_stale_temp_files()?;
        Ok(dir)
    }

    /// Same as [`StateDir::open`]; the name reads better in tests and callers with a fixed path.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, StateError> {
        Self::open(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the state file `name` with `bytes`, atomically and durably.
    ///
    /// When this returns Ok, the new content survives a power cut; if the process dies before,
    /// readers see the old content (or no file, if there was none).
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        check_name(name)?;
        let target = self.path.join(name);
        let temp = self.path.join(temp_name(name));
        let write_err = |source| StateError::Write {
            path: target.clone(),
            source,
        };
        let result = write_and_sync(&temp, bytes).and_then(|()| fs::rename(&temp, &target));
        if let Err(source) = result {
            // Best effort: a leftover would be removed by the next open anyway.
            let _ = fs::remove_file(&temp);
            return Err(write_err(source));
        }
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(write_err)
    }

    /// The content of state file `name`, or `None` if it was never written.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        check_name(name)?;
        let path = self.path.join(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    /// Removes state file `name`; removing a file that does not exist is not an error.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        check_name(name)?;
        let path = self.path.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Write { path, source }),
        }
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| StateError::Write { path, source })
    }

    /// Writes `value` as pretty JSON (readable by an operator with `jq`), atomically.
    ///
    /// JSON rather than TOML because state holds arbitrary serde shapes (maps with integer
    /// keys, `u64` above `i64::MAX`, top-level lists) that TOML cannot represent.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Encode {
            name: name.to_string(),
            source,
        })?;
        bytes.push(b'\n');
        self.write_atomic(name, &bytes)
    }

    /// Reads a value written by [`StateDir::write_json`]; `None` if it was never written.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let Some(bytes) = self.read(name)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Decode {
                path: self.path.join(name),
                source,
            })
    }

    /// Removes temporary files whose writer is gone (crashed mid-write).
    ///
    /// A temporary file carries its writer's PID; files of live processes (another thread of
    /// this service, or `bunkerctl` writing into the same directory) are left alone.
    fn remove_stale_temp_files(&self) -> Result<(), StateError> {
        let dir_err = |source| StateError::Directory {
            path: self.path.clone(),
            source,
        };
        for entry in fs::read_dir(&self.path).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            let Some(pid) = entry.file_name().to_str().and_then(temp_writer_pid) else {
                continue;
            };
            if !process_is_alive(pid) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(
                        file = %entry.path().display(),
                        "removed a temporary state file left by an interrupted write"
                    ),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(StateError::Directory {
                            path: entry.path(),
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Refuses names that would escape the directory or look like temporary files.
fn check_name(name: &str) -> Result<(), StateError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') {
        Some("it contains `/`; state files live directly in the state directory")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name.starts_with('.') {
        Some(
            "it starts with `.` (`.` and `..` leave the file, hidden names are for temporary files)",
        )
    } else if name.len() > 200 {
        Some("it is longer than 200 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StateError::BadName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `.<name>.<pid>.<sequence>.tmp`: hidden, and carrying the writer's PID for clean-up.
fn temp_name(name: &str) -> String {
    let sequence = TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{}.{sequence}{TEMP_SUFFIX}", std::process::id())
}

/// The writer's PID if `file_name` is one of our temporary files.
fn temp_writer_pid(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let mut parts = rest.rsplitn(3, '.');
    let _sequence: u64 = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    let _name = parts.next().filter(|name| !name.is_empty())?;
    Some(pid)
}

/// Whether process `pid` exists, judged by `/proc`.
///
/// Without a readable `/proc` only our own PID counts as alive, so a crashed writer's files are
/// still cleaned up.
fn process_is_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

/// Creates `path` (which must not exist), writes `bytes` and flushes them to disk.
fn write_and_sync(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use serde::Deserialize;
    use tempfile::TempDir;

    use super::*;

    fn scratch() -> (TempDir, StateDir) {
        let tmp = TempDir::new().unwrap();
        let dir = StateDir::new(tmp.path().join("minerd")).unwrap();
        (tmp, dir)
    }

    #[test]
    fn round_trip_and_missing_file() {
        let (_tmp, dir) = scratch();
        assert_eq!(dir.read("pools").unwrap(), None);
        dir.write_atomic("pools", b"one").unwrap();
        assert_eq!(dir.read("pools").unwrap().as_deref(), Some(&b"one"[..]));
        dir.write_atomic("pools", b"two, longer").unwrap();
        assert_eq!(
            dir.read("pools").unwrap().as_deref(),
            Some(&b"two, longer"[..])
        );
        dir.remove("pools").unwrap();
        dir.remove("pools").unwrap();
        assert_eq!(dir.read("pools").unwrap(), None);
    }

    #[test]
    fn only_the_state_file_remains_after_writes() {
        let (_tmp, dir) = scratch();
        for i in 0..5 {
            dir.write_atomic("counter", i.to_string().as_bytes())
                .unwrap();
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["counter".to_string()]);
    }

    #[test]
    fn state_files_and_created_directories_are_private() {
        let (_tmp, dir) = scratch();
        dir.write_atomic("secret", b"pool password").unwrap();
        let mode = fs::metadata(dir.path().join("secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, FILE_MODE);
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, DIR_MODE);
    }

    #[test]
    fn a_crashed_writers_temp_file_is_ignored_and_removed() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join("hubd");
        let dir = StateDir::new(&path).unwrap();
        dir.write_atomic("links", b"old complete content").unwrap();
        // A writer that died between write and rename: PID above any possible pid_max (2^22).
        let stale = path.join(format!(".links.{}.0.tmp", u32::MAX));
        fs::write(&stale, b"new but torn").unwrap();
        assert_eq!(
            dir.read("links").unwrap().as_deref(),
            Some(&b"old complete content"[..])
        );

        // A live writer's temp file (our own PID) must survive, unrelated hidden files too.
        let live = path.join(format!(".links.{}.999999.tmp", std::process::id()));
        fs::write(&live, b"in progress").unwrap();
        let unrelated = path.join(".keep");
        fs::write(&unrelated, b"").unwrap();

        let reopened = StateDir::new(&path).unwrap();
        assert!(!stale.exists(), "stale temp file removed on open");
        assert!(live.exists(), "a live writer's temp file is left alone");
        assert!(unrelated.exists());
        assert_eq!(
            reopened.read("links").unwrap().as_deref(),
            Some(&b"old complete content"[..])
        );
    }

    #[test]
    fn temp_names_carry_the_writer() {
        let name = temp_name("a.b");
        assert_eq!(temp_writer_pid(&name), Some(std::process::id()));
        assert_eq!(temp_writer_pid(".x.12.3.tmp"), Some(12));
        assert_eq!(temp_writer_pid(".12.3.tmp"), None);
        assert_eq!(temp_writer_pid("x.12.3.tmp"), None);
        assert_eq!(temp_writer_pid(".x.12.y.tmp"), None);
        assert_eq!(temp_writer_pid(".x.12.3"), None);
    }

    #[test]
    fn bad_names_are_refused() {
        let (tmp, dir) = scratch();
        for name in ["", "../escape", "a/b", "..", ".", ".hidden", "nul\0byte"] {
            let err = dir.write_atomic(name, b"x").unwrap_err();
            assert!(matches!(err, StateError::BadName { .. }), "{name:?}: {err}");
            assert!(
                matches!(dir.read(name), Err(StateError::BadName { .. })),
                "{name:?}"
            );
        }
        assert!(dir.write_atomic(&"n".repeat(201), b"x").is_err());
        assert!(!tmp.path().join("escape").exists());
        assert!(dir.write_atomic("ok.name-1_2", b"x").is_ok());
    }

    #[test]
    fn json_round_trip_and_decode_errors_name_the_file() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Miners {
            seen: BTreeMap<u64, String>,
            epoch: u64,
        }
        let (_tmp, dir) = scratch();
        let value = Miners {
            seen: BTreeMap::from([(7, "s9".into())]),
            epoch: u64::MAX,
        };
        dir.write_json("miners.json", &value).unwrap();
        assert_eq!(dir.read_json::<Miners>("miners.json").unwrap(), Some(value));
        assert_eq!(dir.read_json::<Miners>("other.json").unwrap(), None);

        dir.write_atomic("miners.json", b"{\"seen\": 5}").unwrap();
        let err = dir.read_json::<Miners>("miners.json").unwrap_err();
        assert!(matches!(err, StateError::Decode { .. }));
        assert!(err.to_string().contains("miners.json"), "{err}");
    }

    #[test]
    fn a_failed_write_leaves_the_old_content_and_no_temp_file() {
        let (_tmp, dir) = scratch();
        dir.write_atomic("state", b"old").unwrap();
        // A directory where the state file should be: the rename fails.
        fs::remove_file(dir.path().join("state")).unwrap();
        fs::create_dir(dir.path().join("state")).unwrap();
        fs::write(dir.path().join("state/inner"), b"").unwrap();
        let err = dir.write_atomic("state", b"new").unwrap_err();
        assert!(matches!(err, StateError::Write { .. }), "{err}");
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn state_directory_value_wins_over_the_fallback() {
        let fallback = Path::new("/var/lib/minerd");
        assert_eq!(StateDir::resolve(None, fallback), fallback);
        assert_eq!(
            StateDir::resolve(Some(OsStr::new("/var/lib/private/minerd")), fallback),
            Path::new("/var/lib/private/minerd")
        );
        assert_eq!(
            StateDir::resolve(Some(OsStr::new("/var/lib/a:/var/lib/b")), fallback),
            Path::new("/var/lib/a")
        );
        assert_eq!(StateDir::resolve(Some(OsStr::new("")), fallback), fallback);
    }
}
