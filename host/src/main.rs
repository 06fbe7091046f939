//! `push-devices-host serve`: run the push-devices component over HTTP, as Spin would.

use clap::{Parser, Subcommand, ValueEnum};
use push_devices_host::{Host, HostConfig, Routes, StoreChoice, dev, manifest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "push-devices-host",
    version,
    about = "Runs the push-devices component like Spin"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the component over HTTP/1.1.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// The component to run.
    #[arg(long, default_value = "target/wasm32-wasip2/release/push_devices.wasm")]
    component: PathBuf,
    /// Key-value store: a SQLite file path, or `memory`.
    #[arg(long, default_value = "push-devices.db")]
    store: String,
    /// Spin manifest whose [variables] to load (default: spin.toml if it exists).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Generate throwaway secrets for unset token secrets and print a curl command.
    #[arg(long)]
    dev: bool,
    /// Async runtime flavour.
    #[arg(long, value_enum, default_value_t = Runtime::CurrentThread)]
    runtime: Runtime,
}

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    /// One thread for all connections (fastest per request; see HOST-NOTES).
    CurrentThread,
    /// Tokio's work-stealing runtime on all cores.
    MultiThread,
}

fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("push-devices-host: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: ServeArgs) -> Result<(), String> {
    let (mut variables, routes) = load_manifest(args.manifest.as_deref())?;
    let mut token = None;
    if args.dev {
        let set = dev::fill_dev_secrets(&mut variables).map_err(|e| format!("getrandom: {e}"))?;
        if !set.is_empty() {
            eprintln!("--dev: generated throwaway values for {}", set.join(", "));
        }
        if let Some(secret) = variables.get("auth_token_secret") {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            let now = u32::try_from(now).map_err(|_| "clock past 2106".to_owned())?;
            match dev::user_token(secret, dev::DEMO_USER_ID, now) {
                Ok(t) => token = Some(t),
                // The component refuses this secret too; say why rather than print a token
                // that cannot work.
                Err(e) => eprintln!("--dev: no demo token: auth_token_secret is unusable ({e:?})"),
            }
        }
    }

    let mut config = HostConfig::new(args.component.clone());
    config.variables = variables;
    if let Some(routes) = routes {
        config.routes = routes;
    }
    config.store = match args.store.as_str() {
        "memory" => StoreChoice::Memory,
        path => StoreChoice::Sqlite(PathBuf::from(path)),
    };
    let host = Host::load(config).map_err(|e| format!("{e:#}"))?;

    let runtime = match args.runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()
    .map_err(|e| format!("cannot start tokio: {e}"))?;

    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "push-devices-host: serving {} on http://{addr} (store: {})",
            args.component.display(),
            args.store
        );
        if let Some(token) = token {
            eprintln!(
                "--dev: register a device for user {} with:\n{}",
                dev::DEMO_USER_ID,
                dev::curl_register(&addr.to_string(), &token)
            );
        }
        host.serve(listener, shutdown_signal())
            .await
            .map_err(|e| format!("{e:#}"))?;
        eprintln!("push-devices-host: stopped");
        Ok(())
    })
}

/// `[variables]` of the manifest, overridden by `SPIN_VARIABLE_*`, and its HTTP routes
/// (none without a manifest: then everything goes to the component).
fn load_manifest(
    path: Option<&std::path::Path>,
) -> Result<(BTreeMap<String, String>, Option<Routes>), String> {
    let path = match path {
        Some(p) => p.to_owned(),
        None if std::path::Path::new("spin.toml").exists() => PathBuf::from("spin.toml"),
        None => return Ok((BTreeMap::new(), None)),
    };
    let m = manifest::load_manifest(&path)?;
    let routes = if m.http_routes.is_empty() {
        None
    } else {
        Some(Routes::parse(&m.http_routes).map_err(|e| format!("{}: {e}", path.display()))?)
    };
    let (values, missing) = manifest::resolve(&m.variables, |k| std::env::var(k).ok());
    for name in missing {
        // Spin refuses to start; we start (so --dev can fill secrets) but say so.
        eprintln!(
            "push-devices-host: required variable {name} has no value (set {})",
            manifest::env_name(&name)
        );
    }
    Ok((values, routes))
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("push-devices-host: cannot watch SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    eprintln!("push-devices-host: shutting down, finishing in-flight requests");
}
