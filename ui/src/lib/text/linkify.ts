// Message text is data, never markup: this splits it into plain-text runs and links, and the
// component renders each part as a text node or an <a> built from the part. Only http(s)
// addresses become links, and a link's visible text is exactly the address it opens, so nothing
// hidden inside the text (bidi overrides, zero-width characters) can disguise its target.

/** One run of a message: plain text, or an http(s) address that may be opened after consent. */
export type TextPart =
  | { kind: "text"; text: string }
  | { kind: "link"; text: string; href: string };

/**
 * Bidi embedding, override and isolate controls (U+202A–202E, U+2066–2069). A link never
 * contains one (they end a link), and `stripBidiControls` removes them wherever a URL is shown.
 */
export const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

/** Removes bidi controls so a string cannot reorder the text around or inside it. */
export function stripBidiControls(text: string): string {
  return text.replace(BIDI_CONTROLS, "");
}

// Where a link may start. No quantifiers, so the scan is linear whatever the input.
const START_HINT = /https?:\/\/|www\./gi;

// Characters that end a link: whitespace, controls and invisible format characters (which
// include the bidi controls and zero-width spaces/joiners), and what RFC 3986 never allows raw.
const NON_ASCII_STOP = /[\p{Z}\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}]/u;
const ASCII_STOP = new Set(Array.from(' <>"`{}|\\^', (c) => c.charCodeAt(0)));
// Sentence punctuation that ends a link when it is the last thing in it, including the CJK and
// typographic marks that follow links in other scripts (、。，！？；：…»”’」』）).
const TRAILING_PUNCTUATION = new Set(
  Array.from(".,:;!?'\"*~_\u3001\u3002\uff0c\uff01\uff1f\uff1b\uff1a\u2026\u00bb\u201d\u2019\u300d\u300f\uff09", (c) =>
    c.charCodeAt(0),
  ),
);
// A link may not start inside an ASCII word ("xhttps://"), but may follow CJK text directly,
// where words are not separated by spaces.
const WORD_CHAR = /[A-Za-z0-9_]/;
const HOST_START = /[\p{L}\p{N}[]/u;

function isStop(text: string, index: number): { stop: boolean; width: number } {
  const code = text.charCodeAt(index);
  if (code < 0x80) {
    return { stop: code <= 0x20 || code === 0x7f || ASCII_STOP.has(code), width: 1 };
  }
  const point = text.codePointAt(index) ?? code;
  const width = point > 0xffff ? 2 : 1;
  return { stop: NON_ASCII_STOP.test(String.fromCodePoint(point)), width };
}

/** The character before `index` as a string (a whole surrogate pair if there is one). */
function charBefore(text: string, index: number): string {
  if (index === 0) return "";
  const low = text.charCodeAt(index - 1);
  if (low >= 0xdc00 && low <= 0xdfff && index >= 2) return text.slice(index - 2, index);
  return text.charAt(index - 1);
}

/** Where the link that starts at `start` (after its `prefixLength` prefix) ends, or -1 if none. */
function linkEnd(text: string, start: number, prefixLength: number): number {
  const hostStart = start + prefixLength;
  const first = text.codePointAt(hostStart);
  if (first === undefined || !HOST_START.test(String.fromCodePoint(first))) return -1;

  let end = hostStart;
  let opens = 0;
  let closes = 0;
  let squareOpens = 0;
  let squareCloses = 0;
  while (end < text.length) {
    const { stop, width } = isStop(text, end);
    if (stop) break;
    const code = text.charCodeAt(end);
    if (code === 0x28) opens++;
    else if (code === 0x29) closes++;
    else if (code === 0x5b) squareOpens++;
    else if (code === 0x5d) squareCloses++;
    end += width;
  }

  // Trailing punctuation and unbalanced closing brackets belong to the sentence, not the link.
  while (end > hostStart) {
    const code = text.charCodeAt(end - 1);
    if (TRAILING_PUNCTUATION.has(code)) {
      end--;
    } else if (code === 0x29 && closes > opens) {
      closes--;
      end--;
    } else if (code === 0x5d && squareCloses > squareOpens) {
      squareCloses--;
      end--;
    } else {
      break;
    }
  }
  return end > hostStart ? end : -1;
}

/**
 * Splits message text into text and link parts. Concatenating every part's `text` gives back the
 * input exactly. Runs in time linear in the input (one forward scan, no backtracking regex).
 */
export function linkify(text: string): TextPart[] {
  const parts: TextPart[] = [];
  let textStart = 0;
  const hint = new RegExp(START_HINT.source, START_HINT.flags);
  let match: RegExpExecArray | null;
  while ((match = hint.exec(text)) !== null) {
    const start = match.index;
    const prefix = match[0];
    const isWww = prefix.length === 4 && prefix.toLowerCase() === "www.";
    const before = charBefore(text, start);
    const boundaryOk =
      before === "" || !(WORD_CHAR.test(before) || (isWww && /[.@/:-]/.test(before)));
    const end = boundaryOk ? linkEnd(text, start, prefix.length) : -1;
    if (end < 0) continue;

    if (start > textStart) parts.push({ kind: "text", text: text.slice(textStart, start) });
    const linkText = text.slice(start, end);
    parts.push({ kind: "link", text: linkText, href: isWww ? `https://${linkText}` : linkText });
    textStart = end;
    hint.lastIndex = end;
  }
  if (textStart < text.length) parts.push({ kind: "text", text: text.slice(textStart) });
  return parts;
}

/** What the user is asked to confirm before a link opens. */
export interface CheckedLink {
  /** The normalised address handed to the system browser (IDNs in punycode). */
  href: string;
  /** The host the browser will contact, shown on its own so it cannot hide in a long URL. */
  host: string;
  /** True when the URL carries `user@` credentials, a classic way to disguise the real host. */
  hasCredentials: boolean;
}

/**
 * Parses a link part's href with the WHATWG URL parser and accepts only http(s) with a host.
 * Called on click, not in `linkify`, so a message with thousands of links stays cheap to render.
 */
export function checkLink(href: string): CheckedLink | null {
  let url: URL;
  try {
    url = new URL(stripBidiControls(href));
  } catch {
    return null;
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.hostname === "") return null;
  return {
    href: url.href,
    host: url.host,
    hasCredentials: url.username !== "" || url.password !== "",
  };
}

/** The first part of a long message, for showing it collapsed. */
export interface Preview {
  /** The parts to show: the whole message, or its first `limit` characters. */
  parts: TextPart[];
  /** True when `parts` stops short of the whole message. */
  truncated: boolean;
}

/**
 * Cuts parts to at most about `limit` characters, so a 1 MB message does not lay out a page of
 * text 250,000 pixels tall. A link cut in the middle becomes plain text: a truncated address
 * must not be clickable. Never splits a surrogate pair.
 */
export function previewParts(parts: readonly TextPart[], limit: number): Preview {
  const out: TextPart[] = [];
  let used = 0;
  for (const part of parts) {
    const room = limit - used;
    if (part.text.length <= room) {
      out.push(part);
      used += part.text.length;
      continue;
    }
    let cut = Math.max(room, 0);
    const last = part.text.charCodeAt(cut - 1);
    if (cut > 0 && last >= 0xd800 && last <= 0xdbff) cut--;
    if (cut > 0) out.push({ kind: "text", text: part.text.slice(0, cut) });
    return { parts: out, truncated: true };
  }
  return { parts: out, truncated: false };
}
