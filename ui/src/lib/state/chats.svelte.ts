// The reactive holder for the chat model: one `$state.raw` field replaced by the pure functions in
// chats.ts, so components re-render by reference and the 100,000-message arrays are never
// wrapped in deep proxies.

import type { ConversationView, EngineEvent, MessageView } from "../types";
import {
  acceptKeyChange,
  applyEvent,
  conversationList,
  dismissKeyChange,
  emptyChats,
  forgetMessages,
  isGone,
  loadConversations,
  loadMessages,
  openConversation,
  replaceMessages,
  resetMessages,
  setDraft,
  setVerified,
  totalUnread,
  upsertConversation,
  type ChatsState,
} from "./chats";

const NO_MESSAGES: readonly MessageView[] = [];

/** The chat model the app shell feeds with engine events and command results. */
export class ChatStore {
  /** The whole model; replaced, never mutated. */
  state: ChatsState = $state.raw(emptyChats());

  /** Unread messages everywhere, for the tray badge and the window title. */
  readonly unread: number = $derived(totalUnread(this.state));

  /** Applies one engine event. */
  apply(event: EngineEvent): void {
    this.state = applyEvent(this.state, event);
  }

  /** Replaces the conversation list. */
  loadConversations(list: readonly ConversationView[]): void {
    this.state = loadConversations(this.state, list);
  }

  /** Adds or replaces one conversation. */
  upsertConversation(conversation: ConversationView): void {
    this.state = upsertConversation(this.state, conversation);
  }

  /** Records a contact's verification state in every chat with them. */
  setVerified(contactId: number, verified: boolean): void {
    this.state = setVerified(this.state, contactId, verified);
  }

  /** A contact's new key was accepted: no banner, no held chats. */
  acceptKeyChange(contactId: number): void {
    this.state = acceptKeyChange(this.state, contactId);
  }

  /** A conversation by id. */
  conversation(conversationId: number | null): ConversationView | undefined {
    return conversationId === null ? undefined : this.state.conversations.get(conversationId);
  }

  /** Merges a page of a conversation's messages. */
  loadMessages(conversationId: number, page: readonly MessageView[]): void {
    this.state = loadMessages(this.state, conversationId, page);
  }

  /**
   * Replaces every loaded message with `page` for `conversationId` (after a resync), keeping the
   * current copies of the messages in `arrived` (changed by events while the page was fetched).
   */
  resetMessages(conversationId: number | null, page: readonly MessageView[], arrived?: ReadonlySet<number>): void {
    this.state = resetMessages(this.state, conversationId, page, arrived);
  }

  /** Forgets the loaded messages of every conversation but `except` (after a resync). */
  forgetMessages(except: number | null): void {
    this.state = forgetMessages(this.state, except);
  }

  /**
   * Replaces one conversation's loaded messages with `page` (after a resync), keeping the current
   * copies of the messages in `arrived`.
   */
  replaceMessages(conversationId: number, page: readonly MessageView[], arrived?: ReadonlySet<number>): void {
    this.state = replaceMessages(this.state, conversationId, page, arrived);
  }

  /** Whether a message expired or was deleted (a search result fetched before it went). */
  isGone(message: MessageView, now?: number): boolean {
    return isGone(this.state, message, now);
  }

  /** Shows a conversation (or none) and clears its unread count. */
  open(conversationId: number | null): void {
    this.state = openConversation(this.state, conversationId);
  }

  /** Keeps the composer's text for a conversation. */
  setDraft(conversationId: number, text: string): void {
    this.state = setDraft(this.state, conversationId, text);
  }

  /** The composer's kept text for a conversation. */
  draft(conversationId: number): string {
    return this.state.drafts.get(conversationId) ?? "";
  }

  /** Hides a contact's key-change banner. */
  dismissKeyChange(contactId: number): void {
    this.state = dismissKeyChange(this.state, contactId);
  }

  /** The conversation list, newest first, filtered by `query`. */
  conversations(query = ""): ConversationView[] {
    return conversationList(this.state, query);
  }

  /** A conversation's loaded messages, oldest first. */
  messages(conversationId: number): readonly MessageView[] {
    return this.state.messages.get(conversationId) ?? NO_MESSAGES;
  }
}
