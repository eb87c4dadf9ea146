import { describe, expect, it } from "vitest";
import type { ConversationView, EngineEvent, MessageView } from "../types";
import {
  acceptKeyChange,
  applyEvent,
  conversationList,
  dismissKeyChange,
  emptyChats,
  loadConversations,
  isGone,
  loadMessages,
  openConversation,
  resetMessages,
  setDraft,
  setVerified,
  totalUnread,
  upsertConversation,
  type ChatsState,
} from "./chats";
import { ChatStore } from "./chats.svelte";

function conversation(id: number, extra: Partial<ConversationView> = {}): ConversationView {
  return {
    id,
    kind: "standard",
    contact_id: id,
    contact_name: `Contact ${id}`,
    verified: false,
    disappear_after_secs: null,
    unread: 0,
    last_message: null,
    key_change_pending: false,
    contact_key: "key",
    standing: "accepted",
    draft: null,
    ...extra,
  };
}

function message(id: number, conversation_id: number, sent_at: number, extra: Partial<MessageView> = {}): MessageView {
  return {
    id,
    conversation_id,
    direction: "incoming",
    status: "received",
    body: `message ${id}`,
    sent_at,
    expires_at: null,
    edited: false,
    deleted: false,
    call: null,
    ...extra,
  };
}

/** Freezes the maps and arrays of a state so any mutation by the reducer throws. */
function frozen(state: ChatsState): ChatsState {
  const freezeMap = <K, V>(map: ReadonlyMap<K, V>) => {
    const m = map as Map<K, V>;
    m.set = () => {
      throw new Error("mutated a map of the previous state");
    };
    m.delete = () => {
      throw new Error("mutated a map of the previous state");
    };
    for (const value of m.values()) if (Array.isArray(value)) Object.freeze(value);
    return m;
  };
  freezeMap(state.conversations);
  freezeMap(state.messages);
  freezeMap(state.drafts);
  freezeMap(state.keyChanges);
  freezeMap(state.timerChanges);
  freezeMap(state.unreadIds);
  (state.gone as Set<number>).add = () => {
    throw new Error("mutated the gone set of the previous state");
  };
  return Object.freeze(state);
}

function apply(state: ChatsState, ...events: EngineEvent[]): ChatsState {
  return events.reduce((s, e) => applyEvent(frozen(s), e), state);
}

const base = () => loadConversations(emptyChats(), [conversation(1), conversation(2, { kind: "secret" })]);

describe("message events", () => {
  it("add the message, bump unread and update the preview", () => {
    const state = apply(base(), { type: "message", message: message(10, 1, 1000) });
    expect(state.messages.get(1)?.map((m) => m.id)).toEqual([10]);
    expect(state.conversations.get(1)?.unread).toBe(1);
    expect(state.conversations.get(1)?.last_message).toEqual(message(10, 1, 1000));
    expect(totalUnread(state)).toBe(1);
  });

  it("do not count outgoing messages, messages in the open chat, or duplicates as unread", () => {
    let state = apply(base(), { type: "message", message: message(10, 1, 1000, { direction: "outgoing", status: "pending" }) });
    expect(state.conversations.get(1)?.unread).toBe(0);
    expect(state.conversations.get(1)?.last_message?.body).toBe("message 10");

    state = openConversation(state, 2);
    state = apply(state, { type: "message", message: message(11, 2, 1100) });
    expect(state.conversations.get(2)?.unread).toBe(0);

    state = apply(state, { type: "message", message: message(12, 1, 1200) }, { type: "message", message: message(12, 1, 1200) });
    expect(state.conversations.get(1)?.unread).toBe(1);
    expect(state.messages.get(1)?.map((m) => m.id)).toEqual([10, 12]);
  });

  it("keep messages sorted by send time, and an older arrival does not take over the preview", () => {
    const state = apply(
      base(),
      { type: "message", message: message(1, 1, 3000) },
      { type: "message", message: message(2, 1, 1000) },
      { type: "message", message: message(3, 1, 2000) },
    );
    expect(state.messages.get(1)?.map((m) => m.id)).toEqual([2, 3, 1]);
    expect(state.conversations.get(1)?.last_message?.id).toBe(1);
    expect(state.conversations.get(1)?.unread).toBe(3);
  });

  it("keep messages for a conversation the UI does not know yet", () => {
    const state = apply(base(), { type: "message", message: message(1, 99, 1000) });
    expect(state.messages.get(99)).toHaveLength(1);
    expect(state.conversations.has(99)).toBe(false);
  });
});

describe("message_updated", () => {
  it("replaces the message and its preview when it is the newest", () => {
    let state = apply(base(), { type: "message", message: message(1, 1, 1000, { direction: "outgoing", status: "pending" }) });
    state = apply(state, { type: "message_updated", message: message(1, 1, 1000, { direction: "outgoing", status: "read" }) });
    expect(state.messages.get(1)?.[0]?.status).toBe("read");
    state = apply(state, { type: "message_updated", message: message(1, 1, 1000, { body: "fixed", edited: true }) });
    expect(state.messages.get(1)).toHaveLength(1);
    expect(state.conversations.get(1)?.last_message?.body).toBe("fixed");
    state = apply(state, { type: "message_updated", message: message(1, 1, 1000, { body: "", deleted: true }) });
    expect(state.messages.get(1)?.[0]?.deleted).toBe(true);
    expect(state.conversations.get(1)?.last_message?.deleted).toBe(true);
  });

  it("ignores messages that are not loaded and not in the preview, and never changes unread", () => {
    const before = apply(base(), { type: "message", message: message(1, 1, 1000) });
    const after = apply(before, { type: "message_updated", message: message(2, 1, 2000, { body: "old edit" }) });
    expect(after).toBe(before);
  });

  it("leaves the preview alone when an older message is edited", () => {
    let state = apply(base(), { type: "message", message: message(1, 1, 1000) }, { type: "message", message: message(2, 1, 2000) });
    state = apply(state, { type: "message_updated", message: message(1, 1, 1000, { body: "edited", edited: true }) });
    expect(state.conversations.get(1)?.last_message?.body).toBe("message 2");
    expect(state.messages.get(1)?.[0]?.body).toBe("edited");
  });
});

describe("messages_expired", () => {
  it("removes the messages, their unread count and a preview that showed one of them", () => {
    let state = apply(
      base(),
      { type: "message", message: message(1, 1, 1000, { direction: "outgoing" }) },
      { type: "message", message: message(2, 1, 2000) },
      { type: "message", message: message(3, 1, 3000) },
    );
    expect(state.conversations.get(1)?.unread).toBe(2);
    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [3] });
    expect(state.messages.get(1)?.map((m) => m.id)).toEqual([1, 2]);
    expect(state.conversations.get(1)?.unread).toBe(1);
    expect(state.conversations.get(1)?.last_message).toEqual(message(2, 1, 2000));

    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [1, 2] });
    expect(state.messages.get(1)).toEqual([]);
    expect(state.conversations.get(1)?.unread).toBe(0);
    expect(state.conversations.get(1)?.last_message).toBeNull();
  });

  it("keeps the preview when only older loaded messages went", () => {
    let state = apply(base(), { type: "message", message: message(1, 1, 1000) }, { type: "message", message: message(2, 1, 2000) });
    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [1] });
    expect(state.conversations.get(1)?.last_message?.body).toBe("message 2");
  });

  it("drops the preview of an unloaded message when it expires, and only then", () => {
    // The list came from the engine with a preview, but the chat was never opened.
    let state = loadConversations(emptyChats(), [
      conversation(1, { kind: "secret", unread: 1, last_message: message(5, 1, 5000, { body: "secret text" }) }),
    ]);
    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [77] });
    expect(state.conversations.get(1)?.last_message?.body).toBe("secret text");
    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [5] });
    expect(state.conversations.get(1)?.last_message).toBeNull();
  });

  it("does not lower an unread count it did not raise", () => {
    let state = loadConversations(emptyChats(), [conversation(1, { unread: 4 })]);
    state = loadMessages(state, 1, [message(1, 1, 1000)]);
    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [1] });
    expect(state.conversations.get(1)?.unread).toBe(4);
  });
});

describe("messages known gone", () => {
  it("a list snapshot fetched before an expiry does not bring its preview back", () => {
    const snapshot = [conversation(1, { unread: 1, last_message: message(5, 1, 5000, { body: "gone soon" }) })];
    let state = loadConversations(emptyChats(), snapshot);
    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [5] });
    expect(state.conversations.get(1)?.last_message).toBeNull();
    // The reload that was already on its way answers with the old preview.
    state = loadConversations(frozen(state), snapshot);
    expect(state.conversations.get(1)?.last_message).toBeNull();
    expect(isGone(state, message(5, 1, 5000))).toBe(true);

    // With messages loaded, the newest one that is left takes its place.
    state = loadMessages(state, 1, [message(3, 1, 3000), message(4, 1, 4000)]);
    state = loadConversations(frozen(state), snapshot);
    expect(state.conversations.get(1)?.last_message?.id).toBe(4);
  });

  it("a page fetched before an expiry or a delete does not bring the messages back", () => {
    let state = apply(base(), { type: "message", message: message(1, 1, 1000) }, { type: "message", message: message(2, 1, 2000) });
    const stalePage = [message(1, 1, 1000), message(2, 1, 2000), message(3, 1, 3000, { body: "secret words" })];
    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [1] });
    state = apply(state, { type: "message_updated", message: message(2, 1, 2000, { body: "", deleted: true }) });
    state = apply(state, { type: "message_updated", message: message(3, 1, 3000, { body: "secret words", deleted: true }) });
    state = loadMessages(frozen(state), 1, stalePage);
    // 1 stays gone, 2 stays a tombstone, 3 (never loaded) does not appear with its text.
    expect(state.messages.get(1)?.map((m) => [m.id, m.deleted, m.body])).toEqual([[2, true, ""]]);
    expect(state.gone.has(3)).toBe(true);
    // A late "message" event for a gone message (a command's reply) is ignored too.
    expect(apply(state, { type: "message", message: message(1, 1, 1000) })).toBe(state);
  });

  it("drops messages whose time is already up when loading", () => {
    const now = 10_000;
    let state = loadMessages(base(), 1, [message(1, 1, 1000, { expires_at: 9_000 }), message(2, 1, 2000, { expires_at: 20_000 })], now);
    expect(state.messages.get(1)?.map((m) => m.id)).toEqual([2]);
    state = loadConversations(state, [conversation(1, { last_message: message(3, 1, 3000, { expires_at: 9_999 }) })], now);
    expect(state.conversations.get(1)?.last_message?.id).toBe(2);
    state = loadConversations(state, [conversation(2, { last_message: message(4, 2, 3000, { expires_at: now }) })], now);
    expect(state.conversations.get(2)?.last_message).toBeNull();
  });

  it("a resync keeps what events brought while its page was fetched, and nothing gone", () => {
    let state = apply(base(), { type: "message", message: message(1, 1, 1000) });
    state = loadMessages(state, 2, [message(9, 2, 900)]);
    // Fetching: 3 arrives, 1 expires; the page still has 1 and not 3.
    state = apply(state, { type: "message", message: message(3, 1, 3000) }, { type: "messages_expired", conversation_id: 1, message_ids: [1] });
    state = resetMessages(frozen(state), 1, [message(1, 1, 1000), message(2, 1, 2000)], new Set([3, 1]));
    expect(state.messages.get(1)?.map((m) => m.id)).toEqual([2, 3]);
    expect(state.messages.has(2)).toBe(false);
  });
});

describe("message_updated for messages not loaded", () => {
  it("edits or clears the preview when it shows that message", () => {
    let state = loadConversations(emptyChats(), [conversation(1, { last_message: message(5, 1, 5000, { body: "typo" }) })]);
    state = apply(state, { type: "message_updated", message: message(5, 1, 5000, { body: "fixed", edited: true }) });
    expect(state.conversations.get(1)?.last_message).toMatchObject({ body: "fixed", edited: true });
    // The core clears a deleted message's text, and the model never keeps it even if sent.
    state = apply(state, { type: "message_updated", message: message(5, 1, 5000, { body: "fixed", deleted: true }) });
    expect(state.conversations.get(1)?.last_message).toMatchObject({ id: 5, body: "", deleted: true });
    expect(conversationList(state, "fixed")).toEqual([]);
    // A list fetched before the delete does not bring its text back.
    state = loadConversations(frozen(state), [conversation(1, { last_message: message(5, 1, 5000, { body: "fixed" }) })]);
    expect(state.conversations.get(1)?.last_message).toMatchObject({ id: 5, body: "", deleted: true });
  });

  it("a deleted incoming message counted unread no longer counts", () => {
    // 7 arrived this session (counted by the UI); 5 was unread in the core's count.
    let state = loadConversations(emptyChats(), [conversation(1, { unread: 1, last_message: message(5, 1, 5000) })]);
    state = apply(state, { type: "message", message: message(7, 1, 7000) });
    expect(state.conversations.get(1)?.unread).toBe(2);
    state = apply(state, { type: "message_updated", message: message(7, 1, 7000, { body: "", deleted: true }) });
    expect(state.conversations.get(1)?.unread).toBe(1);
    expect(state.unreadIds.get(1)?.has(7)).toBe(false);
    expect(state.messages.get(1)?.[0]).toMatchObject({ id: 7, body: "", deleted: true });
    state = apply(state, { type: "message_updated", message: message(5, 1, 5000, { body: "", deleted: true }) });
    expect(state.conversations.get(1)?.unread).toBe(0);
    // The same delete twice (the event and the command's reply) counts once.
    state = apply(state, { type: "message", message: message(8, 1, 8000) });
    state = apply(state, { type: "message_updated", message: message(7, 1, 7000, { body: "", deleted: true }) });
    expect(state.conversations.get(1)?.unread).toBe(1);
    // A read message going does not lower the count.
    state = apply(state, { type: "message_updated", message: message(4, 1, 4000, { status: "read", body: "", deleted: true }) });
    expect(state.conversations.get(1)?.unread).toBe(1);
  });
});

describe("other events", () => {
  it("timer_changed updates the conversation and records who changed it", () => {
    const state = apply(base(), { type: "timer_changed", conversation_id: 2, seconds: 5, by_me: false });
    expect(state.conversations.get(2)?.disappear_after_secs).toBe(5);
    expect(state.timerChanges.get(2)).toEqual({ seconds: 5, by_me: false });
    const off = apply(state, { type: "timer_changed", conversation_id: 2, seconds: null, by_me: true });
    expect(off.conversations.get(2)?.disappear_after_secs).toBeNull();
  });

  it("key_changed raises a banner until dismissed", () => {
    let state = apply(base(), { type: "key_changed", contact_id: 7, contact: "eve", was_verified: true, key: "key7" });
    expect(state.keyChanges.get(7)).toEqual({ was_verified: true, key: "key7" });
    state = dismissKeyChange(state, 7);
    expect(state.keyChanges.size).toBe(0);
  });

  it("key_changed un-verifies the contact's chats and marks them pending until accepted", () => {
    let state = loadConversations(emptyChats(), [
      conversation(1, { contact_id: 7, verified: true }),
      conversation(2, { contact_id: 7, kind: "secret", verified: true }),
      conversation(3, { contact_id: 8, verified: true }),
    ]);
    state = apply(state, { type: "key_changed", contact_id: 7, contact: "eve", was_verified: true, key: "key7" });
    expect([1, 2, 3].map((id) => state.conversations.get(id)?.verified)).toEqual([false, false, true]);
    expect(state.conversations.get(2)?.key_change_pending).toBe(true);
    state = acceptKeyChange(frozen(state), 7);
    expect(state.keyChanges.has(7)).toBe(false);
    expect([1, 2, 3].map((id) => state.conversations.get(id)?.key_change_pending)).toEqual([false, false, false]);
  });

  it("a key change still pending at start-up raises its banner", () => {
    const state = loadConversations(emptyChats(), [
      conversation(1, { contact_id: 7, key_change_pending: true, verified: false }),
      conversation(2, { contact_id: 8 }),
    ]);
    expect(Array.from(state.keyChanges.keys())).toEqual([7]);
    // A banner raised by an event survives a reload of the list.
    const again = loadConversations(apply(state, { type: "key_changed", contact_id: 8, contact: "x", was_verified: false, key: "key8" }), [
      conversation(1, { contact_id: 7, key_change_pending: true }),
      conversation(2, { contact_id: 8 }),
    ]);
    expect(Array.from(again.keyChanges.keys()).sort()).toEqual([7, 8]);
  });

  it("setVerified and upsertConversation change only what they name", () => {
    let state = loadConversations(emptyChats(), [conversation(1, { contact_id: 7 }), conversation(2, { contact_id: 8 })]);
    state = setVerified(frozen(state), 7, true);
    expect(state.conversations.get(1)?.verified).toBe(true);
    expect(state.conversations.get(2)?.verified).toBe(false);
    state = upsertConversation(frozen(state), conversation(3, { contact_name: "New", key_change_pending: true, contact_id: 9 }));
    expect(state.conversations.get(3)?.contact_name).toBe("New");
    expect(state.conversations.size).toBe(3);
    expect(state.keyChanges.has(9)).toBe(true);
  });

  it("contact_standing changes the standing of every chat with that contact and of no other", () => {
    let state = loadConversations(emptyChats(), [
      conversation(1, { contact_id: 7, standing: "request" }),
      conversation(2, { contact_id: 7, kind: "secret", standing: "request" }),
      conversation(3, { contact_id: 8, standing: "request" }),
    ]);
    const standings = (s: ChatsState) => [1, 2, 3].map((id) => s.conversations.get(id)?.standing);
    state = apply(state, { type: "contact_standing", contact_id: 7, standing: "accepted" });
    expect(standings(state)).toEqual(["accepted", "accepted", "request"]);
    state = apply(state, { type: "contact_standing", contact_id: 7, standing: "blocked" });
    expect(standings(state)).toEqual(["blocked", "blocked", "request"]);
    // Nobody has that contact: nothing changes.
    expect(applyEvent(state, { type: "contact_standing", contact_id: 99, standing: "blocked" })).toBe(state);
  });

  it("contact_removed drops the contact's chats with their messages, drafts and unread, and closes the open one", () => {
    let state = loadConversations(emptyChats(), [
      conversation(1, { contact_id: 7, standing: "request" }),
      conversation(2, { contact_id: 7, kind: "secret", standing: "request" }),
      conversation(3, { contact_id: 8 }),
    ]);
    state = apply(state, { type: "message", message: message(11, 1, 100) }, { type: "message", message: message(13, 3, 100) });
    state = apply(state, { type: "key_changed", contact_id: 7, contact: "eve", was_verified: false, key: "key7" });
    state = setDraft(openConversation(state, 2), 1, "not sent");
    state = apply(state, { type: "contact_removed", contact_id: 7, conversation_ids: [] });
    expect(Array.from(state.conversations.keys())).toEqual([3]);
    expect(Array.from(state.messages.keys())).toEqual([3]);
    expect(state.drafts.size).toBe(0);
    expect(state.unreadIds.has(1)).toBe(false);
    expect(state.keyChanges.has(7)).toBe(false);
    expect(state.active).toBeNull();
    expect(totalUnread(state)).toBe(1);
    // Another contact's removal leaves the open chat open.
    state = openConversation(state, 3);
    expect(apply(state, { type: "contact_removed", contact_id: 9, conversation_ids: [] }).active).toBe(3);
  });

  it("connection follows the engine and unknown events change nothing", () => {
    const state = apply(base(), { type: "connection", state: "online" });
    expect(state.connection).toBe("online");
    const unknown = { type: "something_new" } as unknown as EngineEvent;
    expect(applyEvent(state, unknown)).toBe(state);
  });
});

describe("drafts, opening and the list", () => {
  it("keeps a draft per chat and removes empty ones", () => {
    let state = setDraft(base(), 1, "half a thought");
    state = setDraft(state, 2, "another");
    expect(state.drafts.get(1)).toBe("half a thought");
    expect(state.drafts.get(2)).toBe("another");
    state = setDraft(state, 1, "");
    expect(state.drafts.has(1)).toBe(false);
    expect(setDraft(state, 1, "")).toBe(state);
  });

  it("takes stored drafts for chats it has not seen, and keeps the newer one it has", () => {
    let state = loadConversations(emptyChats(), [conversation(1, { draft: "stored before a restart" }), conversation(2)]);
    expect(state.drafts.get(1)).toBe("stored before a restart");
    expect(state.drafts.has(2)).toBe(false);
    // Typed since (not stored yet), then a resync brings the older stored text: the typing wins.
    state = setDraft(state, 1, "typed since");
    state = setDraft(state, 2, "");
    state = loadConversations(state, [conversation(1, { draft: "stored before a restart" }), conversation(2, { draft: "stale" })]);
    expect(state.drafts.get(1)).toBe("typed since");
    expect(state.drafts.has(2)).toBe(false);
    state = upsertConversation(state, conversation(3, { draft: "a new chat's" }));
    expect(state.drafts.get(3)).toBe("a new chat's");
  });

  it("opening a chat clears its unread count", () => {
    let state = apply(base(), { type: "message", message: message(1, 1, 1000) });
    state = openConversation(state, 1);
    expect(state.conversations.get(1)?.unread).toBe(0);
    expect(state.active).toBe(1);
    // The count it cleared is not taken off again when those messages expire.
    state = openConversation(state, null);
    state = apply(state, { type: "message", message: message(2, 1, 2000) });
    state = apply(state, { type: "messages_expired", conversation_id: 1, message_ids: [1, 2] });
    expect(state.conversations.get(1)?.unread).toBe(0);
  });

  it("lists conversations newest first and searches secret chats and message requests by name only", () => {
    let state = loadConversations(emptyChats(), [
      conversation(1, { contact_name: "Ada", last_message: message(11, 1, 100, { body: "lunch?" }) }),
      conversation(2, { contact_name: "Bob", kind: "secret", last_message: message(12, 2, 300, { body: "lunch plans" }) }),
      conversation(3, { contact_name: "Cy", last_message: null }),
      conversation(4, { contact_name: "Dee", last_message: message(14, 4, 200, { body: "hi" }) }),
    ]);
    expect(conversationList(state).map((c) => c.id)).toEqual([2, 4, 1, 3]);
    expect(conversationList(state, "LUNCH").map((c) => c.id)).toEqual([1]);
    expect(conversationList(state, "bob").map((c) => c.id)).toEqual([2]);
    // A message request's text is not shown in the list, so it is not searched either.
    state = upsertConversation(state, conversation(5, { contact_name: "Eve", standing: "request", last_message: message(15, 5, 400, { body: "lunch offer" }) }));
    expect(conversationList(state, "lunch").map((c) => c.id)).toEqual([1]);
    expect(conversationList(state, "eve").map((c) => c.id)).toEqual([5]);
    state = loadMessages(state, 1, [message(5, 1, 50), message(4, 1, 40), message(9, 2, 10)]);
    expect(state.messages.get(1)?.map((m) => m.id)).toEqual([4, 5]);
  });
});

describe("ChatStore", () => {
  it("wraps the pure functions behind one replaceable state", () => {
    const store = new ChatStore();
    store.loadConversations([conversation(1), conversation(2)]);
    const first = store.state;
    store.apply({ type: "message", message: message(1, 1, 1000) });
    store.apply({ type: "message", message: message(2, 2, 2000) });
    expect(store.state).not.toBe(first);
    expect(store.unread).toBe(2);
    expect(store.messages(1).map((m) => m.id)).toEqual([1]);
    expect(store.messages(3)).toEqual([]);
    store.open(1);
    expect(store.unread).toBe(1);
    store.setDraft(2, "draft");
    expect(store.draft(2)).toBe("draft");
    expect(store.draft(1)).toBe("");
    expect(store.conversations().map((c) => c.id)).toEqual([2, 1]);
    store.apply({ type: "key_changed", contact_id: 3, contact: "cy", was_verified: false, key: "key3" });
    store.dismissKeyChange(3);
    expect(store.state.keyChanges.size).toBe(0);
    store.loadMessages(1, [message(0, 1, 10)]);
    expect(store.messages(1).map((m) => m.id)).toEqual([0, 1]);
  });
});

describe("merging pages", () => {
  const ids = (state: ReturnType<typeof emptyChats>) => (state.messages.get(1) ?? []).map((m) => m.id);

  it("puts an older page before, a newer one after, and an overlapping one in order without repeats", () => {
    let state = loadConversations(emptyChats(), [conversation(1)]);
    state = loadMessages(state, 1, [message(10, 1, 10_000), message(11, 1, 11_000)]);
    state = loadMessages(state, 1, [message(3, 1, 3000), message(4, 1, 4000)]);
    expect(ids(state)).toEqual([3, 4, 10, 11]);
    state = loadMessages(state, 1, [message(20, 1, 20_000)]);
    expect(ids(state)).toEqual([3, 4, 10, 11, 20]);
    // Overlapping, out of order, with an updated copy of 10: sorted, each message once.
    state = loadMessages(state, 1, [message(12, 1, 12_000), message(10, 1, 10_000, { body: "new" }), message(5, 1, 5000)]);
    expect(ids(state)).toEqual([3, 4, 5, 10, 11, 12, 20]);
    expect(state.messages.get(1)?.find((m) => m.id === 10)?.body).toBe("new");
  });

  it("keeps the order of equal send times by id across a page boundary", () => {
    let state = loadConversations(emptyChats(), [conversation(1)]);
    state = loadMessages(state, 1, [message(8, 1, 5000), message(9, 1, 5000)]);
    state = loadMessages(state, 1, [message(6, 1, 5000), message(7, 1, 5000)]);
    expect(ids(state)).toEqual([6, 7, 8, 9]);
  });
});
