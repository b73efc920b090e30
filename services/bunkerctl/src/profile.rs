//! `bunkerctl profile`: check a hardware profile, or turn it into shell variables for the
//! image build.
//!
//! The image build runs `eval "$(bunkerctl profile env hardware/profiles/qemu-x86_64.toml)"`,
//! so a profile error stops the build with the same `FILE:LINE:COLUMN: sentence` lines a service
//! prints for a bad config, and exit status 78.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use appliance::config::ConfigError;
use appliance::profile::{self, Profile};
use clap::Subcommand;

/// What to do with a hardware profile.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ProfileCommand {
    /// Check a profile; prints `profile OK: NAME (PATH)` or every problem, one per line.
    Check {
        /// The profile file. Default: the one installed in the image.
        path: Option<PathBuf>,
    },
    /// Print the profile as `KEY='value'` lines for `eval` in bash (image build).
    Env {
        /// The profile file. Default: the one installed in the image.
        path: Option<PathBuf>,
    },
}

/// Runs `cmd`; a bad profile gives exit status 78 (`EX_CONFIG`), like a bad service config.
pub fn run(cmd: ProfileCommand) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    run_with(cmd, &mut stdout, &mut stderr)
}

/// [`run`] writing to the given streams, so tests can read what an operator would see.
fn run_with(
    cmd: ProfileCommand,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let (path, print_env) = match cmd {
        ProfileCommand::Check { path } => (path, false),
        ProfileCommand::Env { path } => (path, true),
    };
    let path = path.unwrap_or_else(profile::installed_path);
    let profile = match Profile::load(&path) {
        Ok(profile) => profile,
        Err(error) => {
            writeln!(err, "{error}").context("writing to stderr")?;
            return Ok(ExitCode::from(ConfigError::EXIT_CODE));
        }
    };
    if print_env {
        write!(out, "{}", profile.shell_env()).context("writing to stdout")?;
    } else {
        writeln!(
            out,
            "profile OK: {} ({})",
            profile.profile.name,
            path.display()
        )
        .context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hardware/profiles/qemu-x86_64.toml")
    }

    fn run_captured(cmd: ProfileCommand) -> (ExitCode, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(cmd, &mut out, &mut err).unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn check_accepts_the_shipped_profile() {
        let path = shipped();
        let (code, out, err) = run_captured(ProfileCommand::Check {
            path: Some(path.clone()),
        });
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(
            out,
            format!("profile OK: qemu-x86_64 ({})\n", path.display())
        );
        assert!(err.is_empty());
    }

    #[test]
    fn env_prints_shell_variables() {
        let (code, out, _) = run_captured(ProfileCommand::Env {
            path: Some(shipped()),
        });
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(
            out.starts_with("BUNKER_PROFILE_NAME='qemu-x86_64'\n"),
            "{out}"
        );
        assert!(out.contains("BUNKER_TPM_DEVICE='/dev/tpmrm0'\n"), "{out}");
    }

    #[test]
    fn a_bad_profile_prints_its_problems_and_exits_78() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[profile]\nnmae = \"x\"\n").unwrap();
        for cmd in [
            ProfileCommand::Check {
                path: Some(path.clone()),
            },
            ProfileCommand::Env {
                path: Some(path.clone()),
            },
        ] {
            let (code, out, err) = run_captured(cmd);
            assert_eq!(code, ExitCode::from(78));
            assert!(out.is_empty(), "nothing for eval to run: {out}");
            assert!(
                err.starts_with(&format!("{}:2:1: unknown key `nmae`", path.display())),
                "{err}"
            );
        }
    }

    #[test]
    fn the_subcommands_parse() {
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: ProfileCommand,
        }
        let cli = Cli::try_parse_from(["profile", "env", "x.toml"]).unwrap();
        assert_eq!(
            cli.cmd,
            ProfileCommand::Env {
                path: Some("x.toml".into())
            }
        );
        let cli = Cli::try_parse_from(["profile", "check"]).unwrap();
        assert_eq!(cli.cmd, ProfileCommand::Check { path: None });
    }
}
