//! minersim: a fleet of simulated ASIC miners on loopback addresses, each answering the
//! cgminer API like its firmware and mining real shares over Stratum V1.
//!
//! `minersim --first 127.1.0.2 --count 200 --pool stratum+tcp://127.0.0.1:3333`

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use sim::control::ControlServer;
use sim::fleet::{
    Fleet, FleetSpec, ModelMix, Personality, Privileged, SimPool, control, raise_fd_limit,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PrivilegedArg {
    All,
    None,
}

#[derive(Debug, Parser)]
#[command(about = "Simulated ASIC miners: cgminer API and Stratum V1 clients on 127.1.x.y")]
struct Args {
    /// The first miner's address.
    #[arg(long, default_value = "127.1.0.2")]
    first: Ipv4Addr,
    /// How many miners to start (addresses counted up from --first, holes skipped).
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Addresses left empty in the run, comma-separated.
    #[arg(long, value_delimiter = ',')]
    holes: Vec<Ipv4Addr>,
    #[arg(long, default_value_t = 4028)]
    api_port: u16,
    /// Personalities, comma-separated, each optionally `name=weight`:
    /// s9-bmminer, s19pro-bmminer, s9-bosminer, s19jpro-bosminer, s19jpro-luxos, cgminer.
    /// Default: all evenly.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// A pool every miner is configured with, in priority order (repeatable).
    #[arg(long = "pool")]
    pools: Vec<String>,
    /// The Stratum user; `{ip-with-dashes}` and `{ip}` become the miner's address.
    #[arg(long, default_value = "bunker.{ip-with-dashes}")]
    user_template: String,
    #[arg(long, default_value = "x")]
    password: String,
    /// Real hashes per second for the whole fleet's share search.
    #[arg(long, default_value_t = 200_000.0)]
    hash_budget: f64,
    /// Who may run privileged API commands (addpool, switchpool, restart…).
    #[arg(long, value_enum, default_value = "all")]
    privileged: PrivilegedArg,
    /// Room temperature, °C.
    #[arg(long, default_value_t = 25.0)]
    ambient: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds a `restart` keeps a miner down.
    #[arg(long, default_value_t = 60)]
    restart_seconds: u64,
    /// A Unix socket for control commands: `list`, `view IP`, `fault IP hang`, `clear IP`,
    /// `sleep IP`, `wake IP`, `power IP WATTS` (one per line, one reply line each).
    #[arg(long)]
    control: Option<std::path::PathBuf>,
}

fn model_mix(names: &[String]) -> anyhow::Result<ModelMix> {
    if names.is_empty() {
        return Ok(ModelMix::default());
    }
    let mut weights = Vec::new();
    for entry in names {
        let (name, weight) = match entry.split_once('=') {
            Some((n, w)) => (n, w.trim().parse::<u32>().context("model weight")?),
            None => (entry.as_str(), 1),
        };
        let Some(p) = Personality::from_cli_name(name) else {
            bail!(
                "unknown model '{name}': one of s9-bmminer, s19pro-bmminer, s9-bosminer, s19jpro-bosminer, s19jpro-luxos, cgminer"
            );
        };
        weights.push((p, weight));
    }
    Ok(ModelMix { weights })
}

fn spec(args: &Args) -> anyhow::Result<FleetSpec> {
    let mut spec = FleetSpec::new(args.first, args.count);
    spec.holes = args.holes.clone();
    spec.api_port = args.api_port;
    spec.models = model_mix(&args.models)?;
    spec.pools = args
        .pools
        .iter()
        .map(|url| SimPool {
            url: url.clone(),
            user: args.user_template.clone(),
            password: args.password.clone(),
        })
        .collect();
    spec.hash_budget = args.hash_budget;
    spec.privileged = match args.privileged {
        PrivilegedArg::All => Privileged::All,
        PrivilegedArg::None => Privileged::None,
    };
    spec.ambient_c = args.ambient;
    spec.seed = args.seed;
    spec.restart_time = Duration::from_secs(args.restart_seconds);
    spec.validate()?;
    Ok(spec)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let limit = raise_fd_limit().context("raising the open-file limit")?;
    tracing::info!(open_files = limit, "open-file limit");
    let fleet = Fleet::start(spec(&args)?)
        .await
        .context("starting the fleet")?;
    let _control = match &args.control {
        Some(path) => Some(
            ControlServer::bind(path, control::handler(&fleet))
                .with_context(|| format!("control socket {}", path.display()))?,
        ),
        None => None,
    };
    tracing::info!(
        miners = fleet.api_addresses().len(),
        first = %args.first,
        "minersim running; Ctrl-C or SIGTERM to stop"
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
    }
    fleet.stop().await;
    Ok(())
}
