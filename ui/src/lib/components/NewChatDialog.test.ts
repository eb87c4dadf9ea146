import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { clearMocks } from "@tauri-apps/api/mocks";
import { startChat } from "../api";
import { FakeCore } from "../../test/fakeCore";
import NewChatDialog from "./NewChatDialog.svelte";

let core: FakeCore;

beforeEach(() => {
  core = new FakeCore().install();
});

afterEach(() => {
  cleanup();
  clearMocks();
});

const byId = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function setup() {
  const onclose = vi.fn();
  render(NewChatDialog, { props: { onstart: startChat, onclose } });
  return onclose;
}

describe("NewChatDialog", () => {
  it("with the lock off starts a standard chat, with no timer", async () => {
    const onclose = setup();
    expect(document.activeElement).toBe(byId("new-chat-handle"));
    const toggle = byId("lock-toggle");
    expect(toggle.getAttribute("role")).toBe("switch");
    expect(toggle.getAttribute("aria-checked")).toBe("false");
    expect(screen.getByRole("switch", { name: "Secret chat" })).toBe(toggle);
    expect(byId("new-chat-timer")).toBeNull();

    await fireEvent.input(byId("new-chat-handle"), { target: { value: " @Ada " } });
    await fireEvent.click(byId("start-chat"));
    await vi.waitFor(() => expect(onclose).toHaveBeenCalled());
    expect(core.callsOf("start_chat")).toEqual([{ handle: "ada", secret: false, timerSecs: null }]);
  });

  it("with the lock on explains secret chats and sends the chosen timer (1 hour unless changed)", async () => {
    const onclose = setup();
    await fireEvent.click(byId("lock-toggle"));
    expect(byId("lock-toggle").getAttribute("aria-checked")).toBe("true");
    expect(byId("secret-explained").textContent?.replace(/\s+/g, " ").trim()).toBe(
      "A secret chat is bound to this device, disappears after the timer, shows no message text in notifications and is never in search.",
    );
    const timer = byId<HTMLSelectElement>("new-chat-timer");
    expect(timer.value).toBe("3600");
    expect(Array.from(timer.options, (o) => o.value)).toEqual(["5", "30", "60", "300", "3600", "28800", "86400"]);
    await fireEvent.input(byId("new-chat-handle"), { target: { value: "bob" } });
    await fireEvent.click(byId("start-chat"));
    await vi.waitFor(() => expect(onclose).toHaveBeenCalled());
    expect(core.callsOf("start_chat")).toEqual([{ handle: "bob", secret: true, timerSecs: 3600 }]);
  });

  it("turning the lock off again sends a standard chat", async () => {
    setup();
    await fireEvent.click(byId("lock-toggle"));
    await fireEvent.change(byId("new-chat-timer"), { target: { value: "30" } });
    await fireEvent.click(byId("lock-toggle"));
    expect(byId("new-chat-timer")).toBeNull();
    await fireEvent.input(byId("new-chat-handle"), { target: { value: "bob" } });
    await fireEvent.click(byId("start-chat"));
    await vi.waitFor(() => expect(core.callsOf("start_chat")).toEqual([{ handle: "bob", secret: false, timerSecs: null }]));
  });

  it("shows progress and disables the button while the relay works, then the error", async () => {
    let fail: () => void = () => {};
    core.on("start_chat", () => new Promise((_, reject) => (fail = () => reject({ kind: "not_found", message: "Nobody has that handle." }))));
    const onclose = setup();
    await fireEvent.input(byId("new-chat-handle"), { target: { value: "nobody" } });
    await fireEvent.click(byId("start-chat"));
    expect(byId<HTMLButtonElement>("start-chat").disabled).toBe(true);
    expect(document.body.textContent).toContain("Finding the contact on the relay");
    fail();
    await vi.waitFor(() => expect(byId("new-chat-error").textContent).toBe("Nobody has that handle."));
    expect(byId<HTMLButtonElement>("start-chat").disabled).toBe(false);
    expect(onclose).not.toHaveBeenCalled();
  });

  it("checks the handle before asking the relay", async () => {
    setup();
    await fireEvent.input(byId("new-chat-handle"), { target: { value: "a b" } });
    await fireEvent.click(byId("start-chat"));
    expect(byId("new-chat-error").textContent).toBe("Use only lower-case letters, digits, _ and dots.");
    expect(core.callsOf("start_chat")).toEqual([]);
  });

  it("closes on Escape", async () => {
    const onclose = setup();
    await fireEvent.keyDown(byId("new-chat-handle"), { key: "Escape" });
    expect(onclose).toHaveBeenCalled();
  });
});
