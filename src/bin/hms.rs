//! `hms`: the HMS node binary.

#![warn(clippy::unwrap_used)]

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use hms::actors::host::probe::Monitor;
use hms::antagonist::inject::{self, SystemInjector};
use hms::cli::{AntagonistOpts, ControllerOpts, ManagerNodeOpts, StandaloneOpts, init_logging};
use hms::cluster::{ControllerNode, ManagerNode, ManagerParts};
use hms::http::{self, Api};
use hms::lab::bench::BenchCmd;
use hms::node::{Node, NodeParts};
use hms::probe::Prober;
use hms::probe::fake::FakeProber;
use hms::probe::icmp::IcmpProber;
use hms::runtime::ContainerRuntime;
use hms::runtime::docker::DockerRuntime;

/// Longest wait of a REST request for an actor's answer.
const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Parser)]
#[command(name = "hms", version, about = "Health monitor for Docker fleets")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Controller + local manager + REST in one process, on the local Docker engine.
    Standalone(Box<StandaloneOpts>),
    /// The controller node: fleet view, REST, host liveness; host managers join it.
    Controller(Box<ControllerOpts>),
    /// A host-manager node: heals the local engine and reports to the controller.
    Manager(Box<ManagerNodeOpts>),
    /// Fault injection on the local engine without a controller (ground truth in --data-dir).
    Antagonist(Box<AntagonistOpts>),
    /// Benchmarks (MTTR against a bare docker start, probing cost).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// The availability and bandwidth experiment: a controller, N manager processes, the
    /// antagonist, and independent sampling (see docs/experiments.md).
    Experiment(Box<hms::lab::experiment::ExperimentOpts>),
    /// An open-loop HTTP load with a rate schedule (see docs/load.md).
    Load(Box<hms::load::LoadOpts>),
    /// Both analysis methods over a recording, scored against its ground truth (docs/analysis.md).
    Analyze(Box<hms::lab::analyze::AnalyzeOpts>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    inject::install_panic_hook();
    let res = match Cli::parse().command {
        Cmd::Standalone(opts) => standalone(*opts).await,
        Cmd::Controller(opts) => controller(*opts).await,
        Cmd::Manager(opts) => manager(*opts).await,
        Cmd::Bench(cmd) => {
            init_logging(hms::cli::LogFormat::Text);
            hms::lab::bench::run(cmd).await
        }
        Cmd::Antagonist(opts) => antagonist(*opts).await,
        Cmd::Load(opts) => {
            init_logging(hms::cli::LogFormat::Text);
            hms::load::run(*opts).await
        }
        Cmd::Analyze(opts) => {
            init_logging(hms::cli::LogFormat::Text);
            hms::lab::analyze::run(&opts)
        }
        Cmd::Experiment(opts) => {
            init_logging(hms::cli::LogFormat::Text);
            hms::lab::experiment::run(*opts).await
        }
    };
    inject::undo_all_blocking();
    res
}

async fn antagonist(opts: AntagonistOpts) -> anyhow::Result<()> {
    init_logging(opts.log_format);
    let config = opts.patch().map_err(anyhow::Error::msg)?;
    let runtime = DockerRuntime::connect(std::time::Duration::from_secs(20)).await.context("docker engine")?;
    let parts = hms::antagonist::local::LocalRun {
        host: opts.name.clone().unwrap_or_else(hms::cli::hostname),
        runtime: Arc::new(runtime),
        injector: SystemInjector::detect(&opts.antagonist_table),
        select: opts.select.clone(),
        config,
        data_dir: opts.data_dir.clone(),
    };
    let status = hms::antagonist::local::run(parts, hms::shutdown::signal()).await?;
    println!("{}", serde_json::to_string(&status)?);
    Ok(())
}

async fn standalone(opts: StandaloneOpts) -> anyhow::Result<()> {
    init_logging(opts.log_format);
    let manager = opts.manager.to_config().map_err(anyhow::Error::msg)?;
    let token = opts.api_token.clone().filter(|t| !t.is_empty());
    if let Err(e) = http::check_bind(opts.http, token.as_deref()) {
        bail!("{e} (--http)");
    }
    let runtime = DockerRuntime::connect(manager.stop_timeout).await.context("cannot start: docker engine")?;
    let prober = IcmpProber::new().context("cannot start: icmp probing")?;
    let prober = hms::probe::counting::CountingProber::new(Arc::new(prober));
    let probe_counters = prober.counters();
    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .with_context(|| format!("cannot listen on {} (--http)", opts.http))?;
    let parts = NodeParts {
        runtime: Arc::new(runtime),
        prober: Arc::new(prober),
        monitor: Monitor::real().context("cannot start: response-time probing")?,
        manager,
        controller: opts.controller_config(),
    };
    let node = Node::standalone(parts, opts.data_dir.as_deref()).await.context("cannot start the node")?;
    let api = Api::connect(node.controller.clone(), API_TIMEOUT, token).await?;
    api.metrics.set_probe_counters(probe_counters);
    tracing::info!(http = %listener.local_addr()?, "hms standalone running");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, api, async move {
        let _ = stop_rx.await;
    }));
    hms::shutdown::signal().await;
    let _ = stop_tx.send(());
    node.stop().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    tracing::info!("hms stopped");
    Ok(())
}

async fn controller(opts: ControllerOpts) -> anyhow::Result<()> {
    init_logging(opts.log_format);
    let cookie = opts.cluster.cookie().map_err(anyhow::Error::msg)?;
    let token = opts.api_token.clone().filter(|t| !t.is_empty());
    if let Err(e) = http::check_bind(opts.http, token.as_deref()) {
        bail!("{e} (--http)");
    }
    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .with_context(|| format!("cannot listen on {} (--http)", opts.http))?;
    let node = ControllerNode::start(opts.controller_config(), opts.data_dir.as_deref(), opts.listen, cookie)
        .await
        .with_context(|| format!("cannot start the controller node (--listen {})", opts.listen))?;
    let api = Api::connect(node.controller.clone(), API_TIMEOUT, token).await?;
    tracing::info!(http = %listener.local_addr()?, cluster = %opts.listen, "hms controller running");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, api, async move {
        let _ = stop_rx.await;
    }));
    hms::shutdown::signal().await;
    let _ = stop_tx.send(());
    node.stop().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    tracing::info!("hms stopped");
    Ok(())
}

async fn manager(opts: ManagerNodeOpts) -> anyhow::Result<()> {
    init_logging(opts.log_format);
    let cookie = opts.cluster.cookie().map_err(anyhow::Error::msg)?;
    let mut config = opts.manager.to_config().map_err(anyhow::Error::msg)?;
    if opts.simulate.is_some() {
        config.antagonist.injector = Some(Arc::new(inject::FakeInjector::default()));
    }
    let (runtime, prober, monitor): (Arc<dyn ContainerRuntime>, Arc<dyn Prober>, Monitor) = match opts.simulate {
        Some(n) => (
            Arc::new(hms::lab::bench::simulated_engine(n, config.select.as_ref())),
            Arc::new(FakeProber::new()),
            Monitor::fake(),
        ),
        None => (
            Arc::new(DockerRuntime::connect(config.stop_timeout).await.context("cannot start: docker engine")?),
            Arc::new(IcmpProber::new().context("cannot start: icmp probing")?),
            Monitor::real().context("cannot start: response-time probing")?,
        ),
    };
    let name = config.name.clone();
    let (listen, controller) = (opts.listen, opts.controller.clone());
    let parts = ManagerParts { runtime, prober, monitor, config, listen, controller, cookie };
    let node = ManagerNode::start(parts, opts.data_dir.as_deref())
        .await
        .with_context(|| format!("cannot start the manager node (--listen {})", opts.listen))?;
    tracing::info!(host = %name, controller = ?opts.controller, "hms manager running");
    hms::shutdown::signal().await;
    node.stop().await;
    tracing::info!("hms stopped");
    Ok(())
}
