//! `neutrino`: server, agent, all-in-one, demo and bench.

mod bench;
mod config;
mod demo;

use clap::{Parser, Subcommand};
use config::Options;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "neutrino", version, about = "Tenant networking for clouds, Neutron-compatible")]
struct Cli {
    /// Log format: `text` (no colours unless stderr is a terminal) or `json` (one object per
    /// line). `[DEFAULT] use_json = true` in a config file also asks for JSON.
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the Neutron v2.0 API.
    Server {
        /// INI file(s), Neutron-style; later files override earlier ones.
        #[arg(long = "config-file")]
        config_file: Vec<PathBuf>,
    },
    /// Run the per-host agent.
    Agent {
        #[arg(long = "config-file")]
        config_file: Vec<PathBuf>,
    },
    /// Server and local agent in one process, on embedded SQLite by default.
    AllInOne {
        #[arg(long = "config-file")]
        config_file: Vec<PathBuf>,
        /// Do not start the local agent.
        #[arg(long)]
        no_agent: bool,
    },
    /// Build a small cloud in network namespaces, show who can ping whom, tear it down (root).
    Demo {
        /// Prefix of the namespaces the demo creates.
        #[arg(long, default_value = "nd")]
        prefix: String,
    },
    /// Measure API throughput, list latency and port activation time.
    Bench(Box<bench::BenchArgs>),
}

/// Logs on stderr: plain text, coloured only on a terminal, or JSON lines.
fn init_logging(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// The config files a subcommand reads, loaded (before logging starts: errors are returned).
fn config_of(cmd: &Cmd) -> Result<Option<Options>, String> {
    match cmd {
        Cmd::Server { config_file } | Cmd::Agent { config_file } | Cmd::AllInOne { config_file, .. } => {
            Options::load(config_file).map(Some)
        }
        _ => Ok(None),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = match config_of(&cli.command) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("neutrino: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = match cli.log_format.as_deref() {
        Some(format) => format == "json",
        None => options.as_ref().is_some_and(Options::use_json),
    };
    init_logging(json);
    if let Some(o) = &options {
        o.log_ignored();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Cmd::Server { .. } => run_server(options.unwrap_or_default(), false).await,
            Cmd::Agent { .. } => run_agent(options.unwrap_or_default()).await,
            Cmd::AllInOne { no_agent, .. } => run_server(options.unwrap_or_default(), !no_agent).await,
            Cmd::Demo { prefix } => demo::run(&prefix).await,
            Cmd::Bench(args) => bench::run(*args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("neutrino: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run_server(opts: Options, with_agent: bool) -> Result<(), String> {
    let config = opts.server()?;
    if config.connection.starts_with("sqlite:///") {
        let path = PathBuf::from(config.connection.trim_start_matches("sqlite:///"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let pool_size = opts.get("database", "max_pool_size").and_then(|v| v.parse().ok()).unwrap_or(16);
    let store = connect_when_ready(&config.connection, pool_size).await?;
    let listener = match inherited_listener()? {
        Some(l) => l,
        None => {
            let addr = format!("{}:{}", config.bind_host, config.bind_port);
            tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?
        }
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, database = %redact(&config.connection), "serving the Neutron v2.0 API");
    let agent_opts = with_agent.then(|| {
        let mut o = opts.clone();
        if o.get("agent", "server_url").is_none() {
            let scheme = if config.ssl.is_some() { "https" } else { "http" };
            o.set("agent", "server_url", &format!("{scheme}://{addr}"));
        }
        if o.get("vxlan", "local_ip").is_none() {
            o.set("vxlan", "local_ip", "127.0.0.1");
        }
        o
    });
    // Starting reads the database again: a database that goes away meanwhile (it restarts) is
    // waited for as at connect, not a reason to exit.
    let mut store = store;
    let app = loop {
        match neutrino_server::App::new(store.clone(), config.clone()).await {
            Ok(app) => break app,
            Err(e) if e.transient().is_some() => {
                tracing::warn!(error = %e, "the database went away while starting; waiting for it");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                store = connect_when_ready(&config.connection, pool_size).await?;
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    if let Some(o) = agent_opts {
        tokio::spawn(async move {
            if let Err(e) = run_agent(o).await {
                tracing::warn!("local agent not running: {e}");
            }
        });
    }
    match config.ssl.as_ref().map(neutrino_tls::ServerTls::acceptor).transpose().map_err(|e| format!("[ssl] {e}"))? {
        Some(acceptor) => {
            let mutual = if config.ssl.as_ref().is_some_and(|s| s.ca_file.is_some()) {
                "client certificates required"
            } else {
                "no client certificates"
            };
            tracing::info!(%addr, mutual, "serving over TLS only ([ssl])");
            let listener = neutrino_tls::TlsListener::new(listener, acceptor).map_err(|e| e.to_string())?;
            neutrino_server::serve_until(app, listener, shutdown_signal()).await
        }
        None => neutrino_server::serve_until(app, listener, shutdown_signal()).await,
    }
    .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// The store, once the database answers: a server started before its database (or while it
/// restarts) waits, saying so, instead of exiting. A configuration error stops it at once.
async fn connect_when_ready(connection: &str, pool_size: u32) -> Result<neutrino_store::Store, String> {
    let mut waited = false;
    loop {
        match neutrino_store::Store::connect(connection, pool_size).await {
            Ok(store) => {
                if waited {
                    tracing::info!(database = %redact(connection), "the database answers");
                }
                return Ok(store);
            }
            Err(e) if e.transient().is_some() => {
                tracing::warn!(database = %redact(connection), error = %e, "waiting for the database; retrying in 1 s");
                waited = true;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn run_agent(opts: Options) -> Result<(), String> {
    let config = opts.agent()?;
    let dataplane = neutrino_dataplane::kernel::KernelDataPlane::with_namespace_prefix(&config.namespace_prefix)
        .await
        .map_err(|e| format!("cannot open netlink (are you root?): {e}"))?;
    tracing::info!(host = %config.host, local_ip = %config.local_ip, server = %config.server_url, "agent starting");
    neutrino_agent::run(config, dataplane, shutdown_signal()).await
}

/// A listening socket passed by the service manager (systemd socket activation:
/// `LISTEN_FDS`, first descriptor 3). The lab uses it to serve inside a namespace while the
/// process itself stays in the host's namespace (and reaches its database there).
fn inherited_listener() -> Result<Option<tokio::net::TcpListener>, String> {
    let count: u32 = std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if count == 0 {
        return Ok(None);
    }
    if let Ok(pid) = std::env::var("LISTEN_PID") {
        if pid != std::process::id().to_string() {
            return Ok(None);
        }
    }
    use std::os::fd::FromRawFd;
    // SAFETY: by the socket-activation protocol, descriptor 3 is a listening socket handed to
    // this process, and nothing else in the process owns it.
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(3) };
    std_listener.set_nonblocking(true).map_err(|e| format!("inherited socket: {e}"))?;
    tokio::net::TcpListener::from_std(std_listener).map(Some).map_err(|e| format!("inherited socket: {e}"))
}

/// A connection string without its password, for logs.
fn redact(connection: &str) -> String {
    match (connection.find("://"), connection.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &connection[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:***{}", &connection[..s + 3], &connection[at..])
                }
                None => connection.to_string(),
            }
        }
        _ => connection.to_string(),
    }
}
