//! poolsim: the Stratum V1 test pool as a program, for the QEMU profile and for trying minerd
//! or real miners against a pool that validates and counts every share. Controlled over a Unix
//! socket (`--control`): `outage on|off`, `silent on|off`, `difficulty D`, `stats`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sim::control::{ControlServer, Handler};
use sim::pool::{PoolSpec, TestPool};

#[derive(Debug, Parser)]
#[command(
    name = "poolsim",
    version,
    about = "Stratum V1 test pool that validates and counts every share"
)]
struct Args {
    /// Address to listen on for miners.
    #[arg(long, default_value = "127.0.0.1:3333")]
    listen: SocketAddr,
    /// Share difficulty (tiny by default: one share per 4096 hashes).
    #[arg(long, default_value_t = 1.0 / 1_048_576.0)]
    difficulty: f64,
    /// A new job on the same block this often.
    #[arg(long, default_value_t = 30_000)]
    job_interval_ms: u64,
    /// A new block (earlier jobs become stale) this often.
    #[arg(long, default_value_t = 600_000)]
    block_interval_ms: u64,
    /// Bytes of extranonce2 miners roll (1 to 8).
    #[arg(long, default_value_t = 4)]
    extranonce2_size: usize,
    /// BIP 310 version bits miners may roll, in hex; 0 refuses version rolling.
    #[arg(long, default_value = "1fffe000", value_parser = parse_hex_u32)]
    version_mask: u32,
    /// Unix socket for control commands.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Print one JSON stats line on stdout this often (seconds; 0 = never).
    #[arg(long, default_value_t = 0)]
    stats_interval: u64,
}

fn parse_hex_u32(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|e| format!("not a 32-bit hex number: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut spec = PoolSpec::new(args.listen);
    spec.difficulty = args.difficulty;
    spec.job_interval = Duration::from_millis(args.job_interval_ms);
    spec.block_interval = Duration::from_millis(args.block_interval_ms);
    spec.extranonce2_size = args.extranonce2_size;
    spec.version_mask = args.version_mask;
    if let Err(e) = spec.validate() {
        // EX_CONFIG, as every BunkerOS program refuses a bad configuration.
        eprintln!("poolsim: invalid pool settings: {e}");
        std::process::exit(78);
    }
    let pool = Arc::new(
        TestPool::start(spec)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?,
    );
    let _control = match &args.control {
        Some(path) => Some(
            ControlServer::bind(path, control_handler(pool.clone()))
                .with_context(|| format!("cannot serve control socket {}", path.display()))?,
        ),
        None => None,
    };
    tracing::info!(url = %pool.url(), "poolsim ready");
    if args.stats_interval > 0 {
        let mut every = tokio::time::interval(Duration::from_secs(args.stats_interval));
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => println!("{}", stats_line(&pool)),
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    } else {
        tokio::signal::ctrl_c().await?;
    }
    tracing::info!("poolsim stopping");
    Ok(())
}

fn stats_line(pool: &TestPool) -> String {
    serde_json::to_string(&pool.stats()).expect("stats serialize")
}

fn control_handler(pool: Arc<TestPool>) -> Handler {
    Arc::new(move |command: &str| {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["outage", state] => on_off(state).map(|down| pool.set_outage(down)),
            ["silent", state] => on_off(state).map(|silent| pool.set_silent(silent)),
            ["difficulty", value] => match value.parse::<f64>() {
                Ok(d) if d.is_finite() && d > 0.0 => {
                    pool.set_difficulty(d);
                    Ok(())
                }
                _ => Err(format!("difficulty {value:?} is not a positive number")),
            },
            ["stats"] => return stats_line(&pool),
            _ => Err("unknown command (outage on|off, silent on|off, difficulty D, stats)".into()),
        }
        .map_or_else(|e| format!("error: {e}"), |()| "ok".to_string())
    })
}

fn on_off(state: &str) -> Result<bool, String> {
    match state {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, got {other:?}")),
    }
}
