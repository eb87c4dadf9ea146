//! The computer's own microphone and speaker as a call's devices (cpal: ALSA on Linux, which
//! reaches PulseAudio or PipeWire through their ALSA plugins; WASAPI; CoreAudio).
//!
//! cpal calls back on threads of its own and its streams may not move between threads, so one
//! thread owns both streams for the call's life. Between the callbacks and the media task are
//! two small queues: the microphone's samples wait for the 20 ms tick, the peer's voice waits
//! for the speaker. Each queue holds at most half a second: a stalled side drops old sound
//! rather than growing a delay (or memory) without bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use latch_call::audio::{AudioSink, AudioSource, FRAME_SAMPLES, SAMPLE_RATE};

use crate::call_media::CallDevices;
use crate::engine::ClientError;

/// Samples a queue holds at most (half a second).
const QUEUE_MAX: usize = SAMPLE_RATE as usize / 2;

type Queue = Arc<Mutex<VecDeque<i16>>>;

fn push(queue: &Queue, samples: impl Iterator<Item = i16>) {
    if let Ok(mut q) = queue.lock() {
        q.extend(samples);
        let excess = q.len().saturating_sub(QUEUE_MAX);
        q.drain(..excess);
    }
}

/// The microphone, as the media task reads it.
struct Microphone {
    queue: Queue,
    /// Whether the call has read it yet: what it captured before (while ringing) is dropped
    /// at the first read.
    started: bool,
    _owner: Arc<StreamOwner>,
}

/// Frames the microphone may hold ahead of the call during it: enough to ride out a late tick
/// (the media task then reads several frames at once) and device jitter, little enough that a
/// device running ahead of the call's clock never adds more than this to the delay.
const MICROPHONE_AHEAD_FRAMES: usize = 6;

impl AudioSource for Microphone {
    fn read(&mut self, frame: &mut [i16]) -> bool {
        let Ok(mut q) = self.queue.lock() else {
            return false;
        };
        // What the device captured before the call read it is stale (sound from before the
        // call connected), and so is anything beyond a few frames ahead: sending it would add
        // its age to every word that follows.
        let keep = if self.started {
            MICROPHONE_AHEAD_FRAMES * frame.len()
        } else {
            frame.len()
        };
        self.started = true;
        let stale = q.len().saturating_sub(keep);
        q.drain(..stale);
        // Not enough yet (the device started late or runs slow): what there is, then silence.
        for s in frame.iter_mut() {
            *s = q.pop_front().unwrap_or(0);
        }
        true
    }
}

/// The speaker, as the media task writes it.
struct Speaker {
    queue: Queue,
    _owner: Arc<StreamOwner>,
}

impl AudioSink for Speaker {
    fn write(&mut self, frame: &[i16]) {
        push(&self.queue, frame.iter().copied());
    }
}

/// Keeps the thread that owns the streams alive; dropping the last handle stops it.
struct StreamOwner {
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Drop for StreamOwner {
    fn drop(&mut self) {
        // Closing the channel wakes the owner thread, which drops the streams.
        self.stop.take();
    }
}

fn device_error(what: &'static str) -> ClientError {
    ClientError::Invalid(what)
}

/// Opens the default microphone and speaker at 48 kHz mono.
///
/// # Errors
/// [`ClientError::Invalid`] naming what is missing or refused: no microphone, no speaker, or a
/// device that cannot run at 48 kHz mono.
pub fn system_devices() -> Result<CallDevices, ClientError> {
    let mic: Queue = Arc::default();
    let out: Queue = Arc::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (mic_in, out_in) = (mic.clone(), out.clone());
    std::thread::Builder::new()
        .name("latch-sound".into())
        .spawn(move || {
            let streams = open_streams(mic_in, out_in);
            let ok = streams.is_ok();
            let _ = ready_tx.send(streams.as_ref().map(|_| ()).map_err(|e| *e));
            if ok {
                // Until every handle is gone: the channel closes and recv returns.
                let _ = stop_rx.recv();
            }
            drop(streams);
        })
        .map_err(|_| device_error("the sound thread could not start"))?;
    ready_rx
        .recv()
        .map_err(|_| device_error("the sound devices could not start"))?
        .map_err(device_error)?;
    let owner = Arc::new(StreamOwner {
        stop: Some(stop_tx),
    });
    Ok(CallDevices {
        microphone: Box::new(Microphone {
            queue: mic,
            started: false,
            _owner: owner.clone(),
        }),
        speaker: Box::new(Speaker {
            queue: out,
            _owner: owner,
        }),
    })
}

fn open_streams(mic: Queue, out: Queue) -> Result<(cpal::Stream, cpal::Stream), &'static str> {
    let host = cpal::default_host();
    let input = host.default_input_device().ok_or("no microphone found")?;
    let output = host.default_output_device().ok_or("no speaker found")?;
    // One 20 ms frame per period: a device left to its default buffer (PulseAudio's ALSA
    // plugin picks seconds) hands the microphone over in bursts the call cannot smooth.
    let config = cpal::StreamConfig {
        channels: 1,
        sample_rate: cpal::SampleRate(SAMPLE_RATE),
        buffer_size: cpal::BufferSize::Fixed(FRAME_SAMPLES as u32),
    };
    let on_error = |e: cpal::StreamError| tracing::warn!(error = %e, "sound device error");
    let capture = input
        .build_input_stream(
            &config,
            move |data: &[i16], _: &cpal::InputCallbackInfo| push(&mic, data.iter().copied()),
            on_error,
            None,
        )
        .map_err(|_| "the microphone cannot record 48 kHz mono")?;
    let playback = output
        .build_output_stream(
            &config,
            move |data: &mut [i16], _: &cpal::OutputCallbackInfo| {
                let mut q = out.lock().ok();
                for s in data.iter_mut() {
                    *s = q.as_mut().and_then(|q| q.pop_front()).unwrap_or(0);
                }
            },
            on_error,
            None,
        )
        .map_err(|_| "the speaker cannot play 48 kHz mono")?;
    capture
        .play()
        .map_err(|_| "the microphone would not start")?;
    playback.play().map_err(|_| "the speaker would not start")?;
    Ok((capture, playback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_queue_keeps_only_the_newest_half_second() {
        let q: Queue = Arc::default();
        push(&q, (0..QUEUE_MAX as i32 + 100).map(|i| i as i16));
        let q = q.lock().unwrap();
        assert_eq!(q.len(), QUEUE_MAX);
        assert_eq!(q.front().copied(), Some(100));
    }

    #[test]
    fn a_backlog_is_dropped_so_the_call_hears_what_was_said_last() {
        let (stop, _rx) = std::sync::mpsc::channel();
        let mut m = Microphone {
            queue: Arc::default(),
            started: false,
            _owner: Arc::new(StreamOwner { stop: Some(stop) }),
        };
        // Half a second captured while the call was still ringing, then the newest frame.
        push(&m.queue, std::iter::repeat_n(1i16, QUEUE_MAX - 960));
        push(&m.queue, std::iter::repeat_n(9i16, 960));
        let mut frame = [0i16; 960];
        assert!(m.read(&mut frame));
        assert!(
            frame.iter().all(|&s| s == 9),
            "the newest first, not 0.5 s late"
        );
        // During the call, a few frames ahead (a late tick) are kept and read in order.
        for f in 0..MICROPHONE_AHEAD_FRAMES as i16 {
            push(&m.queue, std::iter::repeat_n(f, 960));
        }
        for f in 0..MICROPHONE_AHEAD_FRAMES as i16 {
            assert!(m.read(&mut frame));
            assert_eq!(frame[0], f);
        }
    }

    #[test]
    fn a_microphone_that_runs_dry_gives_silence_not_an_end() {
        let (stop, _rx) = std::sync::mpsc::channel();
        let mut m = Microphone {
            queue: Arc::default(),
            started: false,
            _owner: Arc::new(StreamOwner { stop: Some(stop) }),
        };
        push(&m.queue, [7i16; 10].into_iter());
        let mut frame = [1i16; 960];
        assert!(m.read(&mut frame));
        assert_eq!(&frame[..10], &[7; 10]);
        assert!(frame[10..].iter().all(|&s| s == 0));
    }
}
