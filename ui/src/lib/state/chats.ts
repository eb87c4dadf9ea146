// The UI's model of conversations and messages, and how each engine event changes it. Pure
// functions over immutable data: every change returns a new state and leaves the old one as it
// was, so Svelte sees a change by reference and tests can compare before and after.

import type { ConversationView, EngineEvent, KeyChange, MessageView } from "../types";

/** The relay connection as the engine last reported it. */
export type ConnectionState = "connecting" | "online" | "offline";

/** Everything the chat screens show. */
export interface ChatsState {
  /** Conversations by id. */
  readonly conversations: ReadonlyMap<number, ConversationView>;
  /** Loaded messages per conversation, oldest first (by `sent_at`, then `id`). */
  readonly messages: ReadonlyMap<number, readonly MessageView[]>;
  /** Unsent composer text per conversation; a conversation without a draft has no entry. */
  readonly drafts: ReadonlyMap<number, string>;
  /** The conversation on screen; its new messages do not count as unread. */
  readonly active: number | null;
  /** The relay connection. */
  readonly connection: ConnectionState;
  /** Contacts whose identity key changed and whose warning banner has not been dismissed. */
  readonly keyChanges: ReadonlyMap<number, KeyChange>;
  /** The latest timer change per conversation, for a "timer set to…" notice. */
  readonly timerChanges: ReadonlyMap<number, { seconds: number | null; by_me: boolean }>;
  /**
   * Incoming messages counted as unread since the conversation was last opened, so that when
   * they disappear the unread count drops with them.
   */
  readonly unreadIds: ReadonlyMap<number, ReadonlySet<number>>;
  /**
   * Messages known gone this session: expired, or deleted for everyone. A page or a
   * conversation list fetched before they went may still hold them; they are filtered out so
   * that they never come back.
   */
  readonly gone: ReadonlySet<number>;
}

/** A state with nothing loaded. */
export function emptyChats(): ChatsState {
  return {
    conversations: new Map(),
    messages: new Map(),
    drafts: new Map(),
    active: null,
    connection: "connecting",
    keyChanges: new Map(),
    timerChanges: new Map(),
    unreadIds: new Map(),
    gone: new Set(),
  };
}

function withEntry<K, V>(map: ReadonlyMap<K, V>, key: K, value: V): Map<K, V> {
  const copy = new Map(map);
  copy.set(key, value);
  return copy;
}

function withoutEntry<K, V>(map: ReadonlyMap<K, V>, key: K): ReadonlyMap<K, V> {
  if (!map.has(key)) return map;
  const copy = new Map(map);
  copy.delete(key);
  return copy;
}

/** Display order: by send time, then id so equal times keep a stable order. */
function before(a: MessageView, b: MessageView): boolean {
  return a.sent_at < b.sent_at || (a.sent_at === b.sent_at && a.id < b.id);
}

/** Where `message` goes in a sorted list (binary search). */
function insertionPoint(list: readonly MessageView[], message: MessageView): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const probe = list[middle];
    if (probe !== undefined && before(probe, message)) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The position of message `id`, searching from the end where new and updated messages are. */
function indexOfId(list: readonly MessageView[], id: number): number {
  for (let i = list.length - 1; i >= 0; i--) if (list[i]?.id === id) return i;
  return -1;
}

/** The list with `message` added or replacing the one with its id, kept sorted. */
function upsert(list: readonly MessageView[], message: MessageView): MessageView[] {
  const existing = indexOfId(list, message.id);
  const rest = existing < 0 ? list.slice() : [...list.slice(0, existing), ...list.slice(existing + 1)];
  rest.splice(insertionPoint(rest, message), 0, message);
  return rest;
}

/** The list preview of a conversation is its newest message, shown as the list decides. */
function preview(message: MessageView): MessageView {
  return message;
}

/** A message deleted for everyone keeps no text in the model. */
function scrubbed(message: MessageView): MessageView {
  return message.deleted && message.body !== "" ? { ...message, body: "" } : message;
}

/** Whether a disappearing message's time is already up by `now`. */
function expiredBy(message: MessageView, now: number): boolean {
  return message.expires_at !== null && message.expires_at <= now;
}

/**
 * Whether `message` is known gone: expired or deleted for everyone this session, or its
 * disappearing time already passed. Such a message in a page, a list snapshot or a search result
 * was fetched before it went and must not be shown.
 */
export function isGone(state: ChatsState, message: MessageView, now = Date.now()): boolean {
  return state.gone.has(message.id) || expiredBy(message, now);
}

/** `ids` added to the gone set. */
function withGone(gone: ReadonlySet<number>, ids: Iterable<number>): ReadonlySet<number> {
  let next: Set<number> | null = null;
  for (const id of ids) {
    if (gone.has(id) || next?.has(id)) continue;
    next ??= new Set(gone);
    next.add(id);
  }
  return next ?? gone;
}

/**
 * A conversation snapshot (from `conversations` or `start_chat`) checked against what is known
 * gone: a preview showing a message that went since is replaced by the newest loaded message
 * (a deleted one's tombstone included), or by nothing.
 */
function checkedSnapshot(state: ChatsState, conversation: ConversationView, now: number): ConversationView {
  const last = conversation.last_message;
  if (last === null) return conversation;
  if (!isGone(state, last, now)) return last.deleted ? { ...conversation, last_message: scrubbed(last) } : conversation;
  // The preview already shows this message's tombstone (it was deleted): keep it.
  const shown = state.conversations.get(conversation.id)?.last_message;
  if (shown && shown.id === last.id && shown.deleted) return { ...conversation, last_message: scrubbed(shown) };
  const loaded = state.messages.get(conversation.id) ?? [];
  let newest: MessageView | null = null;
  for (let i = loaded.length - 1; i >= 0 && newest === null; i--) {
    const candidate = loaded[i];
    if (candidate && !expiredBy(candidate, now) && (candidate.deleted || !state.gone.has(candidate.id))) newest = candidate;
  }
  return { ...conversation, last_message: newest === null ? null : preview(scrubbed(newest)) };
}

/** Contacts with a pending key change in `list`, added to the banners already raised. */
function withPendingKeyChanges(
  keyChanges: ReadonlyMap<number, KeyChange>,
  list: readonly ConversationView[],
): ReadonlyMap<number, KeyChange> {
  let next = keyChanges;
  for (const c of list) {
    if (c.key_change_pending && !next.has(c.contact_id)) {
      next = withEntry(next, c.contact_id, { was_verified: c.verified, key: c.contact_key });
    }
  }
  return next;
}

/**
 * Replaces the conversation list (e.g. at start-up), keeping drafts and loaded messages. A
 * conversation whose contact's key change is still pending raises that contact's banner.
 */
export function loadConversations(
  state: ChatsState,
  list: readonly ConversationView[],
  now = Date.now(),
): ChatsState {
  return {
    ...state,
    conversations: new Map(list.map((c) => [c.id, checkedSnapshot(state, c, now)])),
    keyChanges: withPendingKeyChanges(state.keyChanges, list),
    drafts: withStoredDrafts(state, list),
  };
}

/**
 * Drafts with the stored ones of conversations this state has not seen yet (at start-up, every
 * one). For a conversation already on screen the draft here is the newer one: what was typed
 * since may not be stored yet.
 */
function withStoredDrafts(state: ChatsState, list: readonly ConversationView[]): ReadonlyMap<number, string> {
  let drafts = state.drafts;
  for (const c of list) {
    if (c.draft && !state.conversations.has(c.id) && !drafts.has(c.id)) drafts = withEntry(drafts, c.id, c.draft);
  }
  return drafts;
}

/** Adds or replaces one conversation (e.g. the one `start_chat` answered with). */
export function upsertConversation(state: ChatsState, conversation: ConversationView, now = Date.now()): ChatsState {
  return {
    ...state,
    conversations: withEntry(state.conversations, conversation.id, checkedSnapshot(state, conversation, now)),
    keyChanges: withPendingKeyChanges(state.keyChanges, [conversation]),
    drafts: withStoredDrafts(state, [conversation]),
  };
}

/** Every conversation with `contactId`, changed by `change`. */
function updateContact(
  state: ChatsState,
  contactId: number,
  change: Partial<ConversationView>,
): ReadonlyMap<number, ConversationView> {
  let conversations = state.conversations;
  for (const c of state.conversations.values()) {
    if (c.contact_id === contactId) conversations = withEntry(conversations, c.id, { ...c, ...change });
  }
  return conversations;
}

/** Records that the user verified a contact's safety number (or cleared it). */
export function setVerified(state: ChatsState, contactId: number, verified: boolean): ChatsState {
  return { ...state, conversations: updateContact(state, contactId, { verified }) };
}

/** The user accepted a contact's new key: the banner goes and the chats are no longer held. */
export function acceptKeyChange(state: ChatsState, contactId: number): ChatsState {
  return {
    ...dismissKeyChange(state, contactId),
    conversations: updateContact(state, contactId, { key_change_pending: false }),
  };
}

/** A contact was accepted, blocked or unblocked: every chat with them takes the new standing. */
function onContactStanding(state: ChatsState, contactId: number, standing: ConversationView["standing"]): ChatsState {
  const conversations = updateContact(state, contactId, { standing });
  return conversations === state.conversations ? state : { ...state, conversations };
}

/**
 * A contact was deleted (a declined message request): their chats go with everything loaded for
 * them, and the open chat closes if it was one of them.
 */
function onContactRemoved(state: ChatsState, contactId: number): ChatsState {
  const removed: number[] = [];
  for (const c of state.conversations.values()) if (c.contact_id === contactId) removed.push(c.id);
  const keyChanges = withoutEntry(state.keyChanges, contactId);
  if (removed.length === 0) return keyChanges === state.keyChanges ? state : { ...state, keyChanges };
  const without = <V>(map: ReadonlyMap<number, V>) => removed.reduce((m, id) => withoutEntry(m, id), map);
  return {
    ...state,
    conversations: without(state.conversations),
    messages: without(state.messages),
    drafts: without(state.drafts),
    timerChanges: without(state.timerChanges),
    unreadIds: without(state.unreadIds),
    keyChanges,
    active: state.active !== null && removed.includes(state.active) ? null : state.active,
  };
}

/** Whether `messages` is in display order with no repeats. */
function inOrder(messages: readonly MessageView[]): boolean {
  for (let i = 1; i < messages.length; i++) {
    if (!before(messages[i - 1] as MessageView, messages[i] as MessageView)) return false;
  }
  return true;
}

/** `list` with `additions` merged in by id (an addition replaces the same id), sorted. */
function merged(list: readonly MessageView[], additions: Iterable<MessageView>): MessageView[] {
  const adds = Array.from(additions);
  const first = list[0];
  const last = list[list.length - 1];
  const firstAdd = adds[0];
  const lastAdd = adds[adds.length - 1];
  // The common cases in O(n) without a sort: an older page goes entirely before what is
  // loaded (scrolling back through 100,000 messages), or new messages go entirely after it.
  if (first && last && firstAdd && lastAdd && inOrder(adds)) {
    if (before(lastAdd, first)) return adds.concat(list);
    if (before(last, firstAdd)) return list.concat(adds);
  }
  const byId = new Map(list.map((m) => [m.id, m]));
  for (const message of adds) byId.set(message.id, message);
  return Array.from(byId.values()).sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
}

/**
 * The messages of `page` that belong to `conversationId` and are not known gone: the page may
 * have been fetched before some of them expired or were deleted, and a message whose time is
 * already up is not shown at all.
 */
function usable(state: ChatsState, conversationId: number, page: readonly MessageView[], now: number): MessageView[] {
  const kept: MessageView[] = [];
  for (const message of page) {
    if (message.conversation_id === conversationId && !isGone(state, message, now)) kept.push(scrubbed(message));
  }
  return kept;
}

/**
 * Adds a page of messages for a conversation (older history or a first load). Messages known
 * gone are left out; a deleted message's tombstone already loaded stays.
 */
export function loadMessages(
  state: ChatsState,
  conversationId: number,
  page: readonly MessageView[],
  now = Date.now(),
): ChatsState {
  const list = merged(state.messages.get(conversationId) ?? [], usable(state, conversationId, page, now));
  return { ...state, messages: withEntry(state.messages, conversationId, list) };
}

/** Shows a conversation (or none): its unread count drops to zero. */
export function openConversation(state: ChatsState, conversationId: number | null): ChatsState {
  let next: ChatsState = { ...state, active: conversationId };
  if (conversationId === null) return next;
  const conversation = state.conversations.get(conversationId);
  if (conversation && conversation.unread !== 0) {
    next = {
      ...next,
      conversations: withEntry(state.conversations, conversationId, { ...conversation, unread: 0 }),
    };
  }
  return { ...next, unreadIds: withoutEntry(state.unreadIds, conversationId) };
}

/** Keeps what the user typed in a conversation's composer; empty text removes the draft. */
export function setDraft(state: ChatsState, conversationId: number, text: string): ChatsState {
  const drafts = text === "" ? withoutEntry(state.drafts, conversationId) : withEntry(state.drafts, conversationId, text);
  return drafts === state.drafts ? state : { ...state, drafts };
}

/** Hides the key-change banner for a contact once the user has seen or acted on it. */
export function dismissKeyChange(state: ChatsState, contactId: number): ChatsState {
  const keyChanges = withoutEntry(state.keyChanges, contactId);
  return keyChanges === state.keyChanges ? state : { ...state, keyChanges };
}

function onMessage(state: ChatsState, arrived: MessageView): ChatsState {
  // A late copy of a message that is already gone (a command's reply after its expiry).
  if (state.gone.has(arrived.id)) return state;
  const message = scrubbed(arrived);
  const id = message.conversation_id;
  const list = state.messages.get(id) ?? [];
  const isNew = indexOfId(list, message.id) < 0;
  let next: ChatsState = { ...state, messages: withEntry(state.messages, id, upsert(list, message)) };

  const conversation = state.conversations.get(id);
  if (!conversation) return next; // The shell loads conversations it does not know yet.
  const newest = conversation.last_message === null || message.sent_at >= conversation.last_message.sent_at;
  const countsAsUnread = isNew && message.direction === "incoming" && state.active !== id;
  if (!newest && !countsAsUnread) return next;

  next = {
    ...next,
    conversations: withEntry(state.conversations, id, {
      ...conversation,
      last_message: newest ? preview(message) : conversation.last_message,
      unread: conversation.unread + (countsAsUnread ? 1 : 0),
    }),
  };
  if (countsAsUnread) {
    const unread = new Set(state.unreadIds.get(id) ?? []);
    unread.add(message.id);
    next = { ...next, unreadIds: withEntry(state.unreadIds, id, unread) };
  }
  return next;
}

function onMessageUpdated(state: ChatsState, update: MessageView): ChatsState {
  // Already expired or deleted: nothing about it changes any more (and a delete is counted once).
  if (state.gone.has(update.id)) return state;
  const message = scrubbed(update);
  const id = message.conversation_id;
  const list = state.messages.get(id);
  const loaded = list !== undefined && indexOfId(list, message.id) >= 0;
  let next: ChatsState = state;
  let newestLoaded = false;
  if (loaded) {
    const updated = upsert(list, message);
    newestLoaded = updated[updated.length - 1]?.id === message.id;
    next = { ...next, messages: withEntry(state.messages, id, updated) };
  }
  if (message.deleted) next = { ...next, gone: withGone(state.gone, [message.id]) };

  // A deleted message that was counted unread no longer is.
  let unreadGone = 0;
  if (message.deleted && message.direction === "incoming") {
    const unreadBefore = state.unreadIds.get(id);
    if (unreadBefore?.has(message.id)) {
      const unread = new Set(unreadBefore);
      unread.delete(message.id);
      next = { ...next, unreadIds: withEntry(state.unreadIds, id, unread) };
      unreadGone = 1;
    } else if (message.status === "received" && state.active !== id) {
      // Not read yet, so the core's count (the list's snapshot) includes it.
      unreadGone = 1;
    }
  }

  const conversation = state.conversations.get(id);
  if (!conversation) return next;
  // The preview follows an edit or a delete of the message it shows, loaded or not.
  const showsIt = newestLoaded || conversation.last_message?.id === message.id;
  const unread = Math.max(0, conversation.unread - unreadGone);
  if (!showsIt && unread === conversation.unread) return next;
  return {
    ...next,
    conversations: withEntry(state.conversations, id, {
      ...conversation,
      last_message: showsIt ? preview(message) : conversation.last_message,
      unread,
    }),
  };
}

function onMessagesExpired(state: ChatsState, conversationId: number, ids: readonly number[]): ChatsState {
  const gone = new Set(ids);
  const list = state.messages.get(conversationId) ?? [];
  const removed = list.filter((m) => gone.has(m.id));
  const kept = removed.length === 0 ? list : list.filter((m) => !gone.has(m.id));
  let next: ChatsState = { ...state, gone: withGone(state.gone, ids) };
  if (kept !== list) next = { ...next, messages: withEntry(state.messages, conversationId, kept) };

  const unreadBefore = state.unreadIds.get(conversationId);
  let unreadGone = 0;
  if (unreadBefore) {
    const unread = new Set(unreadBefore);
    for (const id of gone) if (unread.delete(id)) unreadGone++;
    if (unreadGone > 0) next = { ...next, unreadIds: withEntry(state.unreadIds, conversationId, unread) };
  }

  const conversation = state.conversations.get(conversationId);
  if (!conversation) return next;
  // The list preview must not outlive a message that disappeared: the newest loaded message
  // takes its place, or nothing when none is loaded.
  let lastMessage = conversation.last_message;
  if (lastMessage !== null && gone.has(lastMessage.id)) {
    const newest = kept[kept.length - 1];
    lastMessage = newest ? preview(newest) : null;
  }
  if (lastMessage === conversation.last_message && unreadGone === 0) return next;
  return {
    ...next,
    conversations: withEntry(state.conversations, conversationId, {
      ...conversation,
      last_message: lastMessage,
      unread: Math.max(0, conversation.unread - unreadGone),
    }),
  };
}

/** Applies one engine event. Events for unknown conversations or messages change only what they can. */
export function applyEvent(state: ChatsState, event: EngineEvent): ChatsState {
  switch (event.type) {
    case "message":
      return onMessage(state, event.message);
    case "message_updated":
      return onMessageUpdated(state, event.message);
    case "messages_expired":
      return onMessagesExpired(state, event.conversation_id, event.message_ids);
    case "timer_changed": {
      const conversation = state.conversations.get(event.conversation_id);
      const change = { seconds: event.seconds, by_me: event.by_me };
      return {
        ...state,
        conversations: conversation
          ? withEntry(state.conversations, conversation.id, {
              ...conversation,
              disappear_after_secs: event.seconds,
            })
          : state.conversations,
        timerChanges: withEntry(state.timerChanges, event.conversation_id, change),
      };
    }
    case "key_changed":
      // The old verification was of the old key; it no longer says anything.
      return {
        ...state,
        conversations: updateContact(state, event.contact_id, { verified: false, key_change_pending: true }),
        keyChanges: withEntry(state.keyChanges, event.contact_id, { was_verified: event.was_verified, key: event.key }),
      };
    case "connection":
      return state.connection === event.state ? state : { ...state, connection: event.state };
    case "contact_standing":
      return onContactStanding(state, event.contact_id, event.standing);
    case "contact_removed":
      return onContactRemoved(state, event.contact_id);
    default:
      // A newer engine may send events this UI does not know; ignoring them loses nothing.
      return state;
  }
}

/**
 * The conversation list: newest activity first, filtered by `query` on contact names and, for
 * accepted standard chats only, on the last message (secret chats are never searched by content,
 * and a message request's text is not shown in the list, so it does not match either).
 */
export function conversationList(state: ChatsState, query = ""): ConversationView[] {
  const needle = query.trim().toLocaleLowerCase();
  const matches = (c: ConversationView) =>
    needle === "" ||
    c.contact_name.toLocaleLowerCase().includes(needle) ||
    (c.kind === "standard" &&
      c.standing !== "request" &&
      c.last_message !== null &&
      !c.last_message.deleted &&
      c.last_message.body.toLocaleLowerCase().includes(needle));
  return Array.from(state.conversations.values())
    .filter(matches)
    .sort(
      (a, b) =>
        (b.last_message?.sent_at ?? Number.NEGATIVE_INFINITY) -
          (a.last_message?.sent_at ?? Number.NEGATIVE_INFINITY) || a.id - b.id,
    );
}

/** Unread messages across all conversations, for the tray badge. */
export function totalUnread(state: ChatsState): number {
  let total = 0;
  for (const c of state.conversations.values()) total += c.unread;
  return total;
}

/**
 * Replaces what is loaded after the shell dropped events: `conversationId`'s messages become
 * `page` (its newest), other conversations' loaded messages are forgotten and load again when
 * opened, since anything in them may have expired or changed meanwhile.
 *
 * `arrived` names messages that events added or changed while `page` was being fetched: the
 * page may predate them, so their current copies are kept over it. Messages that expired or
 * were deleted meanwhile are in the gone set and stay out.
 */
export function resetMessages(
  state: ChatsState,
  conversationId: number | null,
  page: readonly MessageView[],
  arrived: ReadonlySet<number> = new Set(),
  now = Date.now(),
): ChatsState {
  const rest = forgetMessages(state, conversationId);
  return conversationId === null ? rest : replaceMessages(rest, conversationId, page, arrived, now);
}

/** Forgets every conversation's loaded messages but `except`'s (they load again when opened). */
export function forgetMessages(state: ChatsState, except: number | null): ChatsState {
  const messages = new Map<number, readonly MessageView[]>();
  const kept = except === null ? undefined : state.messages.get(except);
  if (except !== null && kept) messages.set(except, kept);
  return { ...state, messages };
}

/**
 * Replaces one conversation's loaded messages with `page` (fetched after events were dropped),
 * keeping the current copies of the messages in `arrived` (added or changed by events while the
 * page was fetched, which it may predate). Messages known gone stay out.
 */
export function replaceMessages(
  state: ChatsState,
  conversationId: number,
  page: readonly MessageView[],
  arrived: ReadonlySet<number> = new Set(),
  now = Date.now(),
): ChatsState {
  const current = (state.messages.get(conversationId) ?? []).filter(
    (m) => arrived.has(m.id) && !expiredBy(m, now) && (m.deleted || !state.gone.has(m.id)),
  );
  const list = merged(usable(state, conversationId, page, now), current);
  return { ...state, messages: withEntry(state.messages, conversationId, list) };
}
