//! Service configuration: layered TOML files, checked before anything starts.
//!
//! A service's configuration is built from up to three layers, later ones winning:
//!
//! 1. the built-in defaults, `T::default()`;
//! 2. the image defaults, `/usr/share/bunkeros/<service>.toml` (optional; read-only root);
//! 3. the site file, `/var/lib/bunkeros/config/<service>.toml` (optional; data partition).
//!    `--config PATH` replaces this layer, and then the file must exist.
//!
//! Each file is first read on its own into `T`, so an unknown key, a wrong type or an
//! out-of-range value is reported as `FILE:LINE:COLUMN: sentence` in the file that has it. The
//! files are then merged as TOML tables (tables key by key, arrays replaced whole), read into `T`,
//! and [`ServiceConfig::validate`] checks what involves several values; its complaints name the
//! key and the file that set it. Any problem makes the service exit with
//! [`ConfigError::EXIT_CODE`] (78, `EX_CONFIG`) before it opens a socket or touches the TPM.
//!
//! `BUNKEROS_ROOT`: when set (and not empty), both default paths are looked up under this
//! directory instead of `/`, e.g. `BUNKEROS_ROOT=/tmp/root` reads
//! `/tmp/root/usr/share/bunkeros/minerd.toml`. The image build uses it to check the files it
//! installs into the root tree, and tests use it to run real binaries against a scratch tree.
//! A `--config PATH` is always taken as given.

mod error;
mod layer;
#[cfg(test)]
mod tests;
pub mod values;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::de::DeserializeOwned;

pub use error::{ConfigError, ConfigProblem, Origin};
pub use values::{Bounded, DurationSecs, LoopbackAddr, NotLoopback, OutOfRange, Percent, Port};

use layer::Layer;

/// Where the image installs each service's default configuration.
pub const DEFAULTS_DIR: &str = "/usr/share/bunkeros";
/// Where the site configuration lives, on the data partition.
pub const SITE_DIR: &str = "/var/lib/bunkeros/config";
/// Environment variable naming a directory that stands in for `/` (see the module docs).
pub const ROOT_ENV: &str = "BUNKEROS_ROOT";

/// A service's configuration type.
///
/// Declare the struct (and every nested struct) with
/// `#[serde(deny_unknown_fields, default)]` so that a typo is an error and a missing key takes
/// its default. A nested struct's `Default` must agree with what the parent's `Default` puts in
/// that field, because serde fills a partly written table from the nested type's `Default`.
/// Put range checks in the field types ([`Port`], [`Percent`], [`DurationSecs`], [`Bounded`],
/// [`LoopbackAddr`]) and only checks across several values in [`ServiceConfig::validate`].
pub trait ServiceConfig: DeserializeOwned + Default {
    /// Checks that involve several values, e.g. "failover_after must be shorter than timeout".
    ///
    /// Return every problem at once, so an operator fixes them in one round.
    fn validate(&self) -> Result<(), Vec<Invalid>> {
        Ok(())
    }
}

/// A value refused by a cross-field check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted path of the key to fix, e.g. `pool.failover_after`; `nic[1].name` for an array
    /// element. The loader looks this key up to say which file and line set it.
    pub key: String,
    /// Why it is refused, as the end of a sentence: "must be shorter than `pool.timeout` (30 s)".
    pub reason: String,
}

impl Invalid {
    /// A complaint about `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The files one service reads its configuration from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPaths {
    /// The image defaults layer; optional.
    pub defaults: PathBuf,
    /// The site layer (or the `--config` file).
    pub site: PathBuf,
    /// True when `site` was named explicitly (`--config`) and so must exist.
    pub site_required: bool,
}

impl ConfigPaths {
    /// The paths for `service`, honouring `--config` (`explicit`) and `$BUNKEROS_ROOT`.
    pub fn for_service(service: &str, explicit: Option<&Path>) -> Self {
        Self::under_root(root_from_env().as_deref(), service, explicit)
    }

    /// The paths for `service` with `root` standing in for `/` (no environment involved).
    pub fn under_root(root: Option<&Path>, service: &str, explicit: Option<&Path>) -> Self {
        let rooted = |dir: &str| rooted(root, &Path::new(dir).join(format!("{service}.toml")));
        match explicit {
            Some(path) => Self::new(rooted(DEFAULTS_DIR), path, true),
            None => Self::new(rooted(DEFAULTS_DIR), rooted(SITE_DIR), false),
        }
    }

    /// Exactly these paths.
    pub fn new(
        defaults: impl Into<PathBuf>,
        site: impl Into<PathBuf>,
        site_required: bool,
    ) -> Self {
        Self {
            defaults: defaults.into(),
            site: site.into(),
            site_required,
        }
    }

    /// Reads, merges and checks the layers into a `T`.
    pub fn load<T: ServiceConfig>(&self) -> Result<Loaded<T>, ConfigError> {
        self.load_checked(|_: &T| Ok(()))
    }

    /// Like [`load`](Self::load), and `also` checks the merged value against what only the
    /// caller knows (sited: the hardware profile's sensors); its complaints name keys that are
    /// located in the files like [`ServiceConfig::validate`]'s.
    pub fn load_checked<T, V>(&self, also: V) -> Result<Loaded<T>, ConfigError>
    where
        T: ServiceConfig,
        V: FnOnce(&T) -> Result<(), Vec<Invalid>>,
    {
        let mut layers = Vec::new();
        let mut problems = Vec::new();
        for (path, required) in [(&self.defaults, false), (&self.site, self.site_required)] {
            match layer::load::<T>(path, required) {
                Ok(Some(layer)) => layers.push(layer),
                Ok(None) => {}
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::new(problems));
        }
        let value = merge_layers::<T>(&layers)?;
        check(&value, &layers, Origin::BuiltIn, |value: &T| {
            match (value.validate(), also(value)) {
                (Ok(()), Ok(())) => Ok(()),
                // An empty list still refuses (see `check`).
                (Err(mut problems), Err(more)) => {
                    problems.extend(more);
                    Err(problems)
                }
                (Err(problems), Ok(())) | (Ok(()), Err(problems)) => Err(problems),
            }
        })?;
        Ok(Loaded {
            value,
            files: layers.into_iter().map(|layer| layer.path).collect(),
        })
    }
}

/// A configuration that was accepted, and the files it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<T> {
    /// The configuration.
    pub value: T,
    /// The files that were read, in layer order; empty when only built-in defaults apply.
    pub files: Vec<PathBuf>,
}

impl<T> Loaded<T> {
    /// The line `--check-config` prints, e.g.
    /// `config OK: read /usr/share/bunkeros/minerd.toml, /var/lib/bunkeros/config/minerd.toml`.
    pub fn summary(&self) -> String {
        if self.files.is_empty() {
            return "config OK: no configuration files found, using built-in defaults".into();
        }
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        format!("config OK: read {}", files.join(", "))
    }

    /// The configuration, dropping the list of files.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Loaded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// The directory standing in for `/`: `$BUNKEROS_ROOT` if set and not empty.
pub fn root_from_env() -> Option<PathBuf> {
    std::env::var_os(ROOT_ENV)
        .filter(|root| !root.is_empty())
        .map(PathBuf::from)
}

/// `path` (absolute, as on the appliance) under `root`, or unchanged without a root.
pub fn rooted(root: Option<&Path>, path: &Path) -> PathBuf {
    match root {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// Loads `service`'s configuration from the standard layers (or `--config`), and logs which
/// files were read so the journal shows what the service runs with.
pub fn load_and_report<T: ServiceConfig>(
    service: &str,
    explicit: Option<&Path>,
) -> Result<Loaded<T>, ConfigError> {
    let loaded = ConfigPaths::for_service(service, explicit).load::<T>()?;
    tracing::info!(service, "{}", loaded.summary());
    Ok(loaded)
}

/// What every binary's `--check-config` does: print `config OK: ...` or the problems.
///
/// Returns the exit status: success, or [`ConfigError::EXIT_CODE`].
pub fn check_config<T: ServiceConfig>(service: &str, explicit: Option<&Path>) -> ExitCode {
    match ConfigPaths::for_service(service, explicit).load::<T>() {
        Ok(loaded) => {
            println!("{}", loaded.summary());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            error.exit_code()
        }
    }
}

/// Prints the problems to stderr (the journal, under systemd) and exits with status 78.
///
/// For a service's startup: nothing has been started yet, so exiting is the clean thing to do,
/// and systemd records `status=78/CONFIG`.
pub fn report_and_exit(error: &ConfigError) -> ! {
    eprintln!("{error}");
    std::process::exit(i32::from(ConfigError::EXIT_CODE))
}

/// The loaded value, or [`report_and_exit`].
pub fn exit_on_error<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|error| report_and_exit(&error))
}

/// Reads one required file into `T` and runs `validate` on it, with the same error reporting
/// as the layered loader. For documents that are not layered, such as the hardware profile.
pub fn load_file<T, V>(path: &Path, validate: V) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
    V: FnOnce(&T) -> Result<(), Vec<Invalid>>,
{
    let text = layer::read_text(path, true)?.expect("a required file is never absent");
    let (value, table) = layer::parse::<T>(path, &text)?;
    let layers = [Layer {
        path: path.to_path_buf(),
        text,
        table,
    }];
    check(&value, &layers, Origin::File(path.to_path_buf()), validate)?;
    Ok(value)
}

/// Merges the layers' tables and reads the result into `T` (built-in defaults fill the rest).
fn merge_layers<T: ServiceConfig>(layers: &[Layer]) -> Result<T, ConfigError> {
    if layers.is_empty() {
        return Ok(T::default());
    }
    let mut merged = toml::Table::new();
    for layer in layers {
        layer::merge(&mut merged, layer.table.clone());
    }
    // Each layer was accepted alone, so this fails only when values from different files do
    // not fit together (e.g. a tagged enum whose tag and fields come from different files).
    merged.try_into::<T>().map_err(|e| {
        let origin = Origin::Merged(layers.iter().map(|l| l.path.clone()).collect());
        ConfigError::from(ConfigProblem::Invalid {
            origin,
            message: error::reword(e.message()),
        })
    })
}

/// Runs `validate` and turns its complaints into problems located in the last file setting
/// each key; a key no file sets is reported at `unset` (the built-in default, or the file).
fn check<T, V>(value: &T, layers: &[Layer], unset: Origin, validate: V) -> Result<(), ConfigError>
where
    V: FnOnce(&T) -> Result<(), Vec<Invalid>>,
{
    let Err(complaints) = validate(value) else {
        return Ok(());
    };
    if complaints.is_empty() {
        // A validator that fails without saying why still must not let the service start.
        return Err(ConfigProblem::Invalid {
            origin: unset,
            message: "the configuration was refused without a reason".into(),
        }
        .into());
    }
    let problems = complaints
        .into_iter()
        .map(|Invalid { key, reason }| {
            let origin = layers
                .iter()
                .rev()
                .find_map(|layer| layer::locate(layer, &key))
                .unwrap_or_else(|| unset.clone());
            ConfigProblem::Rejected {
                origin,
                key,
                reason,
            }
        })
        .collect();
    Err(ConfigError::new(problems))
}
