import { afterEach, describe, expect, it, vi } from "vitest";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import isolationHook from "../../isolation/index.js?raw";
import * as api from "./api";

afterEach(() => {
  clearMocks();
  vi.useRealTimers();
});

describe("the command contract", () => {
  it("the isolation hook allows exactly the commands the UI calls", () => {
    const listed = /const ALLOWED_COMMANDS = new Set\(\[([^\]]*)\]\)/.exec(isolationHook)?.[1] ?? "";
    const allowed = Array.from(listed.matchAll(/"([a-z_]+)"/g), (m) => m[1]);
    expect(allowed).toEqual([...api.COMMANDS]);
    expect(new Set(allowed).size).toBe(api.COMMANDS.length);
  });

  it("the hook refuses anything else but Tauri's own channel fetch", () => {
    const scope = { __TAURI_ISOLATION_HOOK__: undefined as undefined | ((payload: unknown) => unknown) };
    new Function("window", isolationHook)(scope);
    const hook = scope.__TAURI_ISOLATION_HOOK__;
    if (!hook) throw new Error("the hook was not installed");
    expect(hook({ cmd: "send_message", payload: {} })).toEqual({ cmd: "send_message", payload: {} });
    expect(hook({ cmd: "plugin:__TAURI_CHANNEL__|fetch" })).toBeTruthy();
    for (const cmd of ["plugin:window|close", "plugin:event|emit", "plugin:shell|open", "", "send_message "]) {
      expect(() => hook({ cmd })).toThrow("command not allowed");
    }
    expect(() => hook(null)).toThrow();
  });

  it("sends camelCase arguments", async () => {
    const calls: [string, unknown][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      return cmd === "verify_qr_image" ? { result: "mismatch" } : null;
    });
    await api.messages(3, 17, 100);
    await api.startChat("ada", true, 5);
    await api.setActiveConversation(null);
    expect(await api.verifyQrImage(4, "iVBO")).toBe("mismatch");
    expect(calls).toEqual([
      ["messages", { conversationId: 3, before: 17, limit: 100 }],
      ["start_chat", { handle: "ada", secret: true, timerSecs: 5 }],
      ["set_active_conversation", { conversationId: null }],
      ["verify_qr_image", { contactId: 4, image: "iVBO" }],
    ]);
  });

  it("gives relay commands 120 s and the rest 30 s", async () => {
    vi.useFakeTimers();
    mockIPC(() => new Promise(() => {}));
    const outcome = (promise: Promise<unknown>) => {
      const seen = { error: null as unknown };
      promise.catch((error: unknown) => (seen.error = error));
      return seen;
    };
    const relay = [
      outcome(api.createProfile({ name: "a", handle: "abc", relayUrl: "wss://r", passphrase: null })),
      outcome(api.startChat("abc", false, null)),
      outcome(api.acceptKeyChange(1, "ab".repeat(32))),
    ];
    const local = outcome(api.conversations());
    await vi.advanceTimersByTimeAsync(api.COMMAND_TIMEOUT_MS);
    expect(local.error).toEqual({ kind: "timeout", message: "Latch's core did not answer in time." });
    expect(relay.map((r) => r.error)).toEqual([null, null, null]);
    await vi.advanceTimersByTimeAsync(api.RELAY_COMMAND_TIMEOUT_MS - api.COMMAND_TIMEOUT_MS);
    expect(relay.every((r) => (r.error as { kind?: string } | null)?.kind === "timeout")).toBe(true);
  });

  it("describes errors as one sentence", () => {
    expect(api.describeError({ kind: "offline", message: "Latch is offline." })).toBe("Latch is offline.");
    expect(api.describeError(new Error("boom"))).toBe("boom");
    expect(api.errorKind({ kind: "wrong_passphrase", message: "x" })).toBe("wrong_passphrase");
    expect(api.errorKind("nope")).toBeNull();
  });
});
