// Day separators for a chat: the flat list of rows the virtualized chat view renders, with a
// "Today" / "Yesterday" / date row before the first message of each local calendar day. Days are
// calendar dates in the local time zone, so a 23- or 25-hour day around a DST change is one day.

import type { MessageView } from "./types";

/** One row of the chat timeline; `key` is unique and stable, as VirtualList's keyed rows need. */
export type TimelineItem =
  | { kind: "day"; key: string; day: string; label: string }
  | { kind: "message"; key: string; message: MessageView };

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
  const rows: TimelineItem[] = [];
  let currentDay = "";
  let sameDayRepeats = 0;
  const seenDays = new Set<string>();
  // The current local day as [start, end) in unix ms, so most messages need no Date at all:
  // 100,000 messages span a few hundred days.
  let dayStart = Number.POSITIVE_INFINITY;
  let dayEnd = Number.NEGATIVE_INFINITY;
  for (const message of messages) {
    if (!(message.sent_at >= dayStart && message.sent_at < dayEnd)) {
      const date = new Date(message.sent_at);
      dayStart = new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
      dayEnd = new Date(date.getFullYear(), date.getMonth(), date.getDate() + 1).getTime();
      const day = localDay(message.sent_at);
      if (day !== currentDay) {
        // The same day can come back after skewed messages; keep its key unique.
        const key = seenDays.has(day) ? `day:${day}:${++sameDayRepeats}` : `day:${day}`;
        seenDays.add(day);
        rows.push({ kind: "day", key, day, label: dayLabel(message.sent_at, now, locale) });
        currentDay = day;
      }
    }
    rows.push({ kind: "message", key: `message:${message.id}`, message });
  }
  return rows;
}
