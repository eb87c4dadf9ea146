// Disappearing-message timers: the allowed range, the presets, parsing a custom value the user
// typed, and the words the UI shows for a timer and for the time a message has left.

/** The shortest timer the engine accepts, in seconds. */
export const TIMER_MIN_SECS = 5;
/** The longest timer the engine accepts, in seconds (24 hours). */
export const TIMER_MAX_SECS = 86_400;
/** The choices offered before "Custom": 5 s, 30 s, 1 min, 5 min, 1 h, 8 h, 24 h. */
export const TIMER_PRESETS: readonly number[] = [5, 30, 60, 300, 3_600, 28_800, 86_400];

/** The units a custom timer can be typed in. */
export type TimerUnit = "seconds" | "minutes" | "hours";
/** Seconds per unit. */
export const UNIT_SECONDS: Readonly<Record<TimerUnit, number>> = {
  seconds: 1,
  minutes: 60,
  hours: 3_600,
};

/** The outcome of checking a custom timer: the seconds to set, or a sentence to show. */
export type TimerCheck = { ok: true; seconds: number } | { ok: false; message: string };

/** The message shown for any value outside the range, so the limits are stated once. */
export const TIMER_RANGE_MESSAGE = "Choose a time between 5 seconds and 24 hours.";

/** Whether `seconds` is a timer the engine accepts: off (null) or a whole 5..=86400. */
export function isValidTimer(seconds: number | null): boolean {
  return (
    seconds === null ||
    (Number.isInteger(seconds) && seconds >= TIMER_MIN_SECS && seconds <= TIMER_MAX_SECS)
  );
}

/** Checks what the user typed as a custom timer (a whole number of `unit`). */
export function parseCustomTimer(amount: string, unit: TimerUnit): TimerCheck {
  const trimmed = amount.trim();
  if (trimmed === "") return { ok: false, message: "Enter how long messages should last." };
  // Digits only: "1e3", "0x10", "1.5" and "-5" are all refused with the same clear rule.
  if (!/^\d{1,9}$/.test(trimmed)) return { ok: false, message: "Enter a whole number." };
  const seconds = Number(trimmed) * UNIT_SECONDS[unit];
  if (!isValidTimer(seconds)) return { ok: false, message: TIMER_RANGE_MESSAGE };
  return { ok: true, seconds };
}

/** Splits seconds into the largest unit that divides them evenly, for prefilling the form. */
export function splitTimer(seconds: number): { amount: number; unit: TimerUnit } {
  if (seconds % UNIT_SECONDS.hours === 0) return { amount: seconds / UNIT_SECONDS.hours, unit: "hours" };
  if (seconds % UNIT_SECONDS.minutes === 0) {
    return { amount: seconds / UNIT_SECONDS.minutes, unit: "minutes" };
  }
  return { amount: seconds, unit: "seconds" };
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** A timer in words: "Off", "30 seconds", "1 minute", "8 hours", "1 hour 30 minutes". */
export function formatTimer(seconds: number | null): string {
  if (seconds === null) return "Off";
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3_600);
  const minutes = Math.floor((whole % 3_600) / 60);
  const rest = whole % 60;
  const words: string[] = [];
  if (hours > 0) words.push(plural(hours, "hour"));
  if (minutes > 0) words.push(plural(minutes, "minute"));
  if (rest > 0 || words.length === 0) words.push(plural(rest, "second"));
  return words.join(" ");
}

/** `seconds` as hours, minutes and seconds with the given unit names, leaving out zero parts. */
function joinedUnits(seconds: number, [h, m, s]: readonly [string, string, string]): string {
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3_600);
  const minutes = Math.floor((whole % 3_600) / 60);
  const rest = whole % 60;
  const parts: string[] = [];
  if (hours > 0) parts.push(`${hours}${h}`);
  if (minutes > 0) parts.push(`${minutes}${m}`);
  if (rest > 0 || parts.length === 0) parts.push(`${rest}${s}`);
  return parts.join(" ");
}

/** A timer in a few characters, for a header badge: "5s", "1m", "8h", "1h 30m". */
export function formatTimerShort(seconds: number | null): string {
  return seconds === null ? "Off" : joinedUnits(seconds, ["h", "m", "s"]);
}

/**
 * The time a message has left: "45s", "4m 05s", "3h 20m". Rounds up, so "0s" shows only once the
 * message is due, and a message never reads as gone while the sweeper has yet to remove it.
 */
export function formatCountdown(ms: number): string {
  if (!(ms > 0)) return "0s";
  const total = Math.ceil(ms / 1000);
  if (total < 60) return `${total}s`;
  if (total < 3_600) {
    const minutes = Math.floor(total / 60);
    const seconds = total % 60;
    return `${minutes}m ${String(seconds).padStart(2, "0")}s`;
  }
  const hours = Math.floor(total / 3_600);
  const minutes = Math.floor((total % 3_600) / 60);
  return `${hours}h ${String(minutes).padStart(2, "0")}m`;
}

/** How long until `formatCountdown(ms)` changes, so a countdown can sleep instead of polling. */
export function countdownChangesIn(ms: number): number {
  if (!(ms > 0)) return Number.POSITIVE_INFINITY;
  const total = Math.ceil(ms / 1000);
  // Under an hour the label changes with every second; above, when the minute digit drops,
  // which happens as the rounded-up seconds fall below the current whole minute.
  const nextLabelAt = total < 3_600 ? total - 1 : Math.floor(total / 60) * 60 - 1;
  return ms - nextLabelAt * 1000;
}

/** A timer for the chat header's button: "Off", "5 s", "1 min", "8 h", "1 h 30 min". */
export function formatTimerBadge(seconds: number | null): string {
  return seconds === null ? "Off" : joinedUnits(seconds, [" h", " min", " s"]);
}
