import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { calendarDaysBetween, dayLabel, localDay, timelineBuilder, withDaySeparators } from "./days";
import type { MessageView } from "./types";

// A zone with DST and a large UTC offset, so local days differ from UTC days.
// Node reads TZ again whenever it changes.
beforeAll(() => {
  vi.stubEnv("TZ", "America/New_York");
});
afterAll(() => {
  vi.unstubAllEnvs();
});

/** Local wall-clock time in the test zone. */
const at = (y: number, mo: number, d: number, h = 12, mi = 0) => new Date(y, mo - 1, d, h, mi).getTime();

let nextId = 1;
function message(sent_at: number): MessageView {
  return {
    id: nextId++,
    conversation_id: 1,
    direction: "incoming",
    status: "received",
    body: "hi",
    sent_at,
    expires_at: null,
    edited: false,
    deleted: false,
    call: null,
  };
}

describe("local days", () => {
  it("uses the local date, not the UTC one", () => {
    // 23:30 in New York on the 23rd is 04:30 UTC on the 24th.
    const lateEvening = at(2026, 11, 23, 23, 30);
    expect(new Date(lateEvening).toISOString().slice(0, 10)).toBe("2026-11-24");
    expect(localDay(lateEvening)).toBe("2026-11-23");
  });

  it("counts calendar days across a 25-hour DST day", () => {
    // DST ended on 2026-11-01 in New York: that day had 25 hours.
    const justAfterMidnight = at(2026, 11, 1, 0, 5);
    const nextDayEarly = at(2026, 11, 2, 0, 10);
    expect(nextDayEarly - justAfterMidnight).toBeGreaterThan(25 * 3_600_000);
    expect(calendarDaysBetween(justAfterMidnight, nextDayEarly)).toBe(1);
    expect(calendarDaysBetween(at(2026, 3, 7, 23, 59), at(2026, 3, 9, 0, 1))).toBe(2);
  });
});

describe("dayLabel", () => {
  const now = at(2026, 11, 23, 9);
  it("names recent days and dates older ones", () => {
    expect(dayLabel(at(2026, 11, 23, 0, 1), now, "en-US")).toBe("Today");
    expect(dayLabel(at(2026, 11, 22, 23, 59), now, "en-US")).toBe("Yesterday");
    expect(dayLabel(at(2026, 11, 20), now, "en-US")).toBe("Friday");
    expect(dayLabel(at(2026, 11, 17), now, "en-US")).toBe("Tuesday");
    expect(dayLabel(at(2026, 11, 16), now, "en-US")).toBe("Mon, November 16");
    expect(dayLabel(at(2025, 12, 31), now, "en-US")).toBe("Wed, December 31, 2025");
    // A message from a device whose clock runs ahead gets a date, not "Today".
    expect(dayLabel(at(2026, 11, 24), now, "en-US")).toBe("Tue, November 24");
  });

  it("says Yesterday across the DST change", () => {
    expect(dayLabel(at(2026, 11, 1, 0, 5), at(2026, 11, 2, 0, 10), "en-US")).toBe("Yesterday");
  });
});

describe("withDaySeparators", () => {
  it("puts one separator before the first message of each local day", () => {
    const now = at(2026, 11, 23, 9);
    const messages = [
      message(at(2026, 11, 21, 10)),
      message(at(2026, 11, 21, 23, 59)),
      message(at(2026, 11, 22, 0, 0)),
      message(at(2026, 11, 23, 8)),
      message(at(2026, 11, 23, 8, 30)),
    ];
    const rows = withDaySeparators(messages, now, "en-US");
    expect(rows.map((row) => (row.kind === "day" ? row.label : row.message.id))).toEqual([
      "Saturday",
      messages[0]?.id,
      messages[1]?.id,
      "Yesterday",
      messages[2]?.id,
      "Today",
      messages[3]?.id,
      messages[4]?.id,
    ]);
  });

  it("keeps a 25-hour day as one day", () => {
    const rows = withDaySeparators(
      [message(at(2026, 11, 1, 0, 30)), message(at(2026, 11, 1, 23, 30))],
      at(2026, 11, 23),
      "en-US",
    );
    expect(rows.filter((row) => row.kind === "day")).toHaveLength(1);
  });

  it("gives every row a unique key, even when skewed clocks revisit a day", () => {
    const rows = withDaySeparators(
      [
        message(at(2026, 11, 20)),
        message(at(2026, 11, 21)),
        message(at(2026, 11, 20, 13)),
        message(at(2026, 11, 21, 13)),
      ],
      at(2026, 11, 23),
    );
    const keys = rows.map((row) => row.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(rows.filter((row) => row.kind === "day")).toHaveLength(4);
  });

  it("survives times outside the range of Date", () => {
    const rows = withDaySeparators([message(9e15), message(at(2026, 11, 23))], at(2026, 11, 23), "en-US");
    expect(rows.map((row) => (row.kind === "day" ? row.label : "message"))).toEqual([
      "Unknown date",
      "message",
      "Today",
      "message",
    ]);
  });

  it("handles an empty chat and 100,000 messages", () => {
    expect(withDaySeparators([], Date.now())).toEqual([]);
    const start = at(2026, 1, 1);
    const many = Array.from({ length: 100_000 }, (_, i) => message(start + i * 600_000));
    const rows = withDaySeparators(many, at(2027, 1, 1));
    // 100,000 messages ten minutes apart span 695 days (and a bit).
    expect(rows.length - many.length).toBe(calendarDaysBetween(start, start + 99_999 * 600_000) + 1);
  });
});

describe("timelineBuilder", () => {
  it("matches withDaySeparators through appends, edits, removals and a new day", () => {
    const build = timelineBuilder();
    let now = at(2026, 11, 23, 9);
    let messages = [message(at(2026, 11, 21, 10)), message(at(2026, 11, 22, 10))];
    const check = () => {
      const rows = build(messages, now, "en-US");
      expect(rows).toEqual(withDaySeparators(messages, now, "en-US"));
      return rows;
    };
    const first = check();
    // Same list: same array, so nothing re-renders.
    expect(build(messages, now, "en-US")).toBe(first);

    messages = [...messages, message(at(2026, 11, 23, 8)), message(at(2026, 11, 23, 8, 1))];
    const appended = check();
    expect(appended).not.toBe(first);
    expect(first).toHaveLength(4);
    // The rows already built are reused, not rebuilt.
    expect(appended[1]).toBe(first[1]);

    // An edit replaces an object in the middle: a full rebuild, still correct.
    messages = messages.map((m, i) => (i === 1 ? { ...m, body: "edited" } : m));
    check();
    // Expired messages leave the list.
    messages = messages.slice(1);
    check();
    // Midnight passes: "Today" becomes "Yesterday".
    now = at(2026, 11, 24, 0, 1);
    const nextDay = check();
    expect(nextDay.some((row) => row.kind === "day" && row.label === "Yesterday")).toBe(true);
    messages = [...messages, message(at(2026, 11, 24, 0, 2))];
    const rows = check();
    expect(rows[rows.length - 2]).toMatchObject({ kind: "day", label: "Today" });
  });

  it("adds an older page in front without rebuilding what is loaded, with the day separators right", () => {
    const build = timelineBuilder();
    const now = at(2026, 11, 23, 9);
    const check = (messages: MessageView[]) => {
      const rows = build(messages, now, "en-US");
      expect(rows).toEqual(withDaySeparators(messages, now, "en-US"));
      return rows;
    };
    // Loaded: the 20th from 15:00 on, and the 21st.
    let messages = [message(at(2026, 11, 20, 15)), message(at(2026, 11, 20, 16)), message(at(2026, 11, 21, 9))];
    const loaded = check(messages);

    // A page of the same day's morning: the 20th's separator moves up to the page's first message.
    const sameDay = [message(at(2026, 11, 20, 8)), message(at(2026, 11, 20, 9))];
    messages = [...sameDay, ...messages];
    const withSameDay = check(messages);
    expect(withSameDay.filter((row) => row.kind === "day")).toHaveLength(2);
    // The loaded rows are the same objects (what is on screen is not rendered again).
    expect(withSameDay.slice(3)).toEqual(loaded.slice(1));
    for (let i = 1; i < loaded.length; i++) expect(withSameDay[i + 2]).toBe(loaded[i]);

    // A page spanning two earlier days, the later of which ends before the loaded first day.
    const twoDays = [message(at(2026, 11, 18, 23)), message(at(2026, 11, 19, 1)), message(at(2026, 11, 19, 2))];
    messages = [...twoDays, ...messages];
    const withTwoDays = check(messages);
    expect(withTwoDays[5]).toBe(withSameDay[0]);

    // Then new messages at the end still extend it.
    messages = [...messages, message(at(2026, 11, 21, 10)), message(at(2026, 11, 23, 8))];
    check(messages);
  });

  it("rebuilds when an older page would change the keys of days that come back", () => {
    const build = timelineBuilder();
    const now = at(2026, 11, 23, 9);
    // Skewed clocks: the 20th comes back after the 21st, so its second separator has a repeat key.
    let messages = [message(at(2026, 11, 20, 10)), message(at(2026, 11, 21, 10)), message(at(2026, 11, 20, 11))];
    build(messages, now);
    // A page that starts on the 21st: in a full build its separator is the first, not the loaded one.
    messages = [message(at(2026, 11, 21, 8)), message(at(2026, 11, 19, 8)), ...messages];
    expect(build(messages, now)).toEqual(withDaySeparators(messages, now));
    const keys = build(messages, now).map((row) => row.key);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
