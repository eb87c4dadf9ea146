// The time beside a conversation in the list: recent activity as minutes, today's as a clock
// time, then "Yesterday", a weekday within the week, and a date beyond that.

import { calendarDaysBetween } from "./days";

const cache = new Map<string, Intl.DateTimeFormat>();

function format(locale: string | undefined, options: Intl.DateTimeFormatOptions, ms: number): string {
  const key = `${locale ?? ""}|${JSON.stringify(options)}`;
  let formatter = cache.get(key);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat(locale, options);
    cache.set(key, formatter);
  }
  return formatter.format(ms);
}

/** A short, relative time for `ms` seen at `now` (both unix ms). */
export function listTime(ms: number, now: number, locale?: string): string {
  if (Number.isNaN(new Date(ms).getTime())) return "";
  const ago = now - ms;
  if (ago < 60_000 && ago > -60_000) return "now";
  const days = calendarDaysBetween(ms, now);
  if (ago > 0 && ago < 3_600_000 && days === 0) return `${Math.floor(ago / 60_000)} min`;
  if (days === 0) return format(locale, { hour: "numeric", minute: "2-digit" }, ms);
  if (days === 1) return "Yesterday";
  if (days > 1 && days < 7) return format(locale, { weekday: "short" }, ms);
  const sameYear = new Date(ms).getFullYear() === new Date(now).getFullYear();
  return format(locale, sameYear ? { day: "numeric", month: "short" } : { day: "numeric", month: "short", year: "numeric" }, ms);
}

/** The full date and time, for a tooltip and screen readers. */
export function fullTime(ms: number, locale?: string): string {
  if (Number.isNaN(new Date(ms).getTime())) return "";
  return format(locale, { dateStyle: "full", timeStyle: "short" }, ms);
}

/** The ISO form for a <time datetime>, or undefined for a time outside Date's range. */
export function isoTime(ms: number): string | undefined {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}
