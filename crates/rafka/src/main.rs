//! The `rafka` binary: reads configuration (defaults < server.properties < environment <
//! `--override`), starts one node (broker and controller) and shuts it down cleanly on SIGTERM or
//! SIGINT. With no arguments it is a single node on port 9092 keeping its data in ./rafka-data.
//!
//! It is also a multi-call binary for Kafka's command-line tools (see [`tools`]): `rafka
//! kafka-topics ...`, or invoked through a symlink named `kafka-topics` / `kafka-topics.sh` (and
//! likewise for every tool). `kafka-server-start(.sh) <server.properties> [--override k=v]...`
//! starts the broker exactly as `rafka <server.properties> --override ...` does.

mod container;
mod tools;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Parser;
use rafka_broker::config::sources;
use rafka_broker::{BrokerConfig, Node};

#[derive(Debug, Parser)]
#[command(
    name = "rafka",
    version,
    about = "A Kafka-compatible broker in one binary"
)]
struct Cli {
    /// A server.properties file (Java properties syntax, Kafka config names).
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The properties file as a positional argument, as kafka-server-start.sh takes it.
    #[arg(value_name = "SERVER_PROPERTIES", conflicts_with = "config")]
    positional_config: Option<PathBuf>,
    /// Set one config, `key=value`; may repeat; wins over the file and the environment.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn main() -> std::process::ExitCode {
    // `rafka docker-setup ...`: the container launchers' config step (see container.rs).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "docker-setup")
    {
        return container::main(std::env::args_os().skip(2));
    }
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let arg0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Called through a symlink named after a tool: act as that tool.
    if let Some(tool) = tools::tool_name(&arg0) {
        return std::process::ExitCode::from(tools::run_tool(tool, args));
    }
    let base = arg0.rsplit('/').next().unwrap_or(&arg0).to_string();
    let base = base.strip_suffix(".sh").unwrap_or(&base);
    // `rafka kafka-topics ...`: the first argument names the tool.
    if base != "kafka-server-start" {
        if let Some(tool) = args
            .get(1)
            .and_then(|a| a.to_str())
            .and_then(tools::tool_name)
        {
            args.remove(0);
            return std::process::ExitCode::from(tools::run_tool(tool, args));
        }
    }
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if first == "kafka-server-start" || first == "kafka-server-start.sh" {
            args.remove(0);
        }
    }
    init_logging();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rafka: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // openraft narrates every election at info, warns about ordinary races (a vote answer
        // that arrives after the vote changed) and logs every RPC to an unreachable voter as an
        // ERROR, twice a second while a voter is down. rafka logs the quorum's transitions, an
        // unreachable peer (once) and metadata storage failures in Kafka's words itself.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn load_config(cli: &Cli) -> anyhow::Result<BrokerConfig> {
    load_broker_config(
        cli.config.as_deref().or(cli.positional_config.as_deref()),
        &cli.overrides,
    )
}

/// The broker's configuration from a properties file, the environment and `--override`s; the
/// broker and `kafka-storage` both load it here so they cannot disagree.
pub(crate) fn load_broker_config(
    file: Option<&Path>,
    override_args: &[String],
) -> anyhow::Result<BrokerConfig> {
    let file_props = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            sources::parse_properties(&text)
        }
        None => BTreeMap::new(),
    };
    let env = sources::from_env(std::env::vars());
    let mut overrides = BTreeMap::new();
    for o in override_args {
        match sources::parse_override(o) {
            Ok((k, v)) => {
                overrides.insert(k, v);
            }
            Err(e) => bail!(e),
        }
    }
    let merged = sources::merge(&[&file_props, &env.props, &overrides]);
    let (mut config, warnings) = BrokerConfig::from_props(&merged)?;
    for w in warnings.0 {
        tracing::warn!("{w}");
    }
    config.cluster_id = env.cluster_id;
    Ok(config)
}

fn run(args: Vec<OsString>) -> anyhow::Result<()> {
    let cli = Cli::parse_from(args);
    let config = load_config(&cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rafka")
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        // Installed before the node starts: a SIGTERM right after "Kafka Server started" must
        // shut down cleanly, not kill the process with the default disposition.
        let signals = Signals::install()?;
        let node = Node::start(config).await?;
        signals.wait().await;
        node.shutdown().await?;
        Ok(())
    })
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
