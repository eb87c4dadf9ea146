import { describe, expect, it } from "vitest";
import {
  TIMER_PRESETS,
  TIMER_RANGE_MESSAGE,
  countdownChangesIn,
  formatCountdown,
  formatTimer,
  formatTimerShort,
  isValidTimer,
  parseCustomTimer,
  splitTimer,
} from "./timer";

describe("timer bounds", () => {
  it("accepts off and whole seconds from 5 to 86400 only", () => {
    expect(isValidTimer(null)).toBe(true);
    expect(isValidTimer(5)).toBe(true);
    expect(isValidTimer(86_400)).toBe(true);
    expect(isValidTimer(4)).toBe(false);
    expect(isValidTimer(86_401)).toBe(false);
    expect(isValidTimer(0)).toBe(false);
    expect(isValidTimer(-5)).toBe(false);
    expect(isValidTimer(5.5)).toBe(false);
    expect(isValidTimer(Number.NaN)).toBe(false);
    expect(TIMER_PRESETS.every(isValidTimer)).toBe(true);
  });

  it("checks custom values at the edges of the range in every unit", () => {
    expect(parseCustomTimer("5", "seconds")).toEqual({ ok: true, seconds: 5 });
    expect(parseCustomTimer("4", "seconds")).toEqual({ ok: false, message: TIMER_RANGE_MESSAGE });
    expect(parseCustomTimer("86400", "seconds")).toEqual({ ok: true, seconds: 86_400 });
    expect(parseCustomTimer("86401", "seconds")).toEqual({ ok: false, message: TIMER_RANGE_MESSAGE });
    expect(parseCustomTimer("1440", "minutes")).toEqual({ ok: true, seconds: 86_400 });
    expect(parseCustomTimer("1441", "minutes")).toEqual({ ok: false, message: TIMER_RANGE_MESSAGE });
    expect(parseCustomTimer("24", "hours")).toEqual({ ok: true, seconds: 86_400 });
    expect(parseCustomTimer("25", "hours")).toEqual({ ok: false, message: TIMER_RANGE_MESSAGE });
    expect(parseCustomTimer("0", "hours")).toEqual({ ok: false, message: TIMER_RANGE_MESSAGE });
    expect(parseCustomTimer(" 90 ", "seconds")).toEqual({ ok: true, seconds: 90 });
    expect(parseCustomTimer("007", "seconds")).toEqual({ ok: true, seconds: 7 });
  });

  it("refuses what is not a whole number, with a clear message", () => {
    for (const typed of ["1.5", "-5", "1e3", "0x10", "abc", "5 s", "٥", "9999999999"]) {
      expect(parseCustomTimer(typed, "minutes"), typed).toEqual({
        ok: false,
        message: "Enter a whole number.",
      });
    }
    expect(parseCustomTimer("  ", "seconds")).toEqual({
      ok: false,
      message: "Enter how long messages should last.",
    });
  });

  it("splits a timer into the largest even unit", () => {
    expect(splitTimer(90)).toEqual({ amount: 90, unit: "seconds" });
    expect(splitTimer(120)).toEqual({ amount: 2, unit: "minutes" });
    expect(splitTimer(7_200)).toEqual({ amount: 2, unit: "hours" });
    expect(splitTimer(5_400)).toEqual({ amount: 90, unit: "minutes" });
  });
});

describe("formatting", () => {
  it("names timers in words", () => {
    expect(formatTimer(null)).toBe("Off");
    expect(TIMER_PRESETS.map(formatTimer)).toEqual([
      "5 seconds",
      "30 seconds",
      "1 minute",
      "5 minutes",
      "1 hour",
      "8 hours",
      "24 hours",
    ]);
    expect(formatTimer(1)).toBe("1 second");
    expect(formatTimer(90)).toBe("1 minute 30 seconds");
    expect(formatTimer(3_661)).toBe("1 hour 1 minute 1 second");
    expect(formatTimer(0)).toBe("0 seconds");
  });

  it("names timers in short form", () => {
    expect(TIMER_PRESETS.map(formatTimerShort)).toEqual(["5s", "30s", "1m", "5m", "1h", "8h", "24h"]);
    expect(formatTimerShort(5_400)).toBe("1h 30m");
    expect(formatTimerShort(null)).toBe("Off");
  });

  it("counts down rounding up, so 0s means due", () => {
    expect(formatCountdown(5_000)).toBe("5s");
    expect(formatCountdown(4_001)).toBe("5s");
    expect(formatCountdown(4_000)).toBe("4s");
    expect(formatCountdown(1)).toBe("1s");
    expect(formatCountdown(0)).toBe("0s");
    expect(formatCountdown(-300)).toBe("0s");
    expect(formatCountdown(Number.NaN)).toBe("0s");
    expect(formatCountdown(59_001)).toBe("1m 00s");
    expect(formatCountdown(65_000)).toBe("1m 05s");
    expect(formatCountdown(3_599_000)).toBe("59m 59s");
    expect(formatCountdown(3_600_000)).toBe("1h 00m");
    expect(formatCountdown(86_400_000)).toBe("24h 00m");
    expect(formatCountdown(86_399_000)).toBe("23h 59m");
  });

  it("says when the countdown label next changes", () => {
    expect(countdownChangesIn(4_500)).toBe(500);
    expect(countdownChangesIn(5_000)).toBe(1_000);
    expect(countdownChangesIn(3_600_000)).toBe(1_000);
    expect(countdownChangesIn(3_660_000)).toBe(1_000);
    expect(countdownChangesIn(3_659_000)).toBe(60_000);
    expect(countdownChangesIn(0)).toBe(Number.POSITIVE_INFINITY);
    // Property: just before the change the label is the same, at the change it differs.
    for (let ms = 1; ms < 7_300_000; ms += 997) {
      const wait = countdownChangesIn(ms);
      expect(formatCountdown(ms - wait + 1), `${ms}`).toBe(formatCountdown(ms));
      expect(formatCountdown(ms - wait), `${ms}`).not.toBe(formatCountdown(ms));
    }
  });
});
