//! Configuration: built-in defaults, overridden by a TOML file, overridden by environment
//! variables (`LATCH_RELAY_*`), overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::api::DEFAULT_MAX_ENVELOPE_BYTES;
use crate::limits::Rate;
use crate::store::sqlite::Durability;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for [`Config`].
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Every setting of the relay. Field defaults are the production defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address of a separate plain-HTTP listener serving `/metrics` (and `/healthz`); unset,
    /// metrics are not served at all. Metrics tell traffic patterns, so they are kept off
    /// the public listener: bind this to loopback or a private network.
    pub metrics_listen: Option<SocketAddr>,
    /// The SQLite database file.
    pub database: PathBuf,
    /// Commit durability (`full`: survives power loss; `normal`: survives a relay crash).
    pub durability: Durability,
    /// PEM certificate chain; with `tls_key`, the relay speaks TLS (wss://).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Largest envelope body accepted.
    pub max_envelope_bytes: usize,
    /// Most envelopes one mailbox holds: bounds the disk one device can make the relay use
    /// (with the default body cap, 10,000 × 64 KiB = 640 MiB worst case).
    pub queue_cap: u64,
    /// How long an undelivered envelope is kept.
    pub envelope_ttl_ms: u64,
    /// Per-device request rate: stops one account flooding mailboxes or the writer.
    pub device_rate: Rate,
    /// Per-IP frame rate (all connections of the address, before and after login): stops
    /// unauthenticated floods and many-device abuse from one host.
    pub ip_rate: Rate,
    /// Time allowed from connect to successful authentication: frees sockets held by clients
    /// that never sign in.
    pub handshake_timeout_ms: u64,
    /// A connection that sends nothing (not even a ping) for this long is closed.
    pub idle_timeout_ms: u64,
    /// How long a challenge nonce can be answered.
    pub challenge_ttl_ms: u64,
    /// Requests one connection may have awaiting commit: pipelining without unbounded memory.
    pub max_inflight_per_connection: usize,
    /// One-time prekey count under which the owner is told to replenish.
    pub prekey_low_threshold: u32,
    /// Least time between two `PrekeysLow` notices to one device: claims in a row send one
    /// notice, not one each (the owner learns its count again at every login anyway).
    pub prekey_low_notice_interval_ms: u64,
    /// Prekey claims per claiming identity (all its devices together): one account cannot
    /// drain everybody's one-time prekeys.
    pub claim_rate: Rate,
    /// Prekey claims per claimed identity (from all claimers together): however many
    /// accounts gang up, one identity's one-time prekeys drain, and its owner is asked to
    /// make new ones, at most this fast.
    pub claim_target_rate: Rate,
    /// Most devices one identity may register: bounds a claim over all its devices (work in
    /// the writer and the answer's size, at most [`crate::api::MAX_BUNDLES_PER_CLAIM`]).
    pub max_devices_per_identity: u32,
    /// Most one-time prekeys stored for one device; an upload past it stores only what fits.
    pub max_one_time_prekeys: u32,
    /// How often expired envelopes are deleted (delivery hides them at once regardless).
    pub purge_interval_ms: u64,
    /// How long shutdown waits for connections to finish their in-flight commits.
    pub shutdown_grace_ms: u64,
    /// Most bytes queued for one connection's socket: a client that stops reading holds at
    /// most this much relay memory before it is closed with `TooSlow`.
    pub outbound_queue_bytes: usize,
    /// How long one socket write, or a delivery waiting for queue room, may take before the
    /// client is judged too slow and its connection closed.
    pub write_timeout_ms: u64,
    /// Log format.
    pub log_format: LogFormat,
}

/// The port the relay listens on by default, the one the app and the CLI connect to
/// (`ws://127.0.0.1:7878`).
pub const DEFAULT_PORT: u16 = 7878;

/// Thirty days, the life of an undelivered envelope.
pub const DEFAULT_ENVELOPE_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            metrics_listen: None,
            database: PathBuf::from("latch-relay.db"),
            durability: Durability::Full,
            tls_cert: None,
            tls_key: None,
            max_envelope_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
            queue_cap: 10_000,
            envelope_ttl_ms: DEFAULT_ENVELOPE_TTL_MS,
            device_rate: Rate {
                per_second: 200.0,
                burst: 1_000.0,
            },
            ip_rate: Rate {
                per_second: 2_000.0,
                burst: 10_000.0,
            },
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 120_000,
            challenge_ttl_ms: 30_000,
            max_inflight_per_connection: 256,
            prekey_low_threshold: 10,
            prekey_low_notice_interval_ms: 60_000,
            claim_rate: Rate {
                per_second: 0.5,
                burst: 50.0,
            },
            claim_target_rate: Rate {
                per_second: 0.1,
                burst: 20.0,
            },
            max_devices_per_identity: 16,
            max_one_time_prekeys: 500,
            purge_interval_ms: 60_000,
            shutdown_grace_ms: 10_000,
            outbound_queue_bytes: 8 * 1024 * 1024,
            write_timeout_ms: 10_000,
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Parse a TOML config file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parse TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let c: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.message().to_owned(),
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Refuse settings that would make the relay unusable or unbounded.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_envelope_bytes == 0 || self.max_envelope_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "max_envelope_bytes must be 1..=16 MiB",
            ));
        }
        if self.queue_cap == 0 {
            return Err(ConfigError::Invalid("queue_cap must be positive"));
        }
        if self.max_inflight_per_connection == 0 {
            return Err(ConfigError::Invalid(
                "max_inflight_per_connection must be positive",
            ));
        }
        for r in [
            self.device_rate,
            self.ip_rate,
            self.claim_rate,
            self.claim_target_rate,
        ] {
            if !(r.burst >= 1.0 && r.per_second >= 0.0) {
                return Err(ConfigError::Invalid(
                    "rates need burst >= 1 and per_second >= 0",
                ));
            }
        }
        if self.max_devices_per_identity == 0
            || self.max_devices_per_identity as usize > crate::api::MAX_BUNDLES_PER_CLAIM
        {
            return Err(ConfigError::Invalid(
                "max_devices_per_identity must be 1..=84 (a claim answer must fit one frame)",
            ));
        }
        if self.max_one_time_prekeys == 0 {
            return Err(ConfigError::Invalid(
                "max_one_time_prekeys must be positive",
            ));
        }
        if self.prekey_low_notice_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "prekey_low_notice_interval_ms must be positive",
            ));
        }
        // Port 0 asks the system for a free port each time, so two of them never clash.
        if self.metrics_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError::Invalid(
                "metrics_listen must differ from listen",
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid("tls_cert and tls_key go together"));
        }
        Ok(())
    }
}

/// Command-line flags; each also reads a `LATCH_RELAY_*` environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "latch-relay",
    version,
    about = "Latch relay: stores and forwards ciphertext"
)]
pub struct Args {
    /// TOML config file (flags and environment override it).
    #[arg(long, env = "LATCH_RELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address, e.g. 0.0.0.0:7878.
    #[arg(long, env = "LATCH_RELAY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Separate listener for /metrics, e.g. 127.0.0.1:9478 (unset: no metrics).
    #[arg(long, env = "LATCH_RELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// SQLite database file.
    #[arg(long, env = "LATCH_RELAY_DATABASE")]
    pub database: Option<PathBuf>,
    /// Commit durability: full or normal.
    #[arg(long, env = "LATCH_RELAY_DURABILITY", value_parser = parse_durability)]
    pub durability: Option<Durability>,
    /// PEM certificate chain for TLS.
    #[arg(long, env = "LATCH_RELAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "LATCH_RELAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Largest envelope body in bytes.
    #[arg(long, env = "LATCH_RELAY_MAX_ENVELOPE_BYTES")]
    pub max_envelope_bytes: Option<usize>,
    /// Most envelopes per mailbox.
    #[arg(long, env = "LATCH_RELAY_QUEUE_CAP")]
    pub queue_cap: Option<u64>,
    /// Per-device sustained requests per second.
    #[arg(long, env = "LATCH_RELAY_DEVICE_RATE")]
    pub device_rate: Option<f64>,
    /// Per-device burst.
    #[arg(long, env = "LATCH_RELAY_DEVICE_BURST")]
    pub device_burst: Option<f64>,
    /// Per-IP sustained frames per second.
    #[arg(long, env = "LATCH_RELAY_IP_RATE")]
    pub ip_rate: Option<f64>,
    /// Per-IP burst.
    #[arg(long, env = "LATCH_RELAY_IP_BURST")]
    pub ip_burst: Option<f64>,
    /// Handshake timeout in milliseconds.
    #[arg(long, env = "LATCH_RELAY_HANDSHAKE_TIMEOUT_MS")]
    pub handshake_timeout_ms: Option<u64>,
    /// Idle timeout in milliseconds.
    #[arg(long, env = "LATCH_RELAY_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Prekey claims per second, per claiming identity.
    #[arg(long, env = "LATCH_RELAY_CLAIM_RATE")]
    pub claim_rate: Option<f64>,
    /// Prekey claim burst, per claiming identity.
    #[arg(long, env = "LATCH_RELAY_CLAIM_BURST")]
    pub claim_burst: Option<f64>,
    /// Prekey claims per second, per claimed identity.
    #[arg(long, env = "LATCH_RELAY_CLAIM_TARGET_RATE")]
    pub claim_target_rate: Option<f64>,
    /// Prekey claim burst, per claimed identity.
    #[arg(long, env = "LATCH_RELAY_CLAIM_TARGET_BURST")]
    pub claim_target_burst: Option<f64>,
    /// Least milliseconds between two PrekeysLow notices to one device.
    #[arg(long, env = "LATCH_RELAY_PREKEY_LOW_NOTICE_INTERVAL_MS")]
    pub prekey_low_notice_interval_ms: Option<u64>,
    /// Most devices per identity.
    #[arg(long, env = "LATCH_RELAY_MAX_DEVICES_PER_IDENTITY")]
    pub max_devices_per_identity: Option<u32>,
    /// Most one-time prekeys stored per device.
    #[arg(long, env = "LATCH_RELAY_MAX_ONE_TIME_PREKEYS")]
    pub max_one_time_prekeys: Option<u32>,
    /// Log format: text or json.
    #[arg(long, env = "LATCH_RELAY_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        _ => Err("expected full or normal".into()),
    }
}

impl Args {
    /// Resolve: defaults, then the file, then environment and flags (clap merges those two,
    /// flags winning).
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.database {
            c.database = v;
        }
        if let Some(v) = self.durability {
            c.durability = v;
        }
        if let Some(v) = self.tls_cert {
            c.tls_cert = Some(v);
        }
        if let Some(v) = self.tls_key {
            c.tls_key = Some(v);
        }
        if let Some(v) = self.max_envelope_bytes {
            c.max_envelope_bytes = v;
        }
        if let Some(v) = self.queue_cap {
            c.queue_cap = v;
        }
        if let Some(v) = self.device_rate {
            c.device_rate.per_second = v;
        }
        if let Some(v) = self.device_burst {
            c.device_rate.burst = v;
        }
        if let Some(v) = self.ip_rate {
            c.ip_rate.per_second = v;
        }
        if let Some(v) = self.ip_burst {
            c.ip_rate.burst = v;
        }
        if let Some(v) = self.handshake_timeout_ms {
            c.handshake_timeout_ms = v;
        }
        if let Some(v) = self.idle_timeout_ms {
            c.idle_timeout_ms = v;
        }
        if let Some(v) = self.log_format {
            c.log_format = v;
        }
        if let Some(v) = self.metrics_listen {
            c.metrics_listen = Some(v);
        }
        if let Some(v) = self.claim_rate {
            c.claim_rate.per_second = v;
        }
        if let Some(v) = self.claim_burst {
            c.claim_rate.burst = v;
        }
        if let Some(v) = self.claim_target_rate {
            c.claim_target_rate.per_second = v;
        }
        if let Some(v) = self.claim_target_burst {
            c.claim_target_rate.burst = v;
        }
        if let Some(v) = self.prekey_low_notice_interval_ms {
            c.prekey_low_notice_interval_ms = v;
        }
        if let Some(v) = self.max_devices_per_identity {
            c.max_devices_per_identity = v;
        }
        if let Some(v) = self.max_one_time_prekeys {
            c.max_one_time_prekeys = v;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(
            &file,
            "queue_cap = 5\nlisten = \"127.0.0.1:9000\"\n[device_rate]\nper_second = 1.0\nburst = 2.0\n",
        )
        .unwrap();
        let args = Args::try_parse_from([
            "latch-relay",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9001",
        ])
        .unwrap();
        let c = args.into_config().unwrap();
        assert_eq!(c.queue_cap, 5);
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.device_rate.burst, 2.0);
        assert_eq!(c.idle_timeout_ms, Config::default().idle_timeout_ms);
    }

    #[test]
    fn a_bare_relay_listens_where_the_app_connects() {
        let c = Args::try_parse_from(["latch-relay"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(c.listen.port(), DEFAULT_PORT);
        assert!(c.listen.ip().is_loopback());
        // The app's and the CLI's default relay (latch-client's DEFAULT_RELAY).
        assert_eq!(DEFAULT_PORT, 7878);
        assert_eq!(c.metrics_listen, None, "metrics are off unless asked for");
    }

    #[test]
    fn abuse_limits_have_defaults_and_flags() {
        let d = Config::default();
        assert_eq!(d.max_devices_per_identity, 16);
        assert_eq!(d.max_one_time_prekeys, 500);
        assert!(d.claim_target_rate.burst >= 1.0 && d.claim_rate.burst >= 1.0);
        let c = Args::try_parse_from([
            "latch-relay",
            "--claim-rate",
            "2",
            "--claim-burst",
            "3",
            "--claim-target-rate",
            "4",
            "--claim-target-burst",
            "5",
            "--max-devices-per-identity",
            "6",
            "--max-one-time-prekeys",
            "7",
            "--prekey-low-notice-interval-ms",
            "8",
            "--metrics-listen",
            "127.0.0.1:9478",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!((c.claim_rate.per_second, c.claim_rate.burst), (2.0, 3.0));
        assert_eq!(
            (c.claim_target_rate.per_second, c.claim_target_rate.burst),
            (4.0, 5.0)
        );
        assert_eq!(c.max_devices_per_identity, 6);
        assert_eq!(c.max_one_time_prekeys, 7);
        assert_eq!(c.prekey_low_notice_interval_ms, 8);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9478".parse().unwrap()));
        // A device cap whose claim answer could outgrow a client's frame is refused.
        assert!(matches!(
            Config::from_toml("max_devices_per_identity = 85"),
            Err(ConfigError::Invalid(_))
        ));
        assert!(Config::from_toml("max_devices_per_identity = 84").is_ok());
    }

    #[test]
    fn metrics_share_no_address_with_the_public_listener_unless_both_take_a_free_port() {
        let mut c = Config::default();
        c.metrics_listen = Some(c.listen);
        assert!(c.validate().is_err());
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        c.listen = any;
        c.metrics_listen = Some(any);
        assert!(c.validate().is_ok(), "each port 0 is its own free port");
    }

    #[test]
    fn bad_files_are_refused_clearly() {
        assert!(matches!(
            Config::from_toml("queue_cap = \"x\""),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::from_toml("nonsense = 1"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::from_toml("queue_cap = 0"),
            Err(ConfigError::Invalid(_))
        ));
    }
}
