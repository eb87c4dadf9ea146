// Tauri's isolation pattern: every IPC message from the UI passes through this sandboxed frame
// before Tauri encrypts it for the core. Anything that is not one of the commands Latch's UI
// actually calls is refused here, so injected script in the main frame cannot reach other APIs
// even if a capability were ever widened by mistake.
"use strict";

const ALLOWED_COMMANDS = new Set(["storage_check"]);

window.__TAURI_ISOLATION_HOOK__ = (payload) => {
  if (!payload || typeof payload.cmd !== "string" || !ALLOWED_COMMANDS.has(payload.cmd)) {
    throw new Error("Latch isolation: command not allowed");
  }
  return payload;
};
