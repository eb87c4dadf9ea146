// The UI's only door to the Rust core. Every command goes through here with its types, so a
// component never builds a command name or parses a raw reply itself. Arguments are camelCase,
// as Tauri maps them onto the shell's snake_case parameters.
import { Channel, invoke, type InvokeArgs } from "@tauri-apps/api/core";
import type {
  ConversationView,
  MarkVerifiedArgs,
  Me,
  MessageView,
  QrVerifyResult,
  SafetyNumberReport,
  Startup,
  UiEvent,
} from "./types";

/** What `storage_check` reports: the encryption library the app really runs on. */
export interface StorageReport {
  cipher_version: string;
  sqlite_version: string;
}

/** Why a command failed, as the shell sorts its errors (plus `timeout`, which the UI adds). */
export type ErrorKind =
  | "storage"
  | "environment"
  | "keyring"
  | "wrong_passphrase"
  | "handle_taken"
  | "offline"
  | "relay"
  | "not_found"
  | "invalid"
  | "no_profile"
  | "timeout";

/** The serialized `CommandError` of the shell: a kind to branch on and a sentence to show. */
export interface CommandError {
  kind: ErrorKind | (string & {});
  message: string;
}

export function isCommandError(value: unknown): value is CommandError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as CommandError).kind === "string" &&
    typeof (value as CommandError).message === "string"
  );
}

/** Turns anything a rejected command throws into one sentence to show the user. */
export function describeError(error: unknown): string {
  if (isCommandError(error)) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The kind of a rejected command's error, or null when it was not a command error. */
export function errorKind(error: unknown): string | null {
  return isCommandError(error) ? error.kind : null;
}

/**
 * How long a command may take before the UI gives up on it. A command refused by the isolation
 * hook never settles, and a stuck core must not leave the UI spinning forever.
 */
export const COMMAND_TIMEOUT_MS = 30_000;

/** Commands that wait for the relay (registering, fetching prekeys) get longer. */
export const RELAY_COMMAND_TIMEOUT_MS = 120_000;

/** Invokes a command, rejecting with a `timeout` error if the core does not answer in time. */
function call<T>(command: string, args?: InvokeArgs, timeoutMs = COMMAND_TIMEOUT_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject({ kind: "timeout", message: "Latch's core did not answer in time." }),
      timeoutMs,
    );
    invoke<T>(command, args).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Asks the core to prove that encrypted storage works on this machine. */
export function storageCheck(): Promise<StorageReport> {
  return call<StorageReport>("storage_check");
}

/** What the shell found at start-up: no profile, a locked one, or one ready to use. */
export function startup(): Promise<Startup> {
  return call<Startup>("startup");
}

/** Creates the profile: keys, encrypted database, relay registration of `handle`. */
export function createProfile(profile: {
  name: string;
  handle: string;
  relayUrl: string;
  passphrase: string | null;
}): Promise<Me> {
  return call<Me>("create_profile", profile, RELAY_COMMAND_TIMEOUT_MS);
}

/** Opens a passphrase-protected profile. Rejects with `wrong_passphrase` on a wrong one. */
export function unlockProfile(passphrase: string): Promise<Me> {
  return call<Me>("unlock_profile", { passphrase });
}

/** Starts the event stream; `onEvent` receives every engine event from now on. */
export function subscribe(onEvent: (event: UiEvent) => void): Promise<void> {
  const channel = new Channel<UiEvent>(onEvent);
  return call<void>("subscribe", { onEvent: channel });
}

/** Every conversation, with its preview and unread count. */
export function conversations(): Promise<ConversationView[]> {
  return call<ConversationView[]>("conversations");
}

/** A page of a conversation's messages before message `before` (null: the newest), oldest first. */
export function messages(conversationId: number, before: number | null, limit: number): Promise<MessageView[]> {
  return call<MessageView[]>("messages", { conversationId, before, limit });
}

/** Sends a message; it comes back as `pending` and is queued while offline. */
export function sendMessage(conversationId: number, body: string): Promise<MessageView> {
  return call<MessageView>("send_message", { conversationId, body });
}

/** Marks a conversation read (sends read receipts); answers how many messages it marked. */
export function markRead(conversationId: number): Promise<number> {
  return call<number>("mark_read", { conversationId });
}

/** Replaces the text of one of my messages, for both sides. */
export function editMessage(messageId: number, body: string): Promise<MessageView> {
  return call<MessageView>("edit_message", { messageId, body });
}

/** Deletes one of my messages for everyone. */
export function deleteMessage(messageId: number): Promise<void> {
  return call<void>("delete_message", { messageId });
}

/** Sets a conversation's disappearing timer (null: off, refused for secret chats). */
export function setTimer(conversationId: number, seconds: number | null): Promise<void> {
  return call<void>("set_timer", { conversationId, seconds });
}

/**
 * Keeps a chat's unsent text across restarts ("" clears it). Secret chats' drafts are never
 * stored; resolves to whether this one was.
 */
export function saveDraft(conversationId: number, text: string): Promise<boolean> {
  return call<boolean>("save_draft", { conversationId, text });
}

/** Opens a chat with `handle`, adding the contact if new; a standard chat is reused, not duplicated. */
export function startChat(handle: string, secret: boolean, timerSecs: number | null): Promise<ConversationView> {
  return call<ConversationView>("start_chat", { handle, secret, timerSecs }, RELAY_COMMAND_TIMEOUT_MS);
}

/** The safety number shared with a contact, with its QR matrix. */
export function safetyNumber(contactId: number): Promise<SafetyNumberReport> {
  return call<SafetyNumberReport>("safety_number", { contactId });
}

/** Checks a picture of the contact's safety-number QR code (base64 PNG or JPEG, no `data:` prefix). */
export async function verifyQrImage(contactId: number, image: string): Promise<QrVerifyResult> {
  const answer = await call<{ result: QrVerifyResult }>("verify_qr_image", { contactId, image });
  return answer.result;
}

/**
 * Marks a contact verified after the user compared `digits` (the 60 digits on screen), or clears
 * it (`digits` is then not needed and "" is sent). The core refuses with kind `invalid` when the
 * safety number is no longer the one compared (the key changed meanwhile).
 */
export function markVerified(contactId: number, verified: boolean, digits = ""): Promise<void> {
  if (verified && !/^\d{60}$/.test(digits)) {
    return Promise.reject({ kind: "invalid", message: "The safety number to mark as verified is missing." });
  }
  const args: MarkVerifiedArgs = { contactId, verified, digits: verified ? digits : "" };
  return call<void>("mark_verified", { ...args });
}

/**
 * Accepts a contact's new identity key, the one the banner showed (`key`); held secret-chat
 * messages are released. Refused when the key changed again since.
 */
export function acceptKeyChange(contactId: number, key: string): Promise<void> {
  return call<void>("accept_key_change", { contactId, key }, RELAY_COMMAND_TIMEOUT_MS);
}

/** Accepts a message request: the contact's chats become ordinary chats. */
export function acceptRequest(contactId: number): Promise<void> {
  return call<void>("accept_request", { contactId });
}

/** Declines a message request: the contact and their chats are deleted. */
export function declineRequest(contactId: number): Promise<void> {
  return call<void>("decline_request", { contactId });
}

/** Blocks a contact (a request or anyone else): what they send from now on is dropped unread. */
export function blockContact(contactId: number): Promise<void> {
  return call<void>("block_contact", { contactId });
}

/** Unblocks a contact: they are an ordinary contact again. */
export function unblockContact(contactId: number): Promise<void> {
  return call<void>("unblock_contact", { contactId });
}

/** Calls the contact of a chat (voice); resolves to the call's id. `call` events follow it. */
export function startCall(conversationId: number): Promise<string> {
  return call<string>("start_call", { conversationId }, RELAY_COMMAND_TIMEOUT_MS);
}

/** Answers the ringing call. */
export function answerCall(callId: string): Promise<void> {
  return call<void>("answer_call", { callId }, RELAY_COMMAND_TIMEOUT_MS);
}

/** Declines the ringing call. */
export function declineCall(callId: string): Promise<void> {
  return call<void>("decline_call", { callId });
}

/** Hangs up (or cancels) the current call. */
export function hangUpCall(callId: string): Promise<void> {
  return call<void>("hang_up_call", { callId });
}

/** Mutes or unmutes this device's microphone in the call. */
export function setCallMuted(callId: string, muted: boolean): Promise<void> {
  return call<void>("set_call_muted", { callId, muted });
}

/** Full-text search over standard chats (secret chats are never indexed). */
export function search(query: string): Promise<MessageView[]> {
  return call<MessageView[]>("search", { query });
}

/** Opens a confirmed http(s) link in the system browser. */
export function openLink(url: string): Promise<void> {
  return call<void>("open_link", { url });
}

/** Tells the shell which chat is on screen, so it does not notify for it (null: none). */
export function setActiveConversation(conversationId: number | null): Promise<void> {
  return call<void>("set_active_conversation", { conversationId });
}

let readySignalled = false;

/**
 * Tells the shell, once per page load, that the first screen is interactive (the first-run or
 * unlock form, or the conversation list): the finish line of the launch benchmark.
 */
export function signalUiReady(): void {
  if (readySignalled) return;
  readySignalled = true;
  call<void>("ui_ready").catch(() => {
    // Only a measurement depends on it.
  });
}

/** Every command this UI calls; the isolation hook allows exactly these. */
export const COMMANDS = [
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
] as const;
