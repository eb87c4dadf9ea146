import { describe, expect, it, vi } from "vitest";
import { ring } from "./ringer";

/** Just enough of Web Audio to see what a ring schedules. */
function fakeContext() {
  const gainEvents: [number, number][] = [];
  const oscillators: { hz: number; started: boolean; stopped: boolean }[] = [];
  const ctx = {
    currentTime: 0,
    destination: {},
    closed: false,
    createGain: () => ({
      gain: { value: 0, setValueAtTime: (v: number, t: number) => gainEvents.push([t, v]) },
      connect: () => {},
    }),
    createOscillator: () => {
      const o = { hz: 0, started: false, stopped: false };
      oscillators.push(o);
      return {
        frequency: {
          set value(v: number) {
            o.hz = v;
          },
        },
        connect: () => {},
        start: () => (o.started = true),
        stop: () => (o.stopped = true),
      };
    },
    resume: async () => {},
    close: async () => {
      ctx.closed = true;
    },
  };
  return { ctx, gainEvents, oscillators };
}

describe("ringer", () => {
  it("schedules the incoming double ring and stops everything when told", () => {
    vi.useFakeTimers();
    const { ctx, gainEvents, oscillators } = fakeContext();
    const stop = ring("incoming", () => ctx as unknown as AudioContext);
    expect(oscillators.map((o) => [o.hz, o.started])).toEqual([
      [440, true],
      [480, true],
    ]);
    // Two periods ahead: on at 0 and 0.6, off at 0.4 and 1.0, then again 3 s later.
    expect(gainEvents.slice(0, 4)).toEqual([
      [0, 0.12],
      [0.4, 0],
      [0.6, 0.12],
      [1, 0],
    ]);
    expect(gainEvents).toContainEqual([3.6, 0.12]);
    stop();
    expect(oscillators.every((o) => o.stopped)).toBe(true);
    expect(ctx.closed).toBe(true);
    vi.useRealTimers();
  });

  it("is silent, not broken, without Web Audio", () => {
    const stop = ring("ringback", () => {
      throw new Error("no audio output");
    });
    expect(() => stop()).not.toThrow();
  });
});
