// Day separators for a chat: the flat list of rows the virtualized chat view renders, with a
// "Today" / "Yesterday" / date row before the first message of each local calendar day. Days are
// calendar dates in the local time zone, so a 23- or 25-hour day around a DST change is one day.

import type { MessageView } from "./types";

/**
 * One row of the chat timeline; `key` is unique and stable, as VirtualList's keyed rows need:
 * a string for day rows, the message id (a number, so no string is built per message) otherwise.
 */
export type TimelineItem =
  | { kind: "day"; key: string; day: string; label: string }
  | { kind: "message"; key: number; message: MessageView };

function pad(value: number): string {
  return String(value).padStart(2, "0");
}

/** The local calendar date of a unix-ms time, as "YYYY-MM-DD". */
export function localDay(ms: number): string {
  const date = new Date(ms);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Whole calendar days from the local date of `from` to that of `to` (DST-proof). */
export function calendarDaysBetween(from: number, to: number): number {
  const a = new Date(from);
  const b = new Date(to);
  const dayA = Date.UTC(a.getFullYear(), a.getMonth(), a.getDate());
  const dayB = Date.UTC(b.getFullYear(), b.getMonth(), b.getDate());
  return Math.round((dayB - dayA) / 86_400_000);
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(locale: string | undefined, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const cacheKey = `${locale ?? ""}|${JSON.stringify(options)}`;
  let cached = formatters.get(cacheKey);
  if (!cached) {
    cached = new Intl.DateTimeFormat(locale, options);
    formatters.set(cacheKey, cached);
  }
  return cached;
}

/**
 * The separator text for the day of `ms`, seen at `now`: "Today", "Yesterday", the weekday within
 * the last week, else the date (with the year only when it is not this year's).
 */
export function dayLabel(ms: number, now: number, locale?: string): string {
  // JSON cannot carry NaN, but a time beyond Date's range can arrive; formatting it would throw.
  if (Number.isNaN(new Date(ms).getTime())) return "Unknown date";
  const daysAgo = calendarDaysBetween(ms, now);
  if (daysAgo === 0) return "Today";
  if (daysAgo === 1) return "Yesterday";
  if (daysAgo > 1 && daysAgo < 7) return formatter(locale, { weekday: "long" }).format(ms);
  const sameYear = new Date(ms).getFullYear() === new Date(now).getFullYear();
  return formatter(locale, {
    weekday: "short",
    day: "numeric",
    month: "long",
    ...(sameYear ? {} : { year: "numeric" }),
  }).format(ms);
}

/** Builds timeline rows one message at a time, remembering where the last day began. */
class TimelineRows {
  rows: TimelineItem[] = [];
  private currentDay = "";
  private sameDayRepeats = 0;
  private readonly seenDays = new Set<string>();
  // The current local day as [start, end) in unix ms, so most messages need no Date at all:
  // 100,000 messages span a few hundred days.
  private dayStart = Number.POSITIVE_INFINITY;
  private dayEnd = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly now: number,
    private readonly locale: string | undefined,
  ) {}

  push(message: MessageView): void {
    if (!(message.sent_at >= this.dayStart && message.sent_at < this.dayEnd)) {
      const date = new Date(message.sent_at);
      this.dayStart = new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
      this.dayEnd = new Date(date.getFullYear(), date.getMonth(), date.getDate() + 1).getTime();
      const day = localDay(message.sent_at);
      if (day !== this.currentDay) {
        // The same day can come back after skewed messages; keep its key unique.
        const key = this.seenDays.has(day) ? `day:${day}:${++this.sameDayRepeats}` : `day:${day}`;
        this.seenDays.add(day);
        this.rows.push({ kind: "day", key, day, label: dayLabel(message.sent_at, this.now, this.locale) });
        this.currentDay = day;
      }
    }
    this.rows.push({ kind: "message", key: message.id, message });
  }

  /**
   * Puts `older` (rows built the same way for messages that come before these) in front, as if
   * every message had been pushed in order, and returns true; returns false, changing nothing,
   * when the result would differ from that. It can differ only when a day comes back after
   * another (skewed clocks), which changes repeat keys; the store keeps messages sorted, so an
   * older page normally shares at most its last day with the first day here, and that day's
   * row moves up to the page's first message of it.
   */
  prepend(older: TimelineRows): boolean {
    const first = this.rows[0];
    if (first?.kind !== "day" || older.sameDayRepeats > 0) return false;
    for (const day of older.seenDays) {
      if (this.seenDays.has(day) && !(day === older.currentDay && day === first.day)) return false;
    }
    const continues = older.currentDay === first.day;
    this.rows = older.rows.concat(continues ? this.rows.slice(1) : this.rows);
    for (const day of older.seenDays) this.seenDays.add(day);
    return true;
  }
}

/**
 * The timeline rows for messages in display order (oldest first): a day row before the first
 * message of each local day. A message older than the one before it (clock skew between
 * devices) stays where the engine put it; a day row is added only when the day changes.
 */
export function withDaySeparators(
  messages: readonly MessageView[],
  now: number,
  locale?: string,
): TimelineItem[] {
  const timeline = new TimelineRows(now, locale);
  for (const message of messages) timeline.push(message);
  return timeline.rows;
}

/**
 * `withDaySeparators` for a chat that grows at its ends: when the new list is the previous one
 * (the same objects, as the chat store keeps them) with messages added after it (new ones) or
 * before it (an older page scrolled into view), and the local day of `now` has not changed, only
 * the added messages get rows, instead of rebuilding 100,000 rows for each message or page.
 * Rows already built are reused, so the list's rows on screen stay the same objects. Returns a
 * new array whenever anything changed.
 */
export function timelineBuilder(): (
  messages: readonly MessageView[],
  now: number,
  locale?: string,
) => TimelineItem[] {
  let previous: readonly MessageView[] = [];
  let timeline: TimelineRows | null = null;
  let lastRows: TimelineItem[] = [];
  let builtFor = "";
  return (messages, now, locale) => {
    const context = `${localDay(now)}|${locale ?? ""}`;
    const reusable = timeline !== null && context === builtFor && previous.length > 0;
    const added = messages.length - previous.length;
    if (timeline === null || !reusable || added < 0) {
      timeline = rowsFor(messages, messages.length, now, locale);
    } else if (sameAt(messages, previous, 0)) {
      if (added === 0) {
        previous = messages;
        return lastRows;
      }
      for (let i = previous.length; i < messages.length; i++) timeline.push(messages[i] as MessageView);
    } else if (!(sameAt(messages, previous, added) && timeline.prepend(rowsFor(messages, added, now, locale)))) {
      timeline = rowsFor(messages, messages.length, now, locale);
    }
    previous = messages;
    builtFor = context;
    // A fresh array each time, so Svelte sees the change; the rows themselves are shared.
    lastRows = timeline.rows.slice();
    return lastRows;
  };
}

/** Whether `list` holds exactly the objects of `part`, starting at `offset`. */
function sameAt(list: readonly MessageView[], part: readonly MessageView[], offset: number): boolean {
  if (offset < 0 || offset + part.length > list.length) return false;
  for (let i = 0; i < part.length; i++) if (list[offset + i] !== part[i]) return false;
  return true;
}

/** Timeline rows for the first `count` of `messages`. */
function rowsFor(messages: readonly MessageView[], count: number, now: number, locale: string | undefined): TimelineRows {
  const timeline = new TimelineRows(now, locale);
  for (let i = 0; i < count; i++) timeline.push(messages[i] as MessageView);
  return timeline;
}
