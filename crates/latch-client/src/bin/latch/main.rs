//! `latch`: the headless Latch client. Every command runs the same engine as the desktop app.
#![forbid(unsafe_code)]

mod call;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use latch_client::engine::validate_timer;
use latch_client::{ClientError, ConnectionState, Engine, Event, ProfileError, Profiles};
use latch_protocol::fingerprint::{CURRENT_VERSION, DEFAULT_ITERATIONS, Fingerprint};
use latch_store::{ContactId, ConversationId, MessageId, OsKeyring};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use latch_client::profile::DEFAULT_RELAY;

/// How long a one-shot command waits for the relay and for its outbox to empty.
const WAIT: Duration = Duration::from_secs(15);

/// Latch command line.
#[derive(Parser)]
#[command(
    name = "latch",
    version,
    about = "Latch end-to-end encrypted messenger (headless)"
)]
struct Cli {
    /// Where profiles live.
    #[arg(long, env = "LATCH_HOME", global = true)]
    home: Option<PathBuf>,
    /// Which profile to use.
    #[arg(long, short, env = "LATCH_PROFILE", global = true)]
    profile: Option<String>,
    /// Print JSON (one object per line) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Create a profile: keys in the OS keyring, an encrypted database.
    Create {
        /// Its name (lower-case letters, digits, '-', '_').
        name: String,
        /// The relay to register with.
        #[arg(long, default_value = DEFAULT_RELAY)]
        relay: String,
    },
    /// List profiles.
    List,
    /// Delete a profile everywhere: unregister from the relay, wipe its keyring entries
    /// and its files.
    Delete {
        /// Its name.
        name: String,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Manage profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Register this profile with its relay and claim a handle.
    Register {
        /// The handle (3-32 of a-z, 0-9, '_', '.').
        handle: String,
    },
    /// Print this profile's invite code.
    Invite,
    /// Add a contact by handle, or by invite code.
    Add {
        /// Their handle.
        #[arg(required_unless_present = "invite")]
        handle: Option<String>,
        /// Their invite code instead (does not trust the relay's directory).
        #[arg(long)]
        invite: Option<String>,
    },
    /// List conversations.
    Chats,
    /// Open the standard chat with a contact, or start a secret chat (`--secret`).
    Open {
        /// The contact's handle.
        handle: String,
        /// Start a secret chat: its own thread, bound to this device, never indexed.
        #[arg(long)]
        secret: bool,
        /// The secret chat's disappearing timer (5s to 24h).
        #[arg(long, default_value = "30s", value_parser = parse_timer)]
        timer: Timer,
    },
    /// Send a message.
    Send {
        /// Conversation id (from `chats` or `open`).
        chat: i64,
        /// The text.
        text: String,
    },
    /// Show a conversation's newest messages.
    History {
        /// Conversation id.
        chat: i64,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Mark a conversation read (starts disappearing timers, sends read receipts).
    Read {
        /// Conversation id.
        chat: i64,
    },
    /// Set a conversation's disappearing timer: off, or 5s..24h (e.g. 30s, 5m, 8h).
    Timer {
        /// Conversation id.
        chat: i64,
        /// The value.
        #[arg(value_parser = parse_timer)]
        value: Timer,
    },
    /// Edit one of your messages.
    Edit {
        /// Message id.
        message: i64,
        /// The new text.
        text: String,
    },
    /// Delete one of your messages for everyone.
    Delete {
        /// Message id.
        message: i64,
    },
    /// Show the safety number with a contact: 60 digits and the QR payload (hex).
    SafetyNumber {
        /// The contact's handle.
        handle: String,
    },
    /// Compare a scanned QR code with a contact's safety number: the payload in hex, or an
    /// image (PNG/JPEG screenshot or photo) with `--image`. Marks the contact verified when it
    /// matches.
    Verify {
        /// The contact's handle.
        handle: String,
        /// The scanned payload, hex.
        #[arg(required_unless_present = "image")]
        payload: Option<String>,
        /// An image holding the other side's QR code.
        #[arg(long)]
        image: Option<PathBuf>,
    },
    /// Accept a contact's new identity key (releases held secret-chat messages).
    AcceptKey {
        /// The contact's handle.
        handle: String,
        /// The new key you were shown: `key` of the `key_changed` event or of
        /// `safety-number`. Refused if the contact's key changed again since.
        key: String,
    },
    /// Accept a message request from someone who wrote first.
    Accept {
        /// Their handle.
        handle: String,
    },
    /// Decline a message request: deletes the contact and their chats.
    Decline {
        /// Their handle.
        handle: String,
    },
    /// Block a contact: what they send is dropped unread.
    Block {
        /// Their handle.
        handle: String,
    },
    /// Unblock a contact.
    Unblock {
        /// Their handle.
        handle: String,
    },
    /// Search standard chats (secret chats are never indexed).
    Search {
        /// The words.
        query: String,
    },
    /// Call a contact (voice) and stay in the call, printing its events as JSON lines, until
    /// either side hangs up (Ctrl-C hangs up).
    Call {
        /// The contact's handle.
        handle: String,
        #[command(flatten)]
        media: call::CallArgs,
    },
    /// Wait for a call to ring, answer it, and stay in it as `call` does.
    Answer {
        /// Decline instead of answering.
        #[arg(long)]
        decline: bool,
        /// How long to wait for a call, in seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
        #[command(flatten)]
        media: call::CallArgs,
    },
    /// Stay connected and print events as JSON lines.
    Listen {
        /// Mark conversations read as messages arrive (as an open chat window would).
        #[arg(long)]
        read: bool,
        /// Exit after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Read JSON commands from stdin (one per line) and print results and events as JSON
    /// lines: the whole engine over a pipe, for scripts and tests.
    Session,
    /// Compute a raw safety number (Signal's NumericFingerprint) from ids and keys.
    Fingerprint {
        /// Our stable identifier, hashed as UTF-8.
        #[arg(long)]
        local_id: String,
        /// Our identity key, hex: exactly the bytes that are hashed.
        #[arg(long, value_parser = parse_hex)]
        local_key: HexKey,
        /// Their stable identifier.
        #[arg(long)]
        remote_id: String,
        /// Their identity key, hex.
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

/// A disappearing timer: `None` is off.
#[derive(Clone, Copy)]
struct Timer(Option<u32>);

fn parse_timer(s: &str) -> Result<Timer, String> {
    if s == "off" {
        return Ok(Timer(None));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u32 = num.parse().map_err(|_| format!("invalid timer {s:?}"))?;
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3_600),
        _ => None,
    }
    .ok_or_else(|| format!("invalid timer {s:?}: use off, or e.g. 5s, 30s, 5m, 8h"))?;
    validate_timer(Some(secs)).map_err(|e| e.to_string())?;
    Ok(Timer(Some(secs)))
}

/// A command the engine runs, from the command line or from a `session` line.
#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
enum Request {
    Invite,
    Add {
        handle: Option<String>,
        invite: Option<String>,
    },
    Chats,
    Open {
        handle: String,
        #[serde(default)]
        secret: bool,
        timer: Option<u32>,
    },
    Send {
        chat: i64,
        text: String,
    },
    History {
        chat: i64,
        before: Option<i64>,
        limit: Option<u32>,
    },
    Read {
        chat: i64,
    },
    Timer {
        chat: i64,
        seconds: Option<u32>,
    },
    Draft {
        chat: i64,
        text: String,
    },
    Edit {
        message: i64,
        text: String,
    },
    Delete {
        message: i64,
    },
    SafetyNumber {
        handle: String,
    },
    Verify {
        handle: String,
        payload: Option<String>,
        image: Option<PathBuf>,
    },
    AcceptKey {
        handle: String,
        key: String,
    },
    /// `change`: `accept`, `decline`, `block` or `unblock`.
    Standing {
        handle: String,
        change: String,
    },
    Search {
        query: String,
    },
    Flush,
}

impl Request {
    /// Whether the command needs the relay connection up first.
    fn needs_relay(&self) -> bool {
        matches!(self, Self::Add { .. } | Self::Open { secret: true, .. })
    }

    /// Whether the command queues something to send.
    fn sends(&self) -> bool {
        matches!(
            self,
            Self::Send { .. }
                | Self::Read { .. }
                | Self::Timer { .. }
                | Self::Edit { .. }
                | Self::Delete { .. }
                | Self::Open { secret: true, .. }
                | Self::AcceptKey { .. }
                | Self::Flush
        )
    }
}

/// Why the command line failed.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("{0}")]
    Usage(String),
}

async fn execute(engine: &Engine, req: Request) -> Result<Value, CliError> {
    let contact =
        |handle: &str| -> Result<ContactId, CliError> { Ok(engine.contact_by_handle(handle)?.id) };
    Ok(match req {
        Request::Invite => json!({ "invite": engine.invite_code()? }),
        Request::Add { handle, invite } => {
            let id = match (handle, invite) {
                (_, Some(code)) => engine.add_contact_by_invite(&code).await?,
                (Some(h), None) => engine.add_contact(&h).await?,
                (None, None) => return Err(CliError::Usage("give a handle or --invite".into())),
            };
            let chat = engine.open_standard_chat(id)?;
            json!({ "contact_id": id.0, "chat": chat.0 })
        }
        Request::Chats => json!({ "chats": engine.conversations()? }),
        Request::Open {
            handle,
            secret,
            timer,
        } => {
            let c = contact(&handle)?;
            let chat = if secret {
                engine.start_secret_chat(c, timer.unwrap_or(30)).await?
            } else {
                engine.open_standard_chat(c)?
            };
            json!({ "chat": chat.0, "kind": if secret { "secret" } else { "standard" } })
        }
        Request::Send { chat, text } => {
            json!({ "message": engine.send_text(ConversationId(chat), &text)? })
        }
        Request::History {
            chat,
            before,
            limit,
        } => {
            let page = engine.messages(
                ConversationId(chat),
                before.map(MessageId),
                limit.unwrap_or(50),
            )?;
            json!({ "messages": page })
        }
        Request::Read { chat } => json!({ "read": engine.mark_read(ConversationId(chat))? }),
        Request::Draft { chat, text } => {
            json!({ "stored": engine.save_draft(ConversationId(chat), &text)? })
        }
        Request::Timer { chat, seconds } => {
            engine.set_timer(ConversationId(chat), seconds)?;
            json!({ "chat": chat, "seconds": seconds })
        }
        Request::Edit { message, text } => {
            json!({ "message": engine.edit_message(MessageId(message), &text)? })
        }
        Request::Delete { message } => {
            engine.delete_for_everyone(MessageId(message))?;
            json!({ "deleted": message })
        }
        Request::SafetyNumber { handle } => {
            let sn = engine.safety_number(contact(&handle)?)?;
            json!({
                "digits": sn.digits,
                "groups": sn.groups(),
                "qr_payload": hex::encode(&sn.qr_payload),
                "qr": sn.qr_modules().map_err(ClientError::from)?,
                "verified": sn.verified,
                "key": sn.key,
            })
        }
        Request::Verify {
            handle,
            payload,
            image,
        } => {
            let c = contact(&handle)?;
            let verified = match (payload, image) {
                (_, Some(path)) => {
                    let too_big = std::fs::metadata(&path)
                        .map(|m| m.len() > latch_client::qr::MAX_IMAGE_BYTES as u64)
                        .unwrap_or(false);
                    if too_big {
                        return Err(ClientError::Qr(latch_client::qr::QrError::FileTooLarge).into());
                    }
                    let bytes = std::fs::read(&path)
                        .map_err(|e| CliError::Usage(format!("cannot read the image: {e}")))?;
                    engine.verify_image(c, &bytes)?
                }
                (Some(hex_payload), None) => {
                    let bytes = hex::decode(hex_payload.trim())
                        .map_err(|_| CliError::Usage("the payload must be hex".into()))?;
                    engine.verify_scanned(c, &bytes)?
                }
                (None, None) => return Err(CliError::Usage("give a payload or --image".into())),
            };
            json!({ "verified": verified })
        }
        Request::Standing { handle, change } => {
            let id = contact(&handle)?;
            match change.as_str() {
                "accept" => engine.accept_request(id)?,
                "decline" => engine.decline_request(id)?,
                "block" => engine.block(id)?,
                "unblock" => engine.unblock(id)?,
                _ => {
                    return Err(CliError::Usage(
                        "change is accept, decline, block or unblock".into(),
                    ));
                }
            }
            json!({ "contact": handle, "change": change })
        }
        Request::AcceptKey { handle, key } => {
            engine.accept_key_change(contact(&handle)?, &key).await?;
            json!({ "accepted": handle })
        }
        Request::Search { query } => json!({ "results": engine.search(&query, 100)? }),
        Request::Flush => json!({ "flushed": engine.flush(WAIT).await? }),
    })
}

/// Prints one result: JSON, or `key: value` lines for people.
fn print(value: &Value, as_json: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if as_json {
        writeln!(out, "{value}")
    } else {
        match value {
            Value::Object(map) => {
                let mut r = Ok(());
                for (k, v) in map {
                    r = match v {
                        Value::String(s) => writeln!(out, "{k}: {s}"),
                        Value::Array(items) => {
                            let _ = writeln!(out, "{k}:");
                            items.iter().try_for_each(|i| writeln!(out, "  {i}"))
                        }
                        other => writeln!(out, "{k}: {other}"),
                    };
                }
                r
            }
            other => writeln!(out, "{other}"),
        }
    };
}

fn home(cli_home: Option<PathBuf>) -> Result<PathBuf, CliError> {
    cli_home
        .or_else(latch_client::profile::default_home)
        .ok_or_else(|| CliError::Usage("set --home, LATCH_HOME or HOME".into()))
}

async fn wait_online(engine: &Engine) -> Result<(), CliError> {
    let mut state = engine.connection();
    let online =
        tokio::time::timeout(WAIT, state.wait_for(|s| *s == ConnectionState::Online)).await;
    match online {
        Ok(Ok(_)) => Ok(()),
        _ => Err(ClientError::Offline.into()),
    }
}

fn event_json(e: &Event) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

async fn listen(engine: &Engine, read: bool, timeout: Option<u64>) {
    let mut events = engine.subscribe();
    engine.start();
    let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        match ev {
            Ok(e) => {
                print(&json!({ "event": event_json(&e) }), true);
                if read
                    && let Event::Message { message } = &e
                    && message.direction == "incoming"
                    && let Err(err) = engine.mark_read(ConversationId(message.conversation_id))
                {
                    tracing::warn!(error = %err, "could not mark read");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "event stream lagged");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// `session`: JSON commands in, JSON results and events out.
async fn session(engine: &Engine) {
    let mut events = engine.subscribe();
    engine.start();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(e) => print(&json!({ "event": event_json(&e) }), true),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                let reply = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        let ready = if req.needs_relay() { wait_online(engine).await } else { Ok(()) };
                        match ready {
                            Ok(()) => match execute(engine, req).await {
                                Ok(v) => json!({ "result": v }),
                                Err(e) => json!({ "error": e.to_string() }),
                            },
                            Err(e) => json!({ "error": e.to_string() }),
                        }
                    }
                    Err(e) => json!({ "error": format!("bad command: {e}") }),
                };
                print(&reply, true);
            }
        }
    }
    let _ = engine.flush(WAIT).await;
}

fn to_request(command: Command) -> Result<Request, Command> {
    Ok(match command {
        Command::Invite => Request::Invite,
        Command::Add { handle, invite } => Request::Add { handle, invite },
        Command::Chats => Request::Chats,
        Command::Open {
            handle,
            secret,
            timer,
        } => Request::Open {
            handle,
            secret,
            timer: timer.0,
        },
        Command::Send { chat, text } => Request::Send { chat, text },
        Command::History { chat, limit } => Request::History {
            chat,
            before: None,
            limit: Some(limit),
        },
        Command::Read { chat } => Request::Read { chat },
        Command::Timer { chat, value } => Request::Timer {
            chat,
            seconds: value.0,
        },
        Command::Edit { message, text } => Request::Edit { message, text },
        Command::Delete { message } => Request::Delete { message },
        Command::SafetyNumber { handle } => Request::SafetyNumber { handle },
        Command::Verify {
            handle,
            payload,
            image,
        } => Request::Verify {
            handle,
            payload,
            image,
        },
        Command::AcceptKey { handle, key } => Request::AcceptKey { handle, key },
        Command::Accept { handle } => Request::Standing {
            handle,
            change: "accept".into(),
        },
        Command::Decline { handle } => Request::Standing {
            handle,
            change: "decline".into(),
        },
        Command::Block { handle } => Request::Standing {
            handle,
            change: "block".into(),
        },
        Command::Unblock { handle } => Request::Standing {
            handle,
            change: "unblock".into(),
        },
        Command::Search { query } => Request::Search { query },
        other => return Err(other),
    })
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let as_json = cli.json;
    if let Command::Fingerprint {
        local_id,
        local_key,
        remote_id,
        remote_key,
        version,
        iterations,
    } = &cli.command
    {
        let fp = Fingerprint::new(
            *version,
            *iterations,
            local_id.as_bytes(),
            &local_key.0,
            remote_id.as_bytes(),
            &remote_key.0,
        )
        .map_err(|e| CliError::Usage(e.to_string()))?;
        print(
            &json!({
                "digits": fp.display.to_string(),
                "scannable": hex::encode(fp.scannable.to_bytes()),
            }),
            as_json,
        );
        return Ok(());
    }
    let profiles = Profiles::new(
        &home(cli.home)?,
        Box::new(OsKeyring::new(latch_client::profile::KEYRING_SERVICE)),
    );
    let profile_name = || {
        cli.profile.clone().ok_or_else(|| {
            CliError::Usage("choose a profile with --profile or LATCH_PROFILE".into())
        })
    };
    let command = match cli.command {
        Command::Profile(ProfileCommand::Create { name, relay }) => {
            let p = profiles.create(&name, &relay)?;
            print(
                &json!({ "created": p.info.name, "relay": p.info.relay_url }),
                as_json,
            );
            return Ok(());
        }
        Command::Profile(ProfileCommand::List) => {
            print(&json!({ "profiles": profiles.list()? }), as_json);
            return Ok(());
        }
        Command::Profile(ProfileCommand::Delete { name }) => {
            let engine = Engine::new(profiles.open(&name)?)?;
            engine.start();
            // Best effort: without the relay, the profile still goes here, and the relay
            // keeps the device (its mailbox expires after 30 days).
            let unregistered = match wait_online(&engine).await {
                Ok(()) => engine.unregister().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            engine.shutdown().await;
            drop(engine);
            profiles.delete(&name)?;
            print(
                &json!({
                    "deleted": name,
                    "unregistered": unregistered.is_ok(),
                    "relay_error": unregistered.err(),
                }),
                as_json,
            );
            return Ok(());
        }
        other => other,
    };
    let engine = Engine::new(profiles.open(&profile_name()?)?)?;
    // For a relay that drops idle connections sooner than the usual two minutes.
    if let Some(ms) = std::env::var("LATCH_KEEPALIVE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        engine.set_keepalive_interval(Duration::from_millis(ms));
    }
    let result = match command {
        Command::Register { handle } => {
            let handle = engine.register(&handle).await?;
            print(&json!({ "registered": handle }), as_json);
            Ok(())
        }
        Command::Listen { read, timeout } => {
            listen(&engine, read, timeout).await;
            Ok(())
        }
        Command::Session => {
            session(&engine).await;
            Ok(())
        }
        Command::Call { handle, media } => call::call(&engine, &handle, &media).await,
        Command::Answer {
            decline,
            wait,
            media,
        } => call::answer(&engine, decline, wait, &media).await,
        other => match to_request(other) {
            Ok(req) => {
                let sends = req.sends();
                if req.needs_relay() || sends {
                    engine.start();
                }
                if req.needs_relay() {
                    wait_online(&engine).await?;
                }
                let value = execute(&engine, req).await?;
                print(&value, as_json);
                if sends && !engine.flush(WAIT).await? {
                    print(
                        &json!({ "note": "queued; it will be sent when the relay is reachable" }),
                        as_json,
                    );
                }
                Ok(())
            }
            Err(_) => Err(CliError::Usage("unsupported command".into())),
        },
    };
    engine.shutdown().await;
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "latch: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "latch: {e}");
            ExitCode::from(match e {
                CliError::Usage(_) => 2,
                _ => 1,
            })
        }
    }
}
