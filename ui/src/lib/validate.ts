// The rules for what a person types before it reaches the core: profile names, relay handles,
// the relay address, passphrases and message size. The core checks them again; these give a
// clear sentence next to the field instead of a round trip.

/** A profile name: 1-32 of a-z, 0-9, `_` and `-`. */
export const PROFILE_NAME = /^[a-z0-9_-]{1,32}$/;
/** A relay handle: 3-32 of a-z, 0-9, `_` and `.`. */
export const HANDLE = /^[a-z0-9_.]{3,32}$/;
/** The shortest passphrase accepted, in characters. */
export const PASSPHRASE_MIN = 8;
/** The largest message body the engine sends, in bytes of UTF-8 (60 KiB). */
export const MAX_MESSAGE_BYTES = 60 * 1024;

/** A sentence saying what is wrong, or null when the value is fine. */
export type Problem = string | null;

export function checkProfileName(name: string): Problem {
  if (name === "") return "Choose a profile name.";
  if (name.length > 32) return "A profile name has at most 32 characters.";
  if (!PROFILE_NAME.test(name)) return "Use only lower-case letters, digits, _ and -.";
  return null;
}

/** What the user typed as a handle, as the relay spells it: no leading @, lower-case, trimmed. */
export function normalizeHandle(typed: string): string {
  return typed.trim().replace(/^@/, "").toLowerCase();
}

export function checkHandle(handle: string): Problem {
  if (handle === "") return "Enter a handle.";
  if (handle.length < 3) return "A handle has at least 3 characters.";
  if (handle.length > 32) return "A handle has at most 32 characters.";
  if (!HANDLE.test(handle)) return "Use only lower-case letters, digits, _ and dots.";
  return null;
}

export function checkRelayUrl(url: string): Problem {
  const trimmed = url.trim();
  if (trimmed === "") return "Enter the relay's address.";
  let parsed: URL;
  try {
    parsed = new URL(trimmed);
  } catch {
    return "Enter a full address, such as wss://relay.example.org.";
  }
  if (!["wss:", "ws:", "https:", "http:"].includes(parsed.protocol) || parsed.hostname === "") {
    return "The relay's address starts with wss:// (or ws:// for a local test relay).";
  }
  return null;
}

export function checkPassphrase(passphrase: string): Problem {
  if (Array.from(passphrase).length < PASSPHRASE_MIN) {
    return `Use at least ${PASSPHRASE_MIN} characters.`;
  }
  return null;
}

export function checkPassphraseConfirm(passphrase: string, confirm: string): Problem {
  return passphrase === confirm ? null : "The two passphrases do not match.";
}

/** The UTF-8 size of `text` in bytes, counted without encoding it (a draft can be 1 MB). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
      }
    } else bytes += 3;
  }
  return bytes;
}

/** Why a message cannot be sent as it is, or null when it can. */
export function checkMessageSize(text: string): Problem {
  const bytes = utf8Length(text);
  if (bytes <= MAX_MESSAGE_BYTES) return null;
  const kib = Math.ceil(bytes / 1024);
  return `This message is ${kib.toLocaleString("en-US")} KiB; a message can be at most 60 KiB. Shorten it or send it in parts.`;
}
