import { describe, expect, it } from "vitest";
import { listTime } from "./when";
import { formatTimerBadge } from "./timer";

const NOW = new Date(2026, 10, 23, 15, 0).getTime(); // a Monday

describe("listTime", () => {
  it("says now, minutes, a clock time, yesterday, a weekday, then a date", () => {
    expect(listTime(NOW - 20_000, NOW, "en-US")).toBe("now");
    expect(listTime(NOW - 5 * 60_000, NOW, "en-US")).toBe("5 min");
    expect(listTime(new Date(2026, 10, 23, 9, 5).getTime(), NOW, "en-US")).toBe("9:05 AM");
    expect(listTime(new Date(2026, 10, 22, 23, 59).getTime(), NOW, "en-US")).toBe("Yesterday");
    expect(listTime(new Date(2026, 10, 19, 12, 0).getTime(), NOW, "en-US")).toBe("Thu");
    expect(listTime(new Date(2026, 9, 2, 12, 0).getTime(), NOW, "en-US")).toBe("Oct 2");
    expect(listTime(new Date(2024, 9, 2, 12, 0).getTime(), NOW, "en-US")).toBe("Oct 2, 2024");
  });

  it("shows nothing for a time outside Date's range instead of throwing", () => {
    expect(listTime(9e15, NOW, "en-US")).toBe("");
  });
});

describe("formatTimerBadge", () => {
  it("is short and spaced for the header button", () => {
    expect([null, 5, 30, 60, 300, 3_600, 5_400, 86_400].map(formatTimerBadge)).toEqual([
      "Off",
      "5 s",
      "30 s",
      "1 min",
      "5 min",
      "1 h",
      "1 h 30 min",
      "24 h",
    ]);
  });
});
