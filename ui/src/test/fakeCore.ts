// A stand-in for Latch's Rust core in unit tests: the shell's commands over an in-memory model,
// installed with `mockIPC`, recording every call so a test can check what the UI sent. Events
// are pushed with `emit`, through the channel the UI passed to `subscribe`.

import { mockIPC } from "@tauri-apps/api/mocks";
import type { Channel } from "@tauri-apps/api/core";
import type {
  ConversationView,
  Me,
  MessageView,
  QrVerifyResult,
  SafetyNumberReport,
  Startup,
  UiEvent,
} from "../lib/types";

/** A contact as the fake core keeps it (the shell has no command that lists contacts). */
interface FakeContact {
  id: number;
  handle: string;
  verified: boolean;
  key_change_pending: boolean;
}

export const ME: Me = { name: "me", handle: "me.test", relay_url: "wss://relay.test" };

/** Unix ms all fake data is relative to. */
export const T0 = new Date(2026, 10, 23, 12, 0).getTime();

export function conversation(id: number, extra: Partial<ConversationView> = {}): ConversationView {
  return {
    id,
    kind: "standard",
    contact_id: id,
    contact_name: `contact${id}`,
    verified: false,
    disappear_after_secs: null,
    timer_set_by_me: null,
    unread: 0,
    last_message: null,
    key_change_pending: false,
    contact_key: `key${extra.contact_id ?? id}`,
    standing: "accepted",
    draft: null,
    ...extra,
  };
}

export function message(id: number, conversation_id: number, extra: Partial<MessageView> = {}): MessageView {
  return {
    id,
    conversation_id,
    direction: "incoming",
    status: "received",
    body: `message ${id}`,
    sent_at: T0 + id * 1000,
    expires_at: null,
    edited: false,
    deleted: false,
    call: null,
    ...extra,
  };
}

/** A well-formed safety number: 60 digits and a 21x21 QR matrix. */
export function safetyReport(contact_id: number, extra: Partial<SafetyNumberReport> = {}): SafetyNumberReport {
  return {
    contact_id,
    contact_name: `contact${contact_id}`,
    digits: "123456789012345678901234567890123456789012345678901234567890",
    qr: Array.from({ length: 21 }, (_, y) => Array.from({ length: 21 }, (_, x) => (x + y) % 3 === 0)),
    verified: false,
    key_change_pending: false,
    ...extra,
  };
}

export interface Call {
  cmd: string;
  args: Record<string, unknown>;
}

type Handler = (args: Record<string, unknown>) => unknown;

export class CommandFailure {
  constructor(
    readonly kind: string,
    readonly message: string,
  ) {}
}

const fail = (kind: string, message: string) => new CommandFailure(kind, message);

export class FakeCore {
  startup: Startup = { state: "ready", me: ME };
  me: Me = ME;
  passphrase = "correct horse";
  takenHandles = new Set<string>(["taken"]);
  knownHandles = new Set<string>(["ada", "bob", "cy"]);
  conversations: ConversationView[] = [];
  messages: MessageView[] = [];
  contacts: FakeContact[] = [];
  safety = new Map<number, SafetyNumberReport>();
  qrResult: QrVerifyResult = "verified";
  calls: Call[] = [];
  channel: Channel<UiEvent> | null = null;
  private nextId = 10_000;
  private overrides = new Map<string, Handler>();

  /** Installs this core behind `invoke`. */
  install(): this {
    mockIPC((cmd, args) => this.handle(cmd, (args ?? {}) as Record<string, unknown>));
    return this;
  }

  /** Replaces one command's behaviour (return a value, a promise, or throw a CommandFailure). */
  on(cmd: string, handler: Handler): this {
    this.overrides.set(cmd, handler);
    return this;
  }

  /** The arguments of every call of `cmd`, in order. */
  callsOf(cmd: string): Record<string, unknown>[] {
    return this.calls.filter((c) => c.cmd === cmd).map((c) => c.args);
  }

  /** The arguments of the latest call of `cmd`. */
  lastCallOf(cmd: string): Record<string, unknown> | undefined {
    const all = this.callsOf(cmd);
    return all[all.length - 1];
  }

  /** Sends an event to the UI through its subscription. */
  emit(event: UiEvent): void {
    if (!this.channel) throw new Error("the UI has not subscribed");
    this.channel.onmessage(event);
  }

  private async handle(cmd: string, args: Record<string, unknown>): Promise<unknown> {
    this.calls.push({ cmd, args });
    const override = this.overrides.get(cmd);
    try {
      return await (override ? override(args) : this.builtin(cmd, args));
    } catch (error) {
      if (error instanceof CommandFailure) throw { kind: error.kind, message: error.message };
      throw error;
    }
  }

  private newest(conversationId: number): MessageView | null {
    const list = this.sorted(conversationId);
    return list[list.length - 1] ?? null;
  }

  private sorted(conversationId: number): MessageView[] {
    return this.messages
      .filter((m) => m.conversation_id === conversationId)
      .sort((a, b) => a.sent_at - b.sent_at || a.id - b.id);
  }

  private message(id: unknown): MessageView {
    const found = this.messages.find((m) => m.id === id);
    if (!found) throw fail("not_found", "That message no longer exists.");
    return found;
  }

  /**
   * Like the core: accepting and declining take a request, unblocking a blocked contact, and
   * blocking anyone; declining deletes the contact's chats and their messages.
   */
  private answer(cmd: string, contactId: number): null {
    const theirs = this.conversations.filter((c) => c.contact_id === contactId);
    const standing = theirs[0]?.standing;
    if (standing === undefined) throw fail("not_found", "That contact no longer exists.");
    const needs = { accept_request: "request", decline_request: "request", unblock_contact: "blocked" }[
      cmd as "accept_request" | "decline_request" | "unblock_contact"
    ];
    if (needs !== undefined && standing !== needs) {
      throw fail("invalid", needs === "request" ? "That chat is not a message request." : "That contact is not blocked.");
    }
    if (cmd === "decline_request") {
      const ids = new Set(theirs.map((c) => c.id));
      this.conversations = this.conversations.filter((c) => !ids.has(c.id));
      this.messages = this.messages.filter((m) => !ids.has(m.conversation_id));
      return null;
    }
    const next = cmd === "block_contact" ? "blocked" : "accepted";
    for (const c of theirs) c.standing = next;
    return null;
  }

  private builtin(cmd: string, args: Record<string, unknown>): unknown {
    switch (cmd) {
      case "storage_check":
        return { cipher_version: "4.6.1 community", sqlite_version: "3.46.1" };
      case "startup":
        return this.startup;
      case "create_profile": {
        const handle = String(args.handle);
        if (this.takenHandles.has(handle)) throw fail("handle_taken", "That handle is already taken. Choose another.");
        this.me = { name: String(args.name), handle, relay_url: String(args.relayUrl) };
        return this.me;
      }
      case "unlock_profile":
        if (args.passphrase !== this.passphrase) throw fail("wrong_passphrase", "That passphrase is not right.");
        return this.me;
      case "subscribe":
        this.channel = args.onEvent as Channel<UiEvent>;
        return null;
      case "conversations":
        return this.conversations.map((c) => ({ ...c, last_message: this.newest(c.id) ?? c.last_message }));
      case "messages": {
        const list = this.sorted(Number(args.conversationId));
        const end = args.before === null ? list.length : list.findIndex((m) => m.id === args.before);
        const limit = Number(args.limit);
        return list.slice(Math.max(0, end - limit), Math.max(0, end));
      }
      case "send_message": {
        const sent = message(this.nextId++, Number(args.conversationId), {
          direction: "outgoing",
          status: "pending",
          body: String(args.body),
          sent_at: Date.now(),
        });
        this.messages.push(sent);
        return sent;
      }
      case "mark_read": {
        const c = this.conversations.find((x) => x.id === args.conversationId);
        const count = c?.unread ?? 0;
        if (c) c.unread = 0;
        return count;
      }
      case "edit_message": {
        const m = this.message(args.messageId);
        Object.assign(m, { body: String(args.body), edited: true });
        return { ...m };
      }
      case "delete_message":
        Object.assign(this.message(args.messageId), { body: "", deleted: true });
        return null;
      case "save_draft": {
        const c = this.conversations.find((x) => x.id === args.conversationId);
        if (!c) throw fail("not_found", "That chat no longer exists.");
        if (c.kind === "secret") return false;
        c.draft = args.text === "" ? null : String(args.text);
        return true;
      }
      case "set_timer": {
        const c = this.conversations.find((x) => x.id === args.conversationId);
        if (!c) throw fail("not_found", "That chat no longer exists.");
        if (c.kind === "secret" && args.seconds === null) throw fail("invalid", "A secret chat always disappears.");
        c.disappear_after_secs = args.seconds as number | null;
        return null;
      }
      case "start_chat": {
        const handle = String(args.handle);
        if (!this.knownHandles.has(handle)) throw fail("not_found", "Nobody has that handle.");
        let contact = this.contacts.find((c) => c.handle === handle);
        if (!contact) {
          contact = { id: this.nextId++, handle, verified: false, key_change_pending: false };
          this.contacts.push(contact);
        }
        const contactId = contact.id;
        if (!args.secret) {
          const existing = this.conversations.find((c) => c.contact_id === contactId && c.kind === "standard");
          if (existing) return existing;
        }
        const started = conversation(this.nextId++, {
          contact_id: contact.id,
          contact_name: handle,
          kind: args.secret ? "secret" : "standard",
          disappear_after_secs: (args.timerSecs as number | null) ?? null,
        });
        this.conversations.push(started);
        return started;
      }
      case "safety_number": {
        const id = Number(args.contactId);
        return this.safety.get(id) ?? safetyReport(id);
      }
      case "verify_qr_image":
        return { result: this.qrResult };
      case "mark_verified": {
        // Like the core: verifying needs the digits the user compared, and they must still be
        // the safety number (a key change in between makes them stale).
        const id = Number(args.contactId);
        const report = this.safety.get(id) ?? safetyReport(id);
        if (typeof args.digits !== "string") throw fail("invalid", "mark_verified needs digits.");
        if (args.verified === true && args.digits !== report.digits) {
          throw fail("invalid", "The safety number changed while you were comparing it. Compare the new one.");
        }
        this.safety.set(id, { ...report, verified: args.verified === true });
        return null;
      }
      case "accept_key_change": {
        // Like the core: only the key the banner showed is accepted.
        const current = this.conversations.find((c) => c.contact_id === Number(args.contactId));
        if (current && args.key !== current.contact_key) {
          throw fail("invalid", "The contact's key changed again since it was shown. Review the new one.");
        }
        return null;
      }
      case "accept_request":
      case "decline_request":
      case "block_contact":
      case "unblock_contact":
        return this.answer(cmd, Number(args.contactId));
      case "open_link":
      case "set_active_conversation":
      case "ui_ready":
        return null;
      // Like the core: a call starts dialing at once; what follows comes as events.
      case "start_call": {
        const callId = "c0".repeat(16);
        queueMicrotask(() =>
          this.emit({
            type: "call",
            call_id: callId,
            conversation_id: Number(args.conversationId),
            direction: "outgoing",
            media: "audio",
            state: "dialing",
            reason: null,
            remote_video: false,
          }),
        );
        return callId;
      }
      case "answer_call":
      case "decline_call":
      case "hang_up_call":
      case "set_call_muted":
        return null;
      case "search": {
        const needle = String(args.query).toLowerCase();
        const standard = new Set(this.conversations.filter((c) => c.kind === "standard").map((c) => c.id));
        return this.messages.filter((m) => standard.has(m.conversation_id) && m.body.toLowerCase().includes(needle));
      }
      default:
        throw new Error(`the fake core has no command ${cmd}`);
    }
  }
}
