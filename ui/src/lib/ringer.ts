// The sounds a call makes in the app: a ring for an incoming call and a ringback while the
// other side's device rings. Synthesised with Web Audio (no files, nothing fetched); silent
// where the webview has no audio output.

/** What `ring` plays. */
export type RingKind = "incoming" | "ringback";

/** On/off pattern in seconds, repeated: a double ring, and the classic 2 s on, 4 s off. */
const PATTERNS: Record<RingKind, { tones: [number, number][]; period: number; hz: number[] }> = {
  incoming: { tones: [[0, 0.4], [0.6, 1.0]], period: 3, hz: [440, 480] },
  ringback: { tones: [[0, 2]], period: 6, hz: [440, 480] },
};

/** How far ahead the pattern is scheduled, in periods (refreshed while it plays). */
const AHEAD = 2;

/**
 * Starts a ring; returns the function that stops it. Does nothing (and returns a no-op) where
 * there is no `AudioContext`.
 */
export function ring(kind: RingKind, context?: () => AudioContext): () => void {
  const make = context ?? (typeof AudioContext === "undefined" ? undefined : () => new AudioContext());
  if (!make) return () => {};
  let ctx: AudioContext;
  try {
    ctx = make();
  } catch {
    return () => {};
  }
  const pattern = PATTERNS[kind];
  const gain = ctx.createGain();
  gain.gain.value = 0;
  gain.connect(ctx.destination);
  const oscillators = pattern.hz.map((hz) => {
    const o = ctx.createOscillator();
    o.frequency.value = hz;
    o.connect(gain);
    o.start();
    return o;
  });
  let scheduledUntil = ctx.currentTime;
  const schedule = () => {
    while (scheduledUntil < ctx.currentTime + AHEAD * pattern.period) {
      for (const [on, off] of pattern.tones) {
        gain.gain.setValueAtTime(0.12, scheduledUntil + on);
        gain.gain.setValueAtTime(0, scheduledUntil + off);
      }
      scheduledUntil += pattern.period;
    }
  };
  schedule();
  const timer = setInterval(schedule, pattern.period * 1000);
  void ctx.resume?.();
  return () => {
    clearInterval(timer);
    for (const o of oscillators) o.stop();
    void ctx.close();
  };
}
