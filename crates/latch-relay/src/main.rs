//! `latch-relay`: parse configuration, set up logging, serve until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use latch_relay::clock::SystemClock;
use latch_relay::config::{Args, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: every envelope allocates and frees a few small buffers on
/// one thread and drops them on another, where glibc spent a visible share of the relay's CPU
/// consolidating and unlinking chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            report(&e);
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let relay = match latch_relay::server::start(config, Arc::new(SystemClock)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start relay");
                return ExitCode::FAILURE;
            }
        };
        // Tests and scripts read the bound addresses (port 0) from these stdout lines; the
        // metrics line, when there is one, comes first.
        if let Some(addr) = relay.metrics_addr() {
            println!("latch-relay metrics on {addr}");
        }
        println!("latch-relay listening on {}", relay.local_addr());
        let token = relay.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            token.cancel();
        });
        match relay.run_until_shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "relay stopped with an error");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("signal received");
}

/// Configuration errors happen before logging is set up, so they go straight to stderr.
#[allow(clippy::print_stderr)]
fn report(e: &dyn std::fmt::Display) {
    eprintln!("latch-relay: {e}");
}
