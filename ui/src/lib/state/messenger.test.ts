import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clearMocks } from "@tauri-apps/api/mocks";
import { FakeCore, ME, conversation, message } from "../../test/fakeCore";
import { DRAFT_SAVE_DELAY_MS, Messenger, PAGE_SIZE } from "./messenger.svelte";

let core: FakeCore;

beforeEach(() => {
  core = new FakeCore().install();
});

afterEach(() => clearMocks());

/** Lets pending command replies and microtasks run. */
async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

async function started(): Promise<Messenger> {
  const messenger = new Messenger(ME);
  await messenger.start();
  return messenger;
}

describe("Messenger", () => {
  it("subscribes once, then loads the conversations", async () => {
    core.conversations = [conversation(1), conversation(2, { kind: "secret" })];
    const messenger = await started();
    await messenger.start();
    expect(core.callsOf("subscribe")).toHaveLength(1);
    expect(core.calls[0]?.cmd).toBe("subscribe");
    expect(messenger.chats.conversations().map((c) => c.id).sort()).toEqual([1, 2]);
  });

  it("reports a failed start and recovers on retry", async () => {
    core.on("conversations", () => {
      throw new Error("core gone");
    });
    const messenger = await started();
    expect(messenger.problem).toBe("core gone");
    core.conversations = [conversation(1)];
    core.on("conversations", () => core.conversations);
    await messenger.start();
    expect(messenger.problem).toBe("");
    expect(core.callsOf("subscribe")).toHaveLength(1);
  });

  it("counts a chat as read only while the window has focus", async () => {
    core.conversations = [conversation(1, { unread: 3 })];
    const messenger = await started();
    messenger.select(1);
    await settle();
    // Selected but the window is in the background: nothing is read, the shell hears "none".
    expect(core.callsOf("mark_read")).toEqual([]);
    expect(core.callsOf("set_active_conversation")).toEqual([{ conversationId: null }]);
    expect(messenger.chats.conversation(1)?.unread).toBe(3);

    messenger.setFocused(true);
    await settle();
    expect(core.callsOf("mark_read")).toEqual([{ conversationId: 1 }]);
    expect(core.lastCallOf("set_active_conversation")).toEqual({ conversationId: 1 });
    expect(messenger.chats.conversation(1)?.unread).toBe(0);

    // An incoming message in the chat on screen is read at once.
    core.emit({ type: "message", message: message(5, 1) });
    await settle();
    expect(core.callsOf("mark_read")).toHaveLength(2);
    expect(messenger.chats.conversation(1)?.unread).toBe(0);

    // In the background it counts as unread, and focus marks it read again.
    messenger.setFocused(false);
    core.emit({ type: "message", message: message(6, 1) });
    await settle();
    expect(messenger.chats.conversation(1)?.unread).toBe(1);
    expect(core.lastCallOf("set_active_conversation")).toEqual({ conversationId: null });
    messenger.setFocused(true);
    await settle();
    expect(messenger.chats.conversation(1)?.unread).toBe(0);
    expect(core.callsOf("mark_read")).toHaveLength(3);
  });

  it("loads the newest page on open and older pages on request until the start", async () => {
    core.conversations = [conversation(1)];
    core.messages = Array.from({ length: 250 }, (_, i) => message(i + 1, 1));
    const messenger = await started();
    messenger.select(1);
    await settle();
    expect(core.callsOf("messages")).toEqual([{ conversationId: 1, before: null, limit: PAGE_SIZE }]);
    expect(messenger.chats.messages(1).map((m) => m.id)[0]).toBe(151);

    await messenger.loadOlder();
    expect(core.callsOf("messages")[1]).toEqual({ conversationId: 1, before: 151, limit: PAGE_SIZE });
    await messenger.loadOlder();
    expect(core.callsOf("messages")[2]).toEqual({ conversationId: 1, before: 51, limit: PAGE_SIZE });
    expect(messenger.chats.messages(1)).toHaveLength(250);
    expect(messenger.complete.has(1)).toBe(true);
    // The whole history is loaded: scrolling up again asks nothing.
    await messenger.loadOlder();
    expect(core.callsOf("messages")).toHaveLength(3);
  });

  it("reloads the list for an unknown conversation and on conversation_started", async () => {
    const messenger = await started();
    core.conversations = [conversation(9, { kind: "secret" })];
    core.emit({ type: "conversation_started", conversation_id: 9, kind: "secret" });
    await settle();
    expect(messenger.chats.conversation(9)?.kind).toBe("secret");

    core.conversations.push(conversation(10));
    core.emit({ type: "message", message: message(1, 10) });
    await settle();
    expect(messenger.chats.conversation(10)).toBeDefined();
    expect(core.callsOf("conversations")).toHaveLength(3);
  });

  it("on resync reloads the list and replaces the open chat's messages with its newest page", async () => {
    core.conversations = [conversation(1), conversation(2)];
    core.messages = [message(1, 1), message(2, 1), message(3, 2)];
    const messenger = await started();
    messenger.select(2);
    await settle();
    messenger.select(1);
    await settle();
    expect(messenger.chats.messages(1).map((m) => m.id)).toEqual([1, 2]);

    // While events were lost, message 1 expired and 4 arrived.
    core.messages = [message(2, 1), message(4, 1), message(3, 2)];
    core.emit({ type: "resync" });
    await settle();
    expect(messenger.chats.messages(1).map((m) => m.id)).toEqual([2, 4]);
    // Chat 2 loads again when it is opened next.
    expect(messenger.chats.messages(2)).toEqual([]);
    messenger.select(2);
    await settle();
    expect(messenger.chats.messages(2).map((m) => m.id)).toEqual([3]);
  });

  it("does not let a list or a page fetched before an expiry bring the messages back", async () => {
    core.conversations = [conversation(1)];
    core.messages = [message(1, 1), message(2, 1, { body: "expires" })];
    const messenger = await started();
    expect(messenger.chats.conversation(1)?.last_message?.id).toBe(2);

    // The page and the list are read by the core, then message 2 expires before they arrive.
    let answerPage: () => void = () => {};
    core.on("messages", (args) => {
      const page = core.messages.filter((m) => m.conversation_id === args.conversationId);
      return new Promise((resolve) => (answerPage = () => resolve(page)));
    });
    let answerList: () => void = () => {};
    core.on("conversations", () => {
      const list = core.conversations.map((c) => ({ ...c, last_message: message(2, 1, { body: "expires" }) }));
      return new Promise((resolve) => (answerList = () => resolve(list)));
    });
    messenger.select(1);
    const reload = messenger.reloadConversations();
    await settle();
    core.messages = [message(1, 1)];
    core.emit({ type: "messages_expired", conversation_id: 1, message_ids: [2] });
    answerList();
    await reload;
    expect(messenger.chats.conversation(1)?.last_message).toBeNull();
    answerPage();
    await settle();
    expect(messenger.chats.messages(1).map((m) => m.id)).toEqual([1]);
    // The list again, now with the loaded message to show in the preview.
    answerList = () => {};
    core.on("conversations", () => core.conversations.map((c) => ({ ...c, last_message: message(2, 1) })));
    await messenger.reloadConversations();
    expect(messenger.chats.conversation(1)?.last_message?.id).toBe(1);
  });

  it("on resync keeps the events that arrive while the open chat's page is fetched", async () => {
    core.conversations = [conversation(1)];
    core.messages = [message(1, 1), message(2, 1)];
    const messenger = await started();
    messenger.select(1);
    await settle();

    let answerPage: () => void = () => {};
    core.on("messages", () => {
      const page = [message(1, 1), message(2, 1)];
      return new Promise((resolve) => (answerPage = () => resolve(page)));
    });
    core.emit({ type: "resync" });
    await settle();
    expect(core.callsOf("messages")).toHaveLength(2);
    // While the page is on its way: 3 arrives, 1 expires and 2 is edited.
    core.emit({ type: "message", message: message(3, 1) });
    core.emit({ type: "messages_expired", conversation_id: 1, message_ids: [1] });
    core.emit({ type: "message_updated", message: message(2, 1, { body: "edited", edited: true }) });
    answerPage();
    await settle();
    expect(messenger.chats.messages(1).map((m) => [m.id, m.body])).toEqual([
      [2, "edited"],
      [3, "message 3"],
    ]);
  });

  it("sends, edits, deletes and sets timers through the core and shows the result", async () => {
    core.conversations = [conversation(1)];
    const messenger = await started();
    messenger.select(1);
    await settle();
    await messenger.send(1, "hello");
    const sent = messenger.chats.messages(1)[0];
    expect(core.callsOf("send_message")).toEqual([{ conversationId: 1, body: "hello" }]);
    expect(sent?.status).toBe("pending");

    await messenger.edit(sent?.id ?? 0, "hello!");
    expect(messenger.chats.messages(1)[0]).toMatchObject({ body: "hello!", edited: true });

    await messenger.remove(messenger.chats.messages(1)[0] as NonNullable<typeof sent>);
    expect(core.callsOf("delete_message")).toEqual([{ messageId: sent?.id }]);
    expect(messenger.chats.messages(1)[0]?.deleted).toBe(true);

    await messenger.setTimer(1, 30);
    expect(core.callsOf("set_timer")).toEqual([{ conversationId: 1, seconds: 30 }]);
    expect(messenger.chats.conversation(1)?.disappear_after_secs).toBe(30);
    expect(messenger.chats.state.timerChanges.get(1)).toEqual({ seconds: 30, by_me: true });
  });

  it("keeps the engine's newer copy of a sent message over the command's reply", async () => {
    core.conversations = [conversation(1)];
    const messenger = await started();
    messenger.select(1);
    await settle();
    core.on("send_message", (args) => {
      const pending = message(77, 1, { direction: "outgoing", status: "pending", body: String(args.body) });
      // The event stream reports it already delivered before the command answers.
      core.emit({ type: "message", message: { ...pending, status: "delivered" } });
      return pending;
    });
    await messenger.send(1, "fast relay");
    expect(messenger.chats.messages(1).map((m) => m.status)).toEqual(["delivered"]);
  });

  it("leaves the model alone when the core refuses", async () => {
    core.conversations = [conversation(1)];
    core.on("send_message", () => {
      throw { kind: "invalid", message: "Too long." };
    });
    const messenger = await started();
    await expect(messenger.send(1, "x")).rejects.toEqual({ kind: "invalid", message: "Too long." });
    expect(messenger.chats.messages(1)).toEqual([]);
  });

  it("stores a standard chat's draft once typing pauses, and never a secret chat's", async () => {
    core.conversations = [conversation(1, { draft: "from last time" }), conversation(2, { kind: "secret" })];
    const messenger = await started();
    expect(messenger.chats.draft(1)).toBe("from last time");
    vi.useFakeTimers();
    try {
      for (const text of ["h", "he", "hel", "hello"]) messenger.setDraft(1, text);
      messenger.setDraft(2, "secret words");
      await vi.advanceTimersByTimeAsync(DRAFT_SAVE_DELAY_MS - 1);
      expect(core.callsOf("save_draft")).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      // One write for the pause, with the last text; nothing for the secret chat.
      expect(core.callsOf("save_draft")).toEqual([{ conversationId: 1, text: "hello" }]);
      expect(messenger.chats.draft(2)).toBe("secret words");
      // Clearing (as sending does) is stored at once.
      messenger.setDraft(1, "");
      await vi.advanceTimersByTimeAsync(0);
      expect(core.callsOf("save_draft")).toEqual([
        { conversationId: 1, text: "hello" },
        { conversationId: 1, text: "" },
      ]);
      expect(core.conversations[0]?.draft).toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });

  it("says so when a draft cannot be stored, and keeps it on screen", async () => {
    core.conversations = [conversation(1)];
    core.on("save_draft", () => {
      throw { kind: "store", message: "The disk is full." };
    });
    const messenger = await started();
    vi.useFakeTimers();
    try {
      messenger.setDraft(1, "keep me");
      await vi.advanceTimersByTimeAsync(DRAFT_SAVE_DELAY_MS);
      // The refusal's announcement goes up on the next turn.
      await vi.advanceTimersByTimeAsync(1);
      expect(core.callsOf("save_draft")).toEqual([{ conversationId: 1, text: "keep me" }]);
      expect(messenger.status).toBe("The draft could not be kept: The disk is full.");
      expect(messenger.chats.draft(1)).toBe("keep me");
    } finally {
      vi.useRealTimers();
    }
  });
});
