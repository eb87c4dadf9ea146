import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, render } from "@testing-library/svelte";
import Countdown from "./Countdown.svelte";

const START = Date.UTC(2026, 10, 23, 12, 0, 0);

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(START);
});

afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

function shown(container: HTMLElement) {
  return container.querySelector("[aria-hidden=true]")?.textContent;
}

describe("Countdown", () => {
  it("counts down each second and stops at zero", async () => {
    const { container } = render(Countdown, { props: { expiresAt: START + 5_000 } });
    expect(shown(container)).toBe("5s");
    expect(container.querySelector(".visually-hidden")?.textContent?.trim()).toBe("Disappears in 5 seconds");
    await vi.advanceTimersByTimeAsync(999);
    expect(shown(container)).toBe("5s");
    await vi.advanceTimersByTimeAsync(1);
    expect(shown(container)).toBe("4s");
    await vi.advanceTimersByTimeAsync(4_000);
    expect(shown(container)).toBe("0s");
    expect(container.querySelector(".visually-hidden")?.textContent?.trim()).toBe("Disappearing");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("sleeps a minute at a time when hours remain", async () => {
    const { container } = render(Countdown, { props: { expiresAt: START + 2 * 3_600_000 } });
    expect(shown(container)).toBe("2h 00m");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(shown(container)).toBe("1h 59m");
    // The next change is 60 s away: one pending timer, not one per second.
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(59_999);
    expect(shown(container)).toBe("1h 59m");
    await vi.advanceTimersByTimeAsync(1);
    expect(shown(container)).toBe("1h 58m");
  });

  it("follows a new expiry", async () => {
    const { container, rerender } = render(Countdown, { props: { expiresAt: START + 10_000 } });
    await rerender({ expiresAt: START + 30_000 });
    expect(shown(container)).toBe("30s");
  });
});
