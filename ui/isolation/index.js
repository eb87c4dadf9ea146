// Tauri's isolation pattern: every IPC message from the UI passes through this sandboxed frame
// before Tauri encrypts it for the core. Anything that is not one of the commands Latch's UI
// actually calls is refused here, so injected script in the main frame cannot reach other APIs
// even if a capability were ever widened by mistake. The list must match src-tauri/build.rs
// (a unit test of the shell checks it).
"use strict";

const ALLOWED_COMMANDS = new Set([
  "storage_check",
  "startup",
  "create_profile",
  "unlock_profile",
  "subscribe",
  "conversations",
  "messages",
  "send_message",
  "mark_read",
  "edit_message",
  "delete_message",
  "set_timer",
  "save_draft",
  "start_chat",
  "safety_number",
  "verify_qr_image",
  "mark_verified",
  "accept_key_change",
  "accept_request",
  "decline_request",
  "block_contact",
  "unblock_contact",
  "search",
  "start_call",
  "answer_call",
  "decline_call",
  "hang_up_call",
  "set_call_muted",
  "open_link",
  "set_active_conversation",
  "ui_ready",
  // Tauri's own: fetches a channel message too large to be pushed inline (a long message).
  "plugin:__TAURI_CHANNEL__|fetch",
]);

window.__TAURI_ISOLATION_HOOK__ = (payload) => {
  if (!payload || typeof payload.cmd !== "string" || !ALLOWED_COMMANDS.has(payload.cmd)) {
    throw new Error("Latch isolation: command not allowed");
  }
  return payload;
};
