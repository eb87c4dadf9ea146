import { describe, expect, it } from "vitest";
import {
  MAX_MESSAGE_BYTES,
  checkHandle,
  checkMessageSize,
  checkPassphrase,
  checkPassphraseConfirm,
  checkProfileName,
  checkRelayUrl,
  normalizeHandle,
  utf8Length,
} from "./validate";

describe("profile fields", () => {
  it("profile names are 1-32 of a-z0-9_-", () => {
    for (const ok of ["a", "ada", "ada_l-1", "x".repeat(32)]) expect(checkProfileName(ok)).toBeNull();
    for (const bad of ["", "Ada", "ada lovelace", "ada.l", "x".repeat(33), "ädä"]) {
      expect(checkProfileName(bad)).not.toBeNull();
    }
  });

  it("handles are 3-32 of a-z0-9_. and typed handles lose @, case and spaces", () => {
    for (const ok of ["ada", "ada.l_1", "x".repeat(32)]) expect(checkHandle(ok)).toBeNull();
    for (const bad of ["", "ab", "ada-l", "Ada", "x".repeat(33), "ada l"]) expect(checkHandle(bad)).not.toBeNull();
    expect(normalizeHandle("  @Ada.L ")).toBe("ada.l");
  });

  it("relay addresses must be ws(s) or http(s) URLs", () => {
    expect(checkRelayUrl("wss://relay.latch.example")).toBeNull();
    expect(checkRelayUrl("ws://127.0.0.1:8443")).toBeNull();
    expect(checkRelayUrl("")).toMatch(/Enter/);
    expect(checkRelayUrl("relay.example")).toMatch(/full address/);
    expect(checkRelayUrl("javascript:alert(1)")).toMatch(/wss:/);
    expect(checkRelayUrl("file:///etc/passwd")).toMatch(/wss:/);
  });

  it("passphrases need 8 characters (not bytes) and must match", () => {
    expect(checkPassphrase("1234567")).toMatch(/8 characters/);
    expect(checkPassphrase("12345678")).toBeNull();
    // Seven emoji are 14 UTF-16 units but still seven characters.
    expect(checkPassphrase("🔒".repeat(7))).not.toBeNull();
    expect(checkPassphraseConfirm("correct horse", "correct horse")).toBeNull();
    expect(checkPassphraseConfirm("correct horse", "correct hors")).toMatch(/do not match/);
  });
});

describe("message size", () => {
  it("counts UTF-8 bytes like TextEncoder, lone surrogates included", () => {
    for (const text of ["", "abc", "é", "€", "🔒", "a🔒b€é", "\ud800x", "x\udc00", "\ud800"]) {
      expect(utf8Length(text)).toBe(new TextEncoder().encode(text).length);
    }
  });

  it("allows exactly 60 KiB and refuses one byte more with a sentence", () => {
    expect(checkMessageSize("a".repeat(MAX_MESSAGE_BYTES))).toBeNull();
    expect(checkMessageSize("a".repeat(MAX_MESSAGE_BYTES + 1))).toMatch(/at most 60 KiB/);
    // 20,481 euro signs are 61,443 bytes although only 20,481 characters.
    expect(checkMessageSize("€".repeat(20_481))).toMatch(/61 KiB/);
  });
});
