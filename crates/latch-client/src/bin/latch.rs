//! `latch`: the headless Latch command line. Today it computes safety numbers.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use latch_protocol::fingerprint::{CURRENT_VERSION, DEFAULT_ITERATIONS, Fingerprint};

/// Latch command line.
#[derive(Parser)]
#[command(
    name = "latch",
    version,
    about = "Latch end-to-end encrypted messenger (headless)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compute a safety number (Signal's NumericFingerprint) and print it as one JSON line.
    SafetyNumber {
        /// Our stable identifier (e.g. handle), hashed as UTF-8.
        #[arg(long)]
        local_id: String,
        /// Our identity key, hex: exactly the bytes that are hashed.
        #[arg(long, value_parser = parse_hex)]
        local_key: HexKey,
        /// Their stable identifier.
        #[arg(long)]
        remote_id: String,
        /// Their identity key, hex: exactly the bytes that are hashed.
        #[arg(long, value_parser = parse_hex)]
        remote_key: HexKey,
        /// Scannable payload version.
        #[arg(long, default_value_t = CURRENT_VERSION)]
        version: u32,
        /// SHA-512 iterations.
        #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

/// Key bytes given in hex (a newtype so clap treats it as one value, not a list).
#[derive(Clone)]
struct HexKey(Vec<u8>);

fn parse_hex(s: &str) -> Result<HexKey, String> {
    let bytes = hex::decode(s).map_err(|e| format!("invalid hex: {e}"))?;
    if bytes.is_empty() {
        return Err("key must not be empty".into());
    }
    Ok(HexKey(bytes))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SafetyNumber {
            local_id,
            local_key,
            remote_id,
            remote_key,
            version,
            iterations,
        } => {
            let fp = match Fingerprint::new(
                version,
                iterations,
                local_id.as_bytes(),
                &local_key.0,
                remote_id.as_bytes(),
                &remote_key.0,
            ) {
                Ok(fp) => fp,
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "latch: {e}");
                    return ExitCode::from(2);
                }
            };
            let line = serde_json::json!({
                "digits": fp.display.to_string(),
                "scannable": hex::encode(fp.scannable.to_bytes()),
            });
            if writeln!(std::io::stdout(), "{line}").is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}
