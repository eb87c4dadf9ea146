//! `latch call` and `latch answer`: a voice call from the command line, with a file, a tone or
//! silence as the microphone and a file or nothing as the speaker, so calls can be scripted
//! and tested headless. Events print as JSON lines until the call ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use latch_call::audio::{AudioSink, AudioSource, FRAME_SAMPLES, SAMPLE_RATE, ToneSource};
use latch_call::{CallId, MediaKind};
use latch_client::{CallDevices, ClientError, Engine, Event};
use serde_json::json;

use super::{CliError, event_json, print, wait_online};

/// Where a CLI call's sound comes from and goes.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct CallArgs {
    /// Talk through this computer's microphone and speaker (otherwise the call sends silence,
    /// or what `--tone`/`--play` give, and plays nothing, or records with `--record`).
    #[arg(long, conflicts_with_all = ["tone", "play", "record"])]
    sound: bool,
    /// Send a steady tone at this frequency (Hz) as the microphone.
    #[arg(long, conflicts_with = "play")]
    tone: Option<f64>,
    /// Send this WAV file (16-bit PCM, mono, 48 kHz) as the microphone, then silence.
    #[arg(long)]
    play: Option<PathBuf>,
    /// Record what the other side says to this new WAV file (readable by you only).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Hang up this many seconds after the call connects.
    #[arg(long)]
    hang_up_after: Option<u64>,
}

/// Silence, for a call that only listens.
struct Silence;

impl AudioSource for Silence {
    fn read(&mut self, frame: &mut [i16]) -> bool {
        frame.fill(0);
        true
    }
}

/// A speaker nobody hears.
struct Discard;

impl AudioSink for Discard {
    fn write(&mut self, _frame: &[i16]) {}
}

/// A WAV file as a microphone.
struct WavSource(std::vec::IntoIter<i16>);

impl AudioSource for WavSource {
    fn read(&mut self, frame: &mut [i16]) -> bool {
        let mut any = false;
        for s in frame.iter_mut() {
            match self.0.next() {
                Some(v) => {
                    *s = v;
                    any = true;
                }
                None => *s = 0,
            }
        }
        any
    }
}

/// A WAV file as a speaker. Finalised (its header completed) when dropped with the call.
struct WavSink(hound::WavWriter<std::io::BufWriter<std::fs::File>>);

impl AudioSink for WavSink {
    fn write(&mut self, frame: &[i16]) {
        for &s in frame {
            if self.0.write_sample(s).is_err() {
                return;
            }
        }
    }
}

fn spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

fn open_wav(path: &Path) -> Result<WavSource, CliError> {
    let bad = |what: &str| CliError::Usage(format!("{}: {what}", path.display()));
    let mut reader = hound::WavReader::open(path).map_err(|e| bad(&e.to_string()))?;
    if reader.spec() != spec() {
        return Err(bad("needs 16-bit PCM, mono, 48 kHz"));
    }
    // Twenty minutes at most: a call's file, not an archive.
    let max = SAMPLE_RATE as usize * 60 * 20;
    let samples: Result<Vec<i16>, _> = reader.samples::<i16>().take(max).collect();
    let samples = samples.map_err(|e| bad(&e.to_string()))?;
    Ok(WavSource(samples.into_iter()))
}

fn create_wav(path: &Path) -> Result<WavSink, CliError> {
    let bad = |what: String| CliError::Usage(format!("{}: {what}", path.display()));
    let file = latch_store::open::create_private_file(path).map_err(|e| bad(e.to_string()))?;
    let writer = hound::WavWriter::new(std::io::BufWriter::new(file), spec())
        .map_err(|e| bad(e.to_string()))?;
    Ok(WavSink(writer))
}

fn devices(args: &CallArgs) -> Result<CallDevices, CliError> {
    if args.sound {
        return Ok(latch_client::sound_devices::system_devices()?);
    }
    let microphone: Box<dyn AudioSource> = match (&args.tone, &args.play) {
        (Some(hz), _) if !(20.0..=20_000.0).contains(hz) => {
            return Err(CliError::Usage("--tone must be 20 to 20000 Hz".into()));
        }
        // A tone for a day: longer than any call the CLI will hold.
        (Some(hz), _) => Box::new(ToneSource::new(vec![(*hz, 50 * 86_400)])),
        (None, Some(path)) => Box::new(open_wav(path)?),
        (None, None) => Box::new(Silence),
    };
    let speaker: Box<dyn AudioSink> = match &args.record {
        Some(path) => Box::new(create_wav(path)?),
        None => Box::new(Discard),
    };
    debug_assert_eq!(FRAME_SAMPLES, 960);
    Ok(CallDevices {
        microphone,
        speaker,
    })
}

fn call_id(hex_id: &str) -> Option<CallId> {
    let bytes = hex::decode(hex_id).ok()?;
    Some(CallId(bytes.try_into().ok()?))
}

/// `latch call <handle>`: calls the contact's standard chat and stays until the call ends.
pub(crate) async fn call(engine: &Engine, handle: &str, args: &CallArgs) -> Result<(), CliError> {
    let devices = devices(args)?;
    let mut events = engine.subscribe();
    engine.start();
    wait_online(engine).await?;
    let contact = engine.contact_by_handle(handle)?;
    let chat = engine.open_standard_chat(contact.id)?;
    let id = engine.start_call(chat, MediaKind::Audio, devices).await?;
    print(&json!({ "call": hex::encode(id.0), "chat": chat.0 }), true);
    follow(engine, &mut events, id, args.hang_up_after).await
}

/// `latch answer`: waits for a call to ring, then answers (or declines) it.
pub(crate) async fn answer(
    engine: &Engine,
    decline: bool,
    wait: u64,
    args: &CallArgs,
) -> Result<(), CliError> {
    let devices = devices(args)?;
    let mut events = engine.subscribe();
    engine.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let id = loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| CliError::Usage(format!("no call rang within {wait} s")))?;
        let ev = match ev {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                return Err(CliError::Usage("the engine stopped".into()));
            }
        };
        print(&json!({ "event": event_json(&ev) }), true);
        if let Event::Call {
            call_id: c,
            state: "ringing",
            direction: "incoming",
            ..
        } = &ev
            && let Some(id) = call_id(c)
        {
            break id;
        }
    };
    if decline {
        engine.decline_call(id)?;
        // Let the decline leave before the engine stops.
        let _ = engine.flush(Duration::from_secs(15)).await;
        return Ok(());
    }
    engine.answer_call(id, false, devices).await?;
    follow(engine, &mut events, id, args.hang_up_after).await
}

/// Prints the call's events until it ends; hangs up on Ctrl-C or after `hang_up_after`
/// seconds connected.
async fn follow(
    engine: &Engine,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    id: CallId,
    hang_up_after: Option<u64>,
) -> Result<(), CliError> {
    let mine = hex::encode(id.0);
    let mut hang_up_at: Option<tokio::time::Instant> = None;
    loop {
        let timer = async {
            match hang_up_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = events.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(CliError::Usage("the engine stopped during the call".into()));
                    }
                };
                print(&json!({ "event": event_json(&ev) }), true);
                if let Event::Call { call_id, state, .. } = &ev && *call_id == mine {
                    if *state == "connected" && hang_up_at.is_none() {
                        hang_up_at = hang_up_after
                            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
                    }
                    if *state == "ended" {
                        break;
                    }
                }
            }
            () = timer => {
                hang_up_at = None;
                hang_up(engine, id)?;
            }
            _ = tokio::signal::ctrl_c() => hang_up(engine, id)?,
        }
    }
    // The hang-up or the last answer must leave before the engine stops.
    let _ = engine.flush(Duration::from_secs(15)).await;
    Ok(())
}

fn hang_up(engine: &Engine, id: CallId) -> Result<(), CliError> {
    match engine.hang_up_call(id) {
        // Ended meanwhile: the event says how.
        Ok(()) | Err(ClientError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
