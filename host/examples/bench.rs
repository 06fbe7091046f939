//! In-process per-request cost, current-thread vs multi-thread tokio.
//!
//! ```text
//! cargo run -p push-devices-host --release --example bench -- COMPONENT [memory|sqlite] [METHOD PATH [HEADER:VALUE]...]
//! ```
//! Default request: `GET /`. Variables: `spin.toml` defaults if present, plus
//! 32+ byte `auth_token_secret` and `sync_token_secret` values (see the code).
//! Prints the median of 5 rounds, in µs per request.

use bytes::Bytes;
use push_devices_host::{GuestOutput, Host, HostConfig, StoreChoice};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const PER_ROUND: usize = 2000;
const IN_FLIGHT: usize = 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let component = args
        .next()
        .ok_or("usage: bench COMPONENT [memory|sqlite] [METHOD PATH [H:V]...]")?;
    let store = args.next().unwrap_or_else(|| "memory".into());
    let method = args.next().unwrap_or_else(|| "GET".into());
    let path = args.next().unwrap_or_else(|| "/".into());
    let headers: Vec<(String, String)> = args
        .filter_map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();

    let db = std::env::temp_dir().join(format!("push-devices-bench-{}.db", std::process::id()));
    let mut config = HostConfig::new(component.as_str());
    config.guest_output = GuestOutput::Discard;
    config.variables.insert(
        "auth_token_secret".into(),
        "bench-auth-secret-0123456789abcdef0123456789".into(),
    );
    config.variables.insert(
        "sync_token_secret".into(),
        "bench-sync-secret-0123456789abcdef0123456789".into(),
    );
    config.store = match store.as_str() {
        "sqlite" => StoreChoice::Sqlite(db.clone()),
        _ => StoreChoice::Memory,
    };
    let t = Instant::now();
    let host = Host::load(config)?;
    println!("load (compile + link): {:?}", t.elapsed());

    let make = move || {
        let mut b = http::Request::builder()
            .method(method.as_str())
            .uri(path.as_str());
        for (k, v) in &headers {
            b = b.header(k.as_str(), v.as_str());
        }
        b.body(Bytes::new())
    };
    let check = make.clone();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(host.handle(check()?))?;
    println!(
        "status {} ({} body bytes)",
        first.status(),
        first.body().len()
    );
    if !first.status().is_success() {
        println!("body: {}", String::from_utf8_lossy(first.body()));
    }

    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let seq = median(|| {
        current.block_on(async {
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                let _ = host.handle(make().ok()?).await.ok()?;
            }
            Some(t.elapsed())
        })
    });
    println!("current-thread, sequential:        {:>7.1} µs/req", us(seq));
    for (name, rt) in [("current-thread", &current), ("multi-thread  ", &multi)] {
        let d = median(|| {
            rt.block_on(async {
                let t = Instant::now();
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..IN_FLIGHT {
                    let host = host.clone();
                    let make = make.clone();
                    set.spawn(async move {
                        for _ in 0..PER_ROUND / IN_FLIGHT {
                            let _ = host.handle(make().ok()?).await.ok()?;
                        }
                        Some(())
                    });
                }
                for r in set.join_all().await {
                    r?;
                }
                Some(t.elapsed())
            })
        });
        println!("{name}, {IN_FLIGHT} in flight:      {:>7.1} µs/req", us(d));
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

fn median(mut round: impl FnMut() -> Option<Duration>) -> Option<Duration> {
    let mut v: Vec<Duration> = (0..ROUNDS).filter_map(|_| round()).collect();
    v.sort();
    v.get(v.len() / 2).copied()
}

fn us(d: Option<Duration>) -> f64 {
    d.map(|d| d.as_secs_f64() * 1e6 / PER_ROUND as f64)
        .unwrap_or(f64::NAN)
}
