import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, within } from "@testing-library/svelte";
import { clearMocks } from "@tauri-apps/api/mocks";
import { FakeCore, ME, conversation, message, safetyReport } from "../test/fakeCore";
import { withViewportHeight } from "../test/layout";
import Main from "./Main.svelte";

withViewportHeight();

let core: FakeCore;
let focused = true;

beforeEach(() => {
  core = new FakeCore().install();
  focused = true;
  vi.spyOn(document, "hasFocus").mockImplementation(() => focused);
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
});

const byId = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const item = (id: number) => document.querySelector<HTMLButtonElement>(`[data-conversation-id="${id}"]`);
const listOrder = () =>
  Array.from(document.querySelectorAll<HTMLElement>("[data-conversation-id]"), (el) => Number(el.dataset.conversationId));
const row = (id: number) => document.querySelector<HTMLElement>(`[data-message-id="${id}"]`);

async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

async function renderMain() {
  render(Main, { props: { me: ME } });
  await vi.waitFor(() => expect(core.callsOf("conversations")).toHaveLength(1));
  await settle();
}

async function open(id: number) {
  await fireEvent.click(item(id) as HTMLButtonElement);
  await settle();
}

function seed() {
  core.conversations = [
    conversation(1, { contact_name: "ada", unread: 2, verified: true }),
    conversation(2, { contact_name: "bob", kind: "secret", disappear_after_secs: 60, unread: 0 }),
    conversation(3, { contact_name: "cy" }),
  ];
  core.messages = [
    message(1, 1, { body: "lunch at noon?" }),
    message(2, 1, { body: "or later" }),
    message(3, 2, { body: "the secret plan", expires_at: Date.now() + 60_000 }),
  ];
}

describe("conversation list", () => {
  it("sorts by last activity and marks unread, secret and verified chats", async () => {
    seed();
    await renderMain();
    expect(byId("me-handle").textContent).toBe("me.test");
    expect(listOrder()).toEqual([2, 1, 3]);

    const ada = item(1) as HTMLElement;
    expect(ada.dataset.kind).toBe("standard");
    expect(ada.querySelector(".unread")?.getAttribute("aria-label")).toBe("2 unread");
    expect(ada.querySelector(".unread")?.textContent).toBe("2");
    expect(ada.querySelector(".preview")?.textContent).toBe("or later");
    expect(ada.textContent).toContain("verified");

    const bob = item(2) as HTMLElement;
    expect(bob.dataset.kind).toBe("secret");
    expect(bob.textContent).toContain("Secret");
    expect(bob.querySelector(".unread")).toBeNull();
    expect(bob.querySelector(".preview")?.textContent).toBe("the secret plan");

    expect(item(3)?.querySelector(".preview")?.textContent).toBe("No messages yet");
    // A new message moves its chat to the top and counts as unread.
    core.emit({ type: "message", message: message(9, 3, { body: "hey" }) });
    await settle();
    expect(listOrder()).toEqual([3, 2, 1]);
    expect(item(3)?.querySelector(".unread")?.getAttribute("aria-label")).toBe("1 unread");
  });

  it("drops search results that expired or were deleted", async () => {
    core.conversations = [conversation(1, { contact_name: "ada" }), conversation(2, { contact_name: "bob" })];
    core.messages = [
      message(1, 1, { body: "pizza tonight" }),
      message(2, 1, { body: "pizza again" }),
      message(3, 2, { body: "pizza later", expires_at: Date.now() + 60_000 }),
    ];
    await renderMain();
    await fireEvent.input(byId<HTMLInputElement>("conversation-search"), { target: { value: "pizza" } });
    const results = await screen.findByRole("region", { name: "Messages" });
    const found = () => Array.from(results.querySelectorAll<HTMLElement>("[data-message-id]"), (el) => Number(el.dataset.messageId));
    await vi.waitFor(() => expect(found().sort()).toEqual([1, 2, 3]));

    core.emit({ type: "messages_expired", conversation_id: 2, message_ids: [3] });
    core.emit({ type: "message_updated", message: message(1, 1, { body: "", deleted: true }) });
    await settle();
    expect(found()).toEqual([2]);
    expect(results.textContent).toContain("1 message found.");
  });

  it("puts the sum of the unread counts in the list into the window title", async () => {
    seed();
    core.conversations.push(conversation(4, { contact_name: "dee", unread: 3, last_message: message(40, 4) }));
    focused = false;
    await renderMain();
    const badges = () =>
      Array.from(document.querySelectorAll(".unread"), (el) => Number(el.getAttribute("aria-label")?.split(" ")[0])).reduce(
        (a, b) => a + b,
        0,
      );
    expect(badges()).toBe(5);
    expect(document.title).toBe("(5) Latch");
    core.emit({ type: "message", message: message(9, 3) });
    await settle();
    expect(document.title).toBe("(6) Latch");
    // The contact deletes a message still unread: it no longer counts, in the list or the title.
    core.emit({ type: "message_updated", message: message(9, 3, { body: "", deleted: true }) });
    await settle();
    expect(badges()).toBe(5);
    expect(document.title).toBe("(5) Latch");
    focused = true;
    await fireEvent.focus(window);
    await open(1);
    expect(badges()).toBe(3);
    expect(document.title).toBe("(3) Latch");
  });

  it("moves between chats with the arrow keys", async () => {
    seed();
    await renderMain();
    (item(2) as HTMLElement).focus();
    await fireEvent.keyDown(item(2) as HTMLElement, { key: "ArrowDown" });
    expect(document.activeElement).toBe(item(1));
    await fireEvent.keyDown(item(1) as HTMLElement, { key: "End" });
    expect(document.activeElement).toBe(item(3));
  });

  it("filters by name and, from two characters, lists messages found in standard chats", async () => {
    seed();
    await renderMain();
    const search = byId<HTMLInputElement>("conversation-search");
    await fireEvent.input(search, { target: { value: "b" } });
    expect(listOrder()).toEqual([2]);
    expect(core.callsOf("search")).toEqual([]);

    await fireEvent.input(search, { target: { value: "pla" } });
    await vi.waitFor(() => expect(core.callsOf("search")).toEqual([{ query: "pla" }]));
    const results = await screen.findByRole("region", { name: "Messages" });
    expect(results.textContent).toContain("Secret chats are never indexed");
    // "the secret plan" is in a secret chat: the core never returns it.
    await vi.waitFor(() => expect(results.textContent).toContain("No messages found."));

    await fireEvent.input(search, { target: { value: "noon" } });
    await vi.waitFor(() => expect(within(results).queryByText(/lunch at noon/)).toBeTruthy());
    await fireEvent.click(within(results).getByRole("button", { name: /lunch at noon/ }));
    await settle();
    expect(byId("chat-title").textContent).toBe("ada");

    await fireEvent.keyDown(search, { key: "Escape" });
    expect(search.value).toBe("");
    expect(listOrder()).toEqual([2, 1, 3]);
  });
});

describe("opening a chat", () => {
  it("loads its newest messages, marks it read and tells the shell it is on screen", async () => {
    seed();
    await renderMain();
    await open(1);
    expect(core.callsOf("messages")).toEqual([{ conversationId: 1, before: null, limit: 100 }]);
    expect(core.callsOf("mark_read")).toEqual([{ conversationId: 1 }]);
    expect(core.lastCallOf("set_active_conversation")).toEqual({ conversationId: 1 });
    expect(item(1)?.querySelector(".unread")).toBeNull();
    expect(item(1)?.getAttribute("aria-current")).toBe("true");
    expect(row(2)?.querySelector(".message-body")?.textContent).toBe("or later");
    expect(row(2)?.dataset.direction).toBe("incoming");
    expect(row(2)?.dataset.status).toBe("received");

    // Leaving the window: the shell hears "none", new messages count as unread.
    focused = false;
    window.dispatchEvent(new Event("blur"));
    await settle();
    expect(core.lastCallOf("set_active_conversation")).toEqual({ conversationId: null });
    core.emit({ type: "message", message: message(5, 1, { body: "are you there?" }) });
    await settle();
    expect(item(1)?.querySelector(".unread")?.getAttribute("aria-label")).toBe("1 unread");
    expect(core.callsOf("mark_read")).toHaveLength(1);

    focused = true;
    window.dispatchEvent(new Event("focus"));
    await settle();
    expect(item(1)?.querySelector(".unread")).toBeNull();
    expect(core.callsOf("mark_read")).toHaveLength(2);
    expect(core.lastCallOf("set_active_conversation")).toEqual({ conversationId: 1 });
  });

  it("shows a secret chat with its lock, band and note, and a verified standard chat with its badge", async () => {
    seed();
    await renderMain();
    await open(2);
    const header = byId("chat-header");
    expect(header.dataset.kind).toBe("secret");
    expect(header.textContent).toContain("Secret chat");
    expect(header.textContent).toContain("never in search");
    expect(byId("verified-badge")).toBeNull();
    expect(byId("timer-button").textContent?.trim()).toBe("1 min");

    await open(1);
    expect(byId("chat-header").dataset.kind).toBe("standard");
    expect(byId("chat-title").textContent).toBe("ada");
    expect(byId("verified-badge").textContent).toContain("Verified");
    expect(byId("timer-button").textContent?.trim()).toBe("Off");
  });

  it("opens a link only through the confirmation and the open_link command", async () => {
    core.conversations = [conversation(1)];
    core.messages = [message(1, 1, { body: "see https://example.org/a?b=1 now" })];
    await renderMain();
    await open(1);
    await fireEvent.click(screen.getByRole("link", { name: "https://example.org/a?b=1" }));
    expect(core.callsOf("open_link")).toEqual([]);
    await fireEvent.click(screen.getByRole("button", { name: "Open in browser" }));
    await settle();
    expect(core.callsOf("open_link")).toEqual([{ url: "https://example.org/a?b=1" }]);
  });
});

describe("history", () => {
  it("loads the page before the oldest message when the reader scrolls to the top", async () => {
    core.conversations = [conversation(1, { contact_name: "ada" })];
    core.messages = Array.from({ length: 150 }, (_, i) => message(i + 1, 1));
    await renderMain();
    await open(1);
    // Opening shows the newest page at the end, and asks for nothing older by itself.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(core.callsOf("messages")).toEqual([{ conversationId: 1, before: null, limit: 100 }]);
    const viewport = document.querySelector(".timeline .virtual-list") as HTMLElement;
    expect(viewport.scrollTop).toBeGreaterThan(0);

    viewport.scrollTop = 0;
    await fireEvent.scroll(viewport);
    await settle();
    expect(core.callsOf("messages")[1]).toEqual({ conversationId: 1, before: 51, limit: 100 });
    await vi.waitFor(() => expect(viewport.querySelector('[data-message-id="1"], [data-message-id="50"]')).toBeTruthy());
  });
});

describe("composer", () => {
  it("sends with Enter, keeps Shift+Enter as a new line and keeps a draft per chat", async () => {
    seed();
    await renderMain();
    await open(1);
    const composer = () => byId<HTMLTextAreaElement>("composer");
    await fireEvent.input(composer(), { target: { value: "half a thought" } });
    await open(3);
    expect(composer().value).toBe("");
    await fireEvent.input(composer(), { target: { value: "for cy" } });
    await open(1);
    expect(composer().value).toBe("half a thought");

    await fireEvent.keyDown(composer(), { key: "Enter", shiftKey: true });
    expect(core.callsOf("send_message")).toEqual([]);
    await fireEvent.keyDown(composer(), { key: "Enter" });
    await settle();
    expect(core.callsOf("send_message")).toEqual([{ conversationId: 1, body: "half a thought" }]);
    expect(composer().value).toBe("");
    const sent = document.querySelector<HTMLElement>("[data-direction=outgoing]");
    expect(sent?.dataset.status).toBe("pending");
    expect(sent?.querySelector(".message-body")?.textContent).toBe("half a thought");
    expect(item(1)?.querySelector(".preview")?.textContent).toBe("You: half a thought");

    await open(3);
    expect(composer().value).toBe("for cy");
  });
});

describe("disappearing messages", () => {
  it("shows a countdown and removes the message when the engine reports it expired", async () => {
    seed();
    await renderMain();
    await open(2);
    expect(row(3)?.querySelector(".countdown")?.textContent).toMatch(/\d+s/);
    core.emit({ type: "messages_expired", conversation_id: 2, message_ids: [3] });
    await settle();
    expect(row(3)).toBeNull();
    expect(document.body.textContent).not.toContain("the secret plan");
    expect(item(2)?.querySelector(".preview")?.textContent).toBe("Secret chat started");
  });

  it("sets the timer from the header; secret chats offer no Off; changes are noted", async () => {
    seed();
    await renderMain();
    await open(1);
    await fireEvent.click(byId("timer-button"));
    const popover = byId("timer-popover");
    expect(within(popover).getByRole("radio", { name: "Off" })).toBeTruthy();
    await vi.waitFor(() => expect(document.activeElement).toBe(within(popover).getByRole("radio", { name: "Off" })));
    await fireEvent.click(popover.querySelector('input[value="5"]') as HTMLInputElement);
    await fireEvent.click(byId("timer-apply"));
    await settle();
    expect(core.callsOf("set_timer")).toEqual([{ conversationId: 1, seconds: 5 }]);
    expect(byId("timer-popover")).toBeNull();
    expect(document.activeElement).toBe(byId("timer-button"));
    expect(byId("timer-button").textContent?.trim()).toBe("5 s");
    expect(byId("timer-notice").textContent?.trim()).toBe("You set disappearing messages to 5 seconds");

    core.emit({ type: "timer_changed", conversation_id: 1, seconds: 60, by_me: false });
    await settle();
    expect(byId("timer-notice").textContent?.trim()).toBe("ada set disappearing messages to 1 minute");

    await open(2);
    await fireEvent.click(byId("timer-button"));
    expect(within(byId("timer-popover")).queryByRole("radio", { name: "Off" })).toBeNull();
    await fireEvent.keyDown(byId("timer-popover"), { key: "Escape" });
    expect(byId("timer-popover")).toBeNull();
  });
});

describe("key changes", () => {
  it("raise a banner on key_changed; accepting calls accept_key_change and hides it", async () => {
    seed();
    await renderMain();
    await open(1);
    expect(byId("key-change-banner")).toBeNull();
    core.emit({ type: "key_changed", contact_id: 1, contact: "ada", was_verified: true, key: "key1" });
    await settle();
    const banner = byId("key-change-banner");
    expect(banner.textContent?.replace(/\s+/g, " ")).toContain(
      "ada's safety number changed. This can mean they reinstalled Latch or changed devices — or that someone is intercepting. Messages in secret chats are held until you accept.",
    );
    expect(byId("verified-badge")).toBeNull();

    await fireEvent.click(byId("accept-key-change"));
    await settle();
    expect(core.callsOf("accept_key_change")).toEqual([{ contactId: 1, key: "key1" }]);
    expect(byId("key-change-banner")).toBeNull();
  });

  it("accept the key the banner announced, and say so when it changed again since", async () => {
    seed();
    await renderMain();
    await open(1);
    core.emit({ type: "key_changed", contact_id: 1, contact: "ada", was_verified: false, key: "key1" });
    await settle();
    // The contact's key moves on before the user clicks; the banner still names the one shown.
    core.conversations = core.conversations.map((c) => (c.contact_id === 1 ? { ...c, contact_key: "newer" } : c));
    await fireEvent.click(byId("accept-key-change"));
    await settle();
    expect(core.callsOf("accept_key_change")).toEqual([{ contactId: 1, key: "key1" }]);
    expect(byId("key-change-banner").textContent).toContain("changed again since it was shown");
    // The newer key's own event replaces the banner's key; accepting it then works.
    core.emit({ type: "key_changed", contact_id: 1, contact: "ada", was_verified: false, key: "newer" });
    await settle();
    await fireEvent.click(byId("accept-key-change"));
    await settle();
    expect(core.callsOf("accept_key_change")[1]).toEqual({ contactId: 1, key: "newer" });
    expect(byId("key-change-banner")).toBeNull();
  });

  it("show the banner for a key change still pending at start, and verify opens the safety number", async () => {
    core.conversations = [conversation(1, { contact_name: "ada", key_change_pending: true })];
    await renderMain();
    await open(1);
    expect(byId("key-change-banner")).toBeTruthy();
    byId("verify-again").focus();
    await fireEvent.click(byId("verify-again"));
    await settle();
    expect(byId("safety-dialog")).toBeTruthy();
    expect(core.callsOf("safety_number")).toEqual([{ contactId: 1 }]);
    await fireEvent.click(byId("safety-close"));
    expect(byId("safety-dialog")).toBeNull();
    expect(document.activeElement).toBe(byId("verify-again"));
  });
});

describe("the safety number", () => {
  it("marks verified with the digits shown, keeps the key change pending, and reloads on key_changed", async () => {
    core.conversations = [conversation(1, { contact_name: "ada", key_change_pending: true })];
    await renderMain();
    await open(1);
    await fireEvent.click(byId("verify-again"));
    await vi.waitFor(() => expect(byId("safety-digits")).toBeTruthy());
    await fireEvent.click(byId("mark-verified"));
    await vi.waitFor(() => expect(byId("clear-verification")).toBeTruthy());
    expect(core.callsOf("mark_verified")).toEqual([
      { contactId: 1, verified: true, digits: "123456789012345678901234567890123456789012345678901234567890" },
    ]);
    // Verifying does not accept the new key: the banner stays.
    expect(byId("key-change-banner")).toBeTruthy();
    expect(byId("verified-badge")).toBeTruthy();

    // The key changes again while the dialog is open.
    const digits = "5".repeat(60);
    core.safety.set(1, safetyReport(1, { contact_name: "ada", digits, key_change_pending: true }));
    core.emit({ type: "key_changed", contact_id: 1, contact: "ada", was_verified: true, key: "key1" });
    await vi.waitFor(() => expect(byId("safety-digits").textContent?.replace(/\D/g, "")).toBe(digits));
    expect(byId("verify-result").textContent).toContain("The safety number changed while this was open");
    expect(byId("mark-verified")).toBeTruthy();
    expect(byId("verified-badge")).toBeNull();
  });
});

describe("message actions", () => {
  async function openMenu(id: number) {
    await fireEvent.click(row(id)?.querySelector(".more") as HTMLButtonElement);
    return Array.from(row(id)?.querySelectorAll<HTMLElement>("[role=menuitem]") ?? [], (el) => el.textContent?.trim());
  }

  function menuItem(id: number, name: string) {
    return within(row(id) as HTMLElement).getByRole("menuitem", { name });
  }

  beforeEach(() => {
    core.conversations = [conversation(1, { contact_name: "ada" })];
    core.messages = [
      message(1, 1, { body: "hi from ada" }),
      message(2, 1, { body: "my first try", direction: "outgoing", status: "read" }),
    ];
  });

  it("offer Copy on everything, and Edit and Delete on my own messages, by keyboard too", async () => {
    await renderMain();
    await open(1);
    expect(await openMenu(1)).toEqual(["Copy"]);
    expect(document.activeElement).toBe(menuItem(1, "Copy"));
    await fireEvent.keyDown(document.activeElement as HTMLElement, { key: "Escape" });
    await settle();
    expect(row(1)?.querySelector("[role=menu]")).toBeNull();
    expect(document.activeElement).toBe(row(1)?.querySelector(".more"));

    expect(await openMenu(2)).toEqual(["Copy", "Edit", "Delete for everyone"]);
    await fireEvent.keyDown(document.activeElement as HTMLElement, { key: "ArrowDown" });
    expect(document.activeElement).toBe(menuItem(2, "Edit"));
    await fireEvent.keyDown(document.activeElement as HTMLElement, { key: "End" });
    expect(document.activeElement).toBe(menuItem(2, "Delete for everyone"));

    // The context menu opens the same menu.
    await fireEvent.keyDown(document.activeElement as HTMLElement, { key: "Escape" });
    await fireEvent.contextMenu(row(1) as HTMLElement);
    expect(within(row(1) as HTMLElement).getByRole("menu")).toBeTruthy();
  });

  it("copy puts the text on the clipboard", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, "clipboard", { configurable: true, value: { writeText } });
    await renderMain();
    await open(1);
    await openMenu(1);
    await fireEvent.click(menuItem(1, "Copy"));
    await settle();
    expect(writeText).toHaveBeenCalledWith("hi from ada");
    expect(screen.getAllByRole("status").some((s) => s.textContent === "Message copied.")).toBe(true);
    delete (navigator as { clipboard?: unknown }).clipboard;
  });

  it("edit: the composer holds the message, Enter saves, Escape cancels and the draft waits", async () => {
    await renderMain();
    await open(1);
    const composer = () => byId<HTMLTextAreaElement>("composer");
    await fireEvent.input(composer(), { target: { value: "my draft" } });

    await openMenu(2);
    await fireEvent.click(menuItem(2, "Edit"));
    await settle();
    expect(composer().value).toBe("my first try");
    expect(document.activeElement).toBe(composer());
    await fireEvent.keyDown(composer(), { key: "Escape" });
    expect(composer().value).toBe("my draft");
    expect(core.callsOf("edit_message")).toEqual([]);

    await openMenu(2);
    await fireEvent.click(menuItem(2, "Edit"));
    await settle();
    await fireEvent.input(composer(), { target: { value: "my second try" } });
    await fireEvent.keyDown(composer(), { key: "Enter" });
    await settle();
    expect(core.callsOf("edit_message")).toEqual([{ messageId: 2, body: "my second try" }]);
    expect(row(2)?.querySelector(".message-body")?.textContent).toBe("my second try");
    expect(row(2)?.textContent).toContain("edited");
    expect(composer().value).toBe("my draft");
    expect(core.callsOf("send_message")).toEqual([]);
  });

  it("delete for everyone asks first, then deletes", async () => {
    await renderMain();
    await open(1);
    await openMenu(2);
    await fireEvent.click(menuItem(2, "Delete for everyone"));
    await settle();
    const dialog = screen.getByRole("dialog", { name: "Delete this message for everyone?" });
    expect(document.activeElement?.textContent?.trim()).toBe("Cancel");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(core.callsOf("delete_message")).toEqual([]);
    expect(row(2)?.dataset.deleted).toBeUndefined();

    await openMenu(2);
    await fireEvent.click(menuItem(2, "Delete for everyone"));
    await settle();
    await fireEvent.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Delete for everyone" }));
    await settle();
    expect(core.callsOf("delete_message")).toEqual([{ messageId: 2 }]);
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(row(2)?.dataset.deleted).toBe("true");
    expect(row(2)?.querySelector(".message-body")?.textContent?.trim()).toBe("This message was deleted.");
    expect(row(2)?.querySelector(".more")).toBeNull();
  });
});

describe("new chat", () => {
  it("starts a secret chat with the lock toggle and shows it, focusing the composer", async () => {
    await renderMain();
    await fireEvent.click(byId("new-chat"));
    expect(screen.getByRole("dialog", { name: "New chat" })).toBeTruthy();
    await fireEvent.input(byId("new-chat-handle"), { target: { value: "bob" } });
    await fireEvent.click(byId("lock-toggle"));
    await fireEvent.change(byId("new-chat-timer"), { target: { value: "5" } });
    await fireEvent.click(byId("start-chat"));
    await settle();
    expect(core.callsOf("start_chat")).toEqual([{ handle: "bob", secret: true, timerSecs: 5 }]);
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(byId("chat-header").dataset.kind).toBe("secret");
    expect(byId("timer-button").textContent?.trim()).toBe("5 s");
    expect(document.querySelector('[data-kind="secret"][data-conversation-id]')).toBeTruthy();
    expect(document.activeElement).toBe(byId("composer"));
  });
});

describe("message requests and blocking", () => {
  const HOSTILE = '<img src=x onerror="window.pwned=1">buy now';

  function seedRequest() {
    core.conversations = [
      conversation(1, { contact_name: "ada" }),
      conversation(2, { contact_name: "stranger", contact_id: 7, standing: "request", unread: 1 }),
    ];
    core.messages = [message(1, 1, { body: "lunch at noon?" }), message(2, 2, { body: HOSTILE })];
  }

  const banner = () => byId("request-banner");
  const text = (el: Element | null) => el?.textContent?.replace(/\s+/g, " ").trim();

  it("a request is labelled in the list and shows none of its text there or in search", async () => {
    seedRequest();
    await renderMain();
    const request = item(2) as HTMLElement;
    expect(request.dataset.standing).toBe("request");
    expect(request.querySelector(".request-tag")?.textContent).toBe("Request");
    expect(request.querySelector(".preview")?.textContent).toBe("Wants to message you");
    expect(document.querySelector(".sidebar")?.textContent).not.toContain("buy now");
    expect(item(1)?.querySelector(".request-tag")).toBeNull();
    expect(item(1)?.querySelector(".preview")?.textContent).toBe("lunch at noon?");

    // Its text finds nothing: not in the list, not among the messages found.
    await fireEvent.input(byId<HTMLInputElement>("conversation-search"), { target: { value: "buy now" } });
    await vi.waitFor(() => expect(core.callsOf("search")).toEqual([{ query: "buy now" }]));
    const results = await screen.findByRole("region", { name: "Messages" });
    await vi.waitFor(() => expect(results.textContent).toContain("No messages found."));
    expect(listOrder()).toEqual([]);
    expect(document.querySelector(".sidebar")?.textContent).not.toContain("buy now");
  });

  it("an open request shows its text as text and the request banner instead of the composer; Accept lets the user reply", async () => {
    seedRequest();
    await renderMain();
    await open(2);
    expect(row(2)?.querySelector(".message-body")?.textContent).toBe(HOSTILE);
    expect(row(2)?.querySelector("img")).toBeNull();
    expect(byId("composer")).toBeNull();
    expect(text(banner())).toContain("stranger wants to message you. They don't know whether you have read this.");
    expect(byId("timer-button")).toBeNull();
    expect(byId("block-contact")).toBeNull();

    await fireEvent.click(byId("accept-request"));
    await settle();
    expect(core.callsOf("accept_request")).toEqual([{ contactId: 7 }]);
    expect(banner()).toBeNull();
    expect(document.activeElement).toBe(byId("composer"));
    expect(item(2)?.querySelector(".request-tag")).toBeNull();
    expect(item(2)?.querySelector(".preview")?.textContent).toBe(HOSTILE);
    expect(byId("block-contact")).toBeTruthy();
    expect(core.callsOf("decline_request")).toEqual([]);
    expect(core.callsOf("block_contact")).toEqual([]);
  });

  it("Delete asks first, then declines the request and closes the chat", async () => {
    seedRequest();
    await renderMain();
    await open(2);
    await fireEvent.click(byId("decline-request"));
    await settle();
    const dialog = screen.getByRole("dialog", { name: "Delete this message request?" });
    expect(document.activeElement?.textContent?.trim()).toBe("Cancel");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));
    await settle();
    expect(core.callsOf("decline_request")).toEqual([]);
    expect(banner()).toBeTruthy();

    await fireEvent.click(byId("decline-request"));
    await settle();
    await fireEvent.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Delete request" }));
    await settle();
    expect(core.callsOf("decline_request")).toEqual([{ contactId: 7 }]);
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(listOrder()).toEqual([1]);
    expect(byId("chat-header")).toBeNull();
    expect(screen.getByRole("heading", { name: "Choose a chat" })).toBeTruthy();
    // Focus lands in the list, not on the page's body.
    expect(document.activeElement).toBe(item(1));
    expect(core.lastCallOf("set_active_conversation")).toEqual({ conversationId: null });
    expect(core.callsOf("accept_request")).toEqual([]);
    expect(core.callsOf("block_contact")).toEqual([]);
  });

  it("Block on a request blocks them; a blocked chat offers Unblock instead of the composer", async () => {
    seedRequest();
    await renderMain();
    await open(2);
    await fireEvent.click(byId("block-request"));
    await settle();
    expect(core.callsOf("block_contact")).toEqual([{ contactId: 7 }]);
    expect(core.callsOf("accept_request")).toEqual([]);
    expect(core.callsOf("decline_request")).toEqual([]);
    expect(banner()).toBeNull();
    expect(byId("composer")).toBeNull();
    expect(text(byId("blocked-banner"))).toContain("You blocked stranger.");
    expect(document.activeElement).toBe(byId("unblock-contact"));
    expect(item(2)?.querySelector(".request-tag")).toBeNull();

    await fireEvent.click(byId("unblock-contact"));
    await settle();
    expect(core.callsOf("unblock_contact")).toEqual([{ contactId: 7 }]);
    expect(byId("blocked-banner")).toBeNull();
    expect(document.activeElement).toBe(byId("composer"));
  });

  it("the header of an accepted chat blocks after confirmation, and edits stop for the blocked", async () => {
    core.conversations = [conversation(1, { contact_name: "ada" })];
    core.messages = [message(1, 1), message(2, 1, { direction: "outgoing", status: "sent", body: "mine" })];
    await renderMain();
    await open(1);
    expect(byId("blocked-banner")).toBeNull();
    await fireEvent.click(byId("block-contact"));
    await settle();
    const dialog = screen.getByRole("dialog", { name: "Block ada?" });
    await fireEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));
    await settle();
    expect(core.callsOf("block_contact")).toEqual([]);
    expect(byId("composer")).toBeTruthy();

    await fireEvent.click(byId("block-contact"));
    await settle();
    await fireEvent.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Block" }));
    await settle();
    expect(core.callsOf("block_contact")).toEqual([{ contactId: 1 }]);
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(byId("composer")).toBeNull();
    expect(text(byId("blocked-banner"))).toContain("You blocked ada.");
    expect(byId("block-contact")).toBeNull();
    expect(byId("timer-button")).toBeNull();
    expect(document.activeElement).toBe(byId("unblock-contact"));
    await fireEvent.click(row(2)?.querySelector(".more") as HTMLButtonElement);
    const actions = Array.from(row(2)?.querySelectorAll("[role=menuitem]") ?? [], (el) => el.textContent?.trim());
    expect(actions).toEqual(["Copy"]);
  });

  it("follows the core's contact_standing and contact_removed events in the open chat", async () => {
    seedRequest();
    await renderMain();
    await open(2);
    core.emit({ type: "contact_standing", contact_id: 7, standing: "blocked" });
    await settle();
    expect(byId("blocked-banner")).toBeTruthy();
    expect(byId("composer")).toBeNull();
    core.emit({ type: "contact_standing", contact_id: 7, standing: "accepted" });
    await settle();
    expect(byId("composer")).toBeTruthy();
    core.emit({ type: "contact_removed", contact_id: 7, conversation_ids: [] });
    await settle();
    expect(listOrder()).toEqual([1]);
    expect(byId("chat-header")).toBeNull();
  });
});

describe("calls", () => {
  const text = (el: Element | null) => el?.textContent?.replace(/\s+/g, " ").trim();
  const callEvent = (state: string, extra: Record<string, unknown> = {}) =>
    ({
      type: "call",
      call_id: "c0".repeat(16),
      conversation_id: 1,
      direction: "outgoing",
      media: "audio",
      state,
      reason: null,
      remote_video: false,
      ...extra,
    }) as Parameters<FakeCore["emit"]>[0];

  it("Call starts one from the chat; the bar follows it and hangs it up", async () => {
    seed();
    await renderMain();
    await open(1);
    expect(byId("call-bar")).toBeNull();
    await fireEvent.click(byId("call-button"));
    await settle();
    expect(core.callsOf("start_call")).toEqual([{ conversationId: 1 }]);
    expect(text(byId("call-bar"))).toContain("ada");
    expect(text(byId("call-status"))).toBe("Calling…");
    expect(byId<HTMLButtonElement>("call-button").disabled).toBe(true);

    core.emit(callEvent("ringing"));
    await settle();
    expect(text(byId("call-status"))).toBe("Ringing…");
    core.emit(callEvent("connected"));
    await settle();
    expect(text(byId("call-status"))).toBe("0:00");
    expect(byId("call-answer")).toBeNull();

    // Mute by button, unmute by the shortcut.
    await fireEvent.click(byId("call-mute"));
    await settle();
    expect(core.callsOf("set_call_muted")).toEqual([{ callId: "c0".repeat(16), muted: true }]);
    expect(byId("call-mute").getAttribute("aria-pressed")).toBe("true");
    expect(text(byId("call-mute"))).toBe("Unmute");
    await fireEvent.keyDown(window, { key: "M", code: "KeyM", ctrlKey: true, shiftKey: true, repeat: true });
    await settle();
    expect(core.callsOf("set_call_muted")).toHaveLength(1);
    await fireEvent.keyDown(window, { key: "M", code: "KeyM", ctrlKey: true, shiftKey: true });
    await settle();
    expect(core.lastCallOf("set_call_muted")).toEqual({ callId: "c0".repeat(16), muted: false });
    expect(text(byId("call-mute"))).toBe("Mute");

    await fireEvent.click(byId("call-hang-up"));
    await settle();
    expect(core.callsOf("hang_up_call")).toEqual([{ callId: "c0".repeat(16) }]);
    core.emit(callEvent("ended", { reason: "hung_up" }));
    await settle();
    expect(byId("call-bar")).toBeNull();
    expect(byId<HTMLButtonElement>("call-button").disabled).toBe(false);
    expect(text(document.querySelector(".toast") as HTMLElement)).toBe("Call ended");
  });

  it("an incoming call rings wherever the user is, with Answer and Decline", async () => {
    seed();
    await renderMain();
    await open(3);
    core.emit(callEvent("ringing", { direction: "incoming", call_id: "ab".repeat(16) }));
    await settle();
    expect(text(byId("call-bar"))).toContain("ada");
    expect(text(byId("call-status"))).toBe("Incoming voice call");
    expect(byId("call-hang-up")).toBeNull();
    await fireEvent.click(byId("call-answer"));
    await fireEvent.click(byId("call-answer"));
    await settle();
    // A double click answers once.
    expect(core.callsOf("answer_call")).toEqual([{ callId: "ab".repeat(16) }]);

    core.emit(callEvent("ended", { direction: "incoming", call_id: "ab".repeat(16), reason: "cancelled" }));
    core.emit(callEvent("ringing", { direction: "incoming", call_id: "cd".repeat(16) }));
    await settle();
    await fireEvent.click(byId("call-decline"));
    await settle();
    expect(core.callsOf("decline_call")).toEqual([{ callId: "cd".repeat(16) }]);
    expect(core.callsOf("answer_call")).toHaveLength(1);
  });

  it("a failed answer can be tried again or declined, and the shortcut never declines", async () => {
    seed();
    await renderMain();
    core.on("answer_call", async () => {
      throw { kind: "invalid", message: "no microphone found" };
    });
    core.emit(callEvent("ringing", { direction: "incoming", call_id: "ab".repeat(16) }));
    await settle();
    await fireEvent.keyDown(window, { key: "E", code: "KeyE", ctrlKey: true, shiftKey: true });
    await settle();
    expect(core.callsOf("hang_up_call")).toEqual([]);
    await fireEvent.click(byId("call-answer"));
    await settle();
    expect(byId<HTMLButtonElement>("call-answer").disabled).toBe(false);
    expect(byId<HTMLButtonElement>("call-decline").disabled).toBe(false);
    await fireEvent.click(byId("call-decline"));
    await settle();
    expect(core.callsOf("decline_call")).toEqual([{ callId: "ab".repeat(16) }]);
  });

  it("a call that ended before its start was answered does not come back", async () => {
    seed();
    await renderMain();
    await open(1);
    core.on("start_call", async () => {
      core.emit(callEvent("ended", { reason: "busy" }));
      return "c0".repeat(16);
    });
    await fireEvent.click(byId("call-button"));
    await settle();
    expect(byId("call-bar")).toBeNull();
    expect(text(document.querySelector(".toast") as HTMLElement)).toBe("They are in another call");
  });
});
