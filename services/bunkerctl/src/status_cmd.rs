//! `bunkerctl status`: whether the BunkerOS services run, once (table or JSON) or as the console
//! status screen (`--watch`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::terminal::Palette;
use crate::time_display::now_usec;
use crate::{console, status, status_json, status_view};

const JSON_HELP: &str = "\
Print one line of JSON instead of the table: {\"hostname\": …, \"units\": [{\"unit\", \"role\", \
\"load_state\", \"active_state\", \"sub_state\", \"since_usec\", \"status_text\", \"main_pid\", \
\"restarts\"}]}, one entry per BunkerOS unit whether installed or not. States are systemd's own \
words; since_usec is µs since the epoch; absent values are null. Fields are only ever added.";

/// Options of `bunkerctl status`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
Exit status (as `systemctl is-active`): 0 when every installed BunkerOS unit is active, 3 when one \
is not, 1 when systemd cannot be reached. With --watch: 0 on SIGTERM or SIGINT.")]
pub struct StatusArgs {
    /// Print one line of JSON instead of the table
    #[arg(long, conflicts_with = "watch", long_help = JSON_HELP)]
    pub json: bool,

    /// Be the console status screen: clear the terminal and redraw every SECONDS until stopped
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub watch: Option<u64>,
}

/// Runs the subcommand to completion and returns its exit code.
pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let palette = Palette::for_stdout();
    match args.watch {
        Some(seconds) => runtime.block_on(console::run(Duration::from_secs(seconds), palette)),
        None => runtime.block_on(report_once(args.json, palette)),
    }
}

async fn report_once(json: bool, palette: Palette) -> Result<ExitCode> {
    let connection = status::connect().await?;
    let appliance = status::read_appliance_status(&connection).await?;
    let text = if json {
        status_json::status_json(&appliance).to_string() + "\n"
    } else {
        status_view::render_status(&appliance, now_usec(), palette)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    Ok(ExitCode::from(appliance.verdict().exit_code()))
}
