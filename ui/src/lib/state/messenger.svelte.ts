// The app store behind the main screen: the chat model (ChatStore) wired to the shell's
// commands and its event stream. Components read its fields and call its methods; none of them
// invokes a command that changes chats itself, so what is on screen and what the core was told
// cannot drift apart.

import { tick } from "svelte";
import * as api from "../api";
import type { CallEndReason, CallState, ConversationView, Me, MessageView, UiEvent } from "../types";
import { ChatStore } from "./chats.svelte";

/** Messages per page when opening a chat or scrolling back. */
export const PAGE_SIZE = 100;

/** How long typing must pause before a chat's draft is stored (not one write per key). */
export const DRAFT_SAVE_DELAY_MS = 400;

/** The call in progress, as the call bar shows it. */
export interface ActiveCall {
  callId: string;
  conversationId: number;
  direction: "incoming" | "outgoing";
  media: "audio" | "video";
  state: Exclude<CallState, "ended">;
  /** When it first connected (ms), for the duration. */
  connectedAt: number | null;
  /** Whether this side's microphone is muted. */
  muted: boolean;
}

/** What the screen reader and the toast say when a call ends. */
const CALL_ENDED: Record<CallEndReason, string> = {
  declined: "Call declined",
  busy: "They are in another call",
  no_answer: "No answer",
  cancelled: "Call cancelled",
  hung_up: "Call ended",
  failed: "The call's connection was lost",
  not_allowed: "A call from someone you have not accepted was not rung",
};

export class Messenger {
  /** The conversations and messages on screen. */
  readonly chats = new ChatStore();
  /** Who this device is. */
  readonly me: Me;
  /** The conversation the user chose to look at (shown even while the window is in the background). */
  selected: number | null = $state(null);
  /** Whether the window has focus; a chat counts as read only while it does. */
  focused = $state(false);
  /** Conversations whose whole history is loaded, so scrolling up asks for nothing more. */
  complete: ReadonlySet<number> = $state.raw(new Set());
  /** Older messages are on their way. */
  loadingOlder = $state(false);
  /** A problem with the connection to the core itself, shown until the next success. */
  problem = $state("");
  /** A short status line for the screen reader and the eye ("Copied", "Message deleted"). */
  status = $state("");
  /**
   * How many `key_changed` events arrived per contact this session: a safety number on screen
   * reloads when its contact's count moves.
   */
  keyChangeEvents: ReadonlyMap<number, number> = $state.raw(new Map());
  /** The call in progress, if any. */
  call: ActiveCall | null = $state(null);
  /** Calls that ended this session: a late answer to `startCall` must not bring one back. */
  private endedCalls = new Set<string>();
  /** A mute switch is on its way to the core. */
  private switchingMute = false;

  private subscribed = false;
  private loaded = new Set<number>();
  private toldActive: number | null | undefined = undefined;
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;
  private readPending = new Set<number>();
  private statusTimer: ReturnType<typeof setTimeout> | undefined;
  /** Drafts waiting for typing to pause before they are stored, by conversation. */
  private draftTimers = new Map<number, ReturnType<typeof setTimeout>>();
  /** Moves on at each resync: a page asked for before it is not merged after it. */
  private epoch = 0;
  /** While a resync fetches the open chat's page: the messages events added or changed meanwhile. */
  private resetting: { conversationId: number; arrived: Set<number> } | null = null;

  constructor(me: Me) {
    this.me = me;
  }

  /** Subscribes to events (once) and loads the conversation list. */
  async start(): Promise<void> {
    try {
      if (!this.subscribed) {
        await api.subscribe((event) => this.handle(event));
        this.subscribed = true;
      }
      await this.reloadConversations();
    } catch (error) {
      this.problem = api.describeError(error);
    }
  }

  /** The conversation on screen, if any. */
  get current(): ConversationView | undefined {
    return this.chats.conversation(this.selected);
  }

  /** Applies one event from the shell. */
  handle(event: UiEvent): void {
    switch (event.type) {
      case "resync":
        void this.resync();
        return;
      case "conversation_started":
        void this.reloadConversations();
        return;
      case "receive_failed":
        this.announce("A message from the relay could not be read and was dropped.");
        return;
      case "call":
        this.applyCall(event);
        return;
      default:
        break;
    }
    this.chats.apply(event);
    if (event.type === "contact_removed") this.closeIfGone();
    if (event.type === "key_changed") {
      const counts = new Map(this.keyChangeEvents);
      counts.set(event.contact_id, (counts.get(event.contact_id) ?? 0) + 1);
      this.keyChangeEvents = counts;
    }
    if (
      this.resetting &&
      (event.type === "message" || event.type === "message_updated") &&
      event.message.conversation_id === this.resetting.conversationId
    ) {
      this.resetting.arrived.add(event.message.id);
    }
    if (event.type === "message") {
      const id = event.message.conversation_id;
      if (!this.chats.state.conversations.has(id)) void this.reloadConversations();
      else if (event.message.direction === "incoming" && this.chats.state.active === id) this.markRead(id);
    }
  }

  /** Shows a conversation (or none), loading its newest messages the first time. */
  select(conversationId: number | null): void {
    this.selected = conversationId;
    this.syncActive();
    if (conversationId !== null && !this.loaded.has(conversationId)) void this.loadLatest(conversationId);
  }

  /** The window gained or lost focus. */
  setFocused(focused: boolean): void {
    this.focused = focused;
    this.syncActive();
  }

  /** Loads the page before the oldest loaded message of the open chat. */
  async loadOlder(): Promise<void> {
    const id = this.selected;
    if (id === null || this.loadingOlder || this.complete.has(id) || !this.loaded.has(id)) return;
    // The newest page is being fetched again after a resync: older ones follow it, not the old list.
    if (this.resetting?.conversationId === id) return;
    const oldest = this.chats.messages(id)[0];
    if (!oldest) return;
    this.loadingOlder = true;
    const epoch = this.epoch;
    try {
      const page = await api.messages(id, oldest.id, PAGE_SIZE);
      // A resync replaced what was loaded meanwhile: this page belongs to the old history.
      if (epoch !== this.epoch) return;
      // Timed for the scrolling benchmark (a `performance` entry, nothing else).
      const started = performance.now();
      this.chats.loadMessages(id, page);
      void tick().then(() =>
        performance.measure("latch:older-page", { start: started, end: performance.now() }),
      );
      if (page.length < PAGE_SIZE) this.markComplete(id);
    } catch (error) {
      this.announce(`Older messages could not be loaded: ${api.describeError(error)}`);
    } finally {
      this.loadingOlder = false;
    }
  }

  /** Sends `body` in the open chat. Rejects with the core's error, leaving the model unchanged. */
  /**
   * Keeps what the user typed in a chat, and stores it in the profile once typing pauses so it
   * survives a restart. A secret chat's draft stays on screen only: it never reaches the core.
   */
  setDraft(conversationId: number, text: string): void {
    this.chats.setDraft(conversationId, text);
    if (this.chats.conversation(conversationId)?.kind === "secret") return;
    clearTimeout(this.draftTimers.get(conversationId));
    this.draftTimers.delete(conversationId);
    if (text === "") {
      // Cleared (usually: just sent): at once, so a quit right after cannot bring it back.
      void this.storeDraft(conversationId);
      return;
    }
    const timer = setTimeout(() => {
      this.draftTimers.delete(conversationId);
      void this.storeDraft(conversationId);
    }, DRAFT_SAVE_DELAY_MS);
    this.draftTimers.set(conversationId, timer);
  }

  private async storeDraft(conversationId: number): Promise<void> {
    try {
      await api.saveDraft(conversationId, this.chats.draft(conversationId));
    } catch (error) {
      this.announce(`The draft could not be kept: ${api.describeError(error)}`);
    }
  }

  async send(conversationId: number, body: string): Promise<void> {
    const sent = await api.sendMessage(conversationId, body);
    // The engine may already have reported it (and its later status); keep the newer copy.
    if (!this.chats.messages(conversationId).some((m) => m.id === sent.id)) {
      this.chats.apply({ type: "message", message: sent });
    }
  }

  /** Replaces the text of one of my messages. */
  async edit(messageId: number, body: string): Promise<void> {
    const edited = await api.editMessage(messageId, body);
    this.chats.apply({ type: "message_updated", message: edited });
  }

  /** Deletes one of my messages for everyone. */
  async remove(message: MessageView): Promise<void> {
    await api.deleteMessage(message.id);
    const current = this.chats.messages(message.conversation_id).find((m) => m.id === message.id) ?? message;
    this.chats.apply({ type: "message_updated", message: { ...current, body: "", deleted: true } });
    this.announce("Message deleted for everyone.");
  }

  /** Sets a chat's disappearing timer. */
  async setTimer(conversationId: number, seconds: number | null): Promise<void> {
    await api.setTimer(conversationId, seconds);
    this.chats.apply({ type: "timer_changed", conversation_id: conversationId, seconds, by_me: true });
  }

  /** Opens (or reopens) a chat with `handle` and shows it. */
  async startChat(handle: string, secret: boolean, timerSecs: number | null): Promise<ConversationView> {
    const started = await api.startChat(handle, secret, timerSecs);
    this.chats.upsertConversation(started);
    this.select(started.id);
    return started;
  }

  /** Accepts a contact's new identity key, the one its banner showed. */
  async acceptKeyChange(contactId: number, key: string): Promise<void> {
    await api.acceptKeyChange(contactId, key);
    this.chats.acceptKeyChange(contactId);
  }

  /** Accepts a message request: the contact's chats become ordinary chats that can be answered. */
  async acceptRequest(contactId: number): Promise<void> {
    await api.acceptRequest(contactId);
    this.chats.apply({ type: "contact_standing", contact_id: contactId, standing: "accepted" });
  }

  /** Declines a message request: the contact and their chats are deleted, and the chat closes. */
  async declineRequest(contactId: number): Promise<void> {
    await api.declineRequest(contactId);
    this.chats.apply({ type: "contact_removed", contact_id: contactId, conversation_ids: [] });
    this.closeIfGone();
    this.announce("Request deleted.");
  }

  /** Blocks a contact: what they send from now on is dropped unread, and nothing goes to them. */
  async block(contactId: number): Promise<void> {
    await api.blockContact(contactId);
    this.chats.apply({ type: "contact_standing", contact_id: contactId, standing: "blocked" });
  }

  /** Follows the call's events: one call at a time, gone when it ends. */
  private applyCall(event: Extract<UiEvent, { type: "call" }>): void {
    if (event.state === "ended") {
      this.endedCalls.add(event.call_id);
      if (this.call === null || this.call.callId === event.call_id) {
        this.call = null;
        if (event.reason !== null) this.announce(CALL_ENDED[event.reason]);
      }
      return;
    }
    const previous = this.call?.callId === event.call_id ? this.call : null;
    this.call = {
      callId: event.call_id,
      conversationId: event.conversation_id,
      direction: event.direction,
      media: event.media,
      state: event.state,
      connectedAt: previous?.connectedAt ?? (event.state === "connected" ? Date.now() : null),
      muted: previous?.muted ?? false,
    };
  }

  /** Calls the contact of a chat (voice). */
  async startCall(conversationId: number): Promise<void> {
    try {
      const callId = await api.startCall(conversationId);
      // The first event may have come before the answer; if not, show the call at once.
      if (!this.endedCalls.has(callId) && this.call?.callId !== callId) {
        this.call = {
          callId,
          conversationId,
          direction: "outgoing",
          media: "audio",
          state: "dialing",
          connectedAt: null,
          muted: false,
        };
      }
    } catch (error) {
      this.announce(`The call could not start: ${api.describeError(error)}`);
    }
  }

  /** Answers the ringing call; whether the answer went out. */
  async answerCall(): Promise<boolean> {
    const call = this.call;
    if (call === null) return false;
    try {
      await api.answerCall(call.callId);
      return true;
    } catch (error) {
      this.announce(`The call could not be answered: ${api.describeError(error)}`);
      return false;
    }
  }

  /** Declines the ringing call. */
  async declineCall(): Promise<void> {
    const call = this.call;
    if (call === null) return;
    try {
      await api.declineCall(call.callId);
    } catch (error) {
      this.announce(`The call could not be declined: ${api.describeError(error)}`);
    }
  }

  /** Mutes or unmutes the microphone in the call in progress (one switch at a time). */
  async toggleMute(): Promise<void> {
    const call = this.call;
    if (call === null || this.switchingMute || (call.direction === "incoming" && call.state === "ringing")) return;
    const muted = !call.muted;
    this.switchingMute = true;
    try {
      await api.setCallMuted(call.callId, muted);
      if (this.call?.callId === call.callId) this.call = { ...this.call, muted };
      this.announce(muted ? "Microphone muted" : "Microphone on");
    } catch (error) {
      this.announce(`The microphone could not be switched: ${api.describeError(error)}`);
    } finally {
      this.switchingMute = false;
    }
  }

  /** Hangs up the call in progress. */
  async hangUp(): Promise<void> {
    const call = this.call;
    if (call === null) return;
    try {
      await api.hangUpCall(call.callId);
    } catch (error) {
      this.announce(`The call could not be ended: ${api.describeError(error)}`);
    }
  }

  /** Unblocks a contact: they are an ordinary contact again. */
  async unblock(contactId: number): Promise<void> {
    await api.unblockContact(contactId);
    this.chats.apply({ type: "contact_standing", contact_id: contactId, standing: "accepted" });
  }

  /**
   * Marks a contact verified after the user compared `digits` (the 60 digits shown), or clears
   * it. The core refuses (kind `invalid`) if the number changed since it was shown.
   */
  async markVerified(contactId: number, verified: boolean, digits: string): Promise<void> {
    await api.markVerified(contactId, verified, digits);
    this.chats.setVerified(contactId, verified);
  }

  /** A scanned QR code matched: the core marked the contact verified. */
  verifiedByScan(contactId: number): void {
    this.chats.setVerified(contactId, true);
  }

  /** Messages matching `query` in standard chats (secret chats are never indexed). */
  search(query: string): Promise<MessageView[]> {
    return api.search(query);
  }

  /** Opens a confirmed link in the system browser. */
  openLink(url: string): void {
    api.openLink(url).catch((error: unknown) => this.announce(`The link could not be opened: ${api.describeError(error)}`));
  }

  /** Shows a short status for a few seconds. */
  announce(text: string): void {
    clearTimeout(this.statusTimer);
    // After the current turn: a dialog that is closing (delete) has given the page back by
    // then, and a live region inside an inert page would not be heard.
    this.statusTimer = setTimeout(() => {
      this.status = text;
      this.statusTimer = setTimeout(() => (this.status = ""), 6_000);
    }, 0);
  }

  /** Reloads the conversation list; calls while one is running are folded into one more. */
  reloadConversations(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      try {
        do {
          this.reloadAgain = false;
          this.chats.loadConversations(await api.conversations());
          this.problem = "";
        } while (this.reloadAgain);
        // The open chat's count came back from the core before mark_read landed: clear it again.
        this.syncActive();
      } catch (error) {
        this.problem = api.describeError(error);
      } finally {
        this.reloading = null;
      }
    })();
    return this.reloading;
  }

  /** After dropped events: the list again, and the open chat's newest page instead of what was loaded. */
  private async resync(): Promise<void> {
    await this.reloadConversations();
    const id = this.selected;
    this.epoch++;
    this.loaded = new Set();
    this.complete = new Set();
    // Other chats load again when opened (and one opened while the page comes loads normally).
    this.chats.forgetMessages(id);
    if (id === null) return;
    const epoch = this.epoch;
    // Events keep arriving while the page is fetched; what they bring must survive the reset.
    const resetting = { conversationId: id, arrived: new Set<number>() };
    this.resetting = resetting;
    this.loaded.add(id);
    try {
      const page = await api.messages(id, null, PAGE_SIZE);
      if (epoch !== this.epoch) return; // A later resync took over.
      this.chats.replaceMessages(id, page, resetting.arrived);
      if (page.length < PAGE_SIZE) this.markComplete(id);
    } catch (error) {
      if (epoch === this.epoch) {
        this.loaded.delete(id);
        this.problem = api.describeError(error);
      }
    } finally {
      if (this.resetting === resetting) this.resetting = null;
    }
  }

  private async loadLatest(id: number): Promise<void> {
    this.loaded.add(id);
    const epoch = this.epoch;
    try {
      const page = await api.messages(id, null, PAGE_SIZE);
      // A resync replaced what was loaded meanwhile (and loads the open chat itself).
      if (epoch !== this.epoch) return;
      this.chats.loadMessages(id, page);
      if (page.length < PAGE_SIZE) this.markComplete(id);
    } catch (error) {
      if (epoch !== this.epoch) return;
      this.loaded.delete(id);
      this.announce(`Messages could not be loaded: ${api.describeError(error)}`);
    }
  }

  /** The chosen conversation was deleted (a declined request): nothing is shown in its place. */
  private closeIfGone(): void {
    if (this.selected !== null && !this.chats.state.conversations.has(this.selected)) this.select(null);
  }

  private markComplete(id: number): void {
    const complete = new Set(this.complete);
    complete.add(id);
    this.complete = complete;
  }

  /**
   * The chat counts as on screen only while the window has focus: then its unread count is
   * cleared, the core marks it read and does not notify for it. Otherwise new messages count.
   */
  private syncActive(): void {
    const active = this.focused ? this.selected : null;
    const opened = this.chats.state.active !== active;
    const unread = active !== null && (this.current?.unread ?? 0) > 0;
    if (opened || unread) this.chats.open(active);
    if (active !== this.toldActive) {
      this.toldActive = active;
      api.setActiveConversation(active).catch(() => {
        // Only notifications depend on it; the next change tells the shell again.
        this.toldActive = undefined;
      });
    }
    if (active !== null && (opened || unread)) this.markRead(active);
  }

  /** Marks a chat read, once per burst of messages. */
  private markRead(id: number): void {
    if (this.readPending.has(id)) return;
    this.readPending.add(id);
    queueMicrotask(() => {
      this.readPending.delete(id);
      api.markRead(id).catch(() => {
        // Read receipts are a courtesy; the next message or visit marks it again.
      });
    });
  }
}
