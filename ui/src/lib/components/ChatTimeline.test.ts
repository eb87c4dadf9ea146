import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, render, screen, within } from "@testing-library/svelte";
import { tick } from "svelte";
import ChatTimeline from "./ChatTimeline.svelte";
import type { MessageView } from "../types";

const NOW = new Date(2026, 10, 23, 15, 0).getTime();
let clientHeight: PropertyDescriptor | undefined;

beforeEach(() => {
  // Only the clock is fake: countdowns and day labels see NOW, timers still run.
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
  clientHeight = Object.getOwnPropertyDescriptor(HTMLElement.prototype, "clientHeight");
  Object.defineProperty(HTMLElement.prototype, "clientHeight", {
    configurable: true,
    get(this: HTMLElement) {
      return this.classList.contains("virtual-list") ? 640 : 0;
    },
  });
});

afterEach(() => {
  cleanup();
  vi.useRealTimers();
  if (clientHeight) Object.defineProperty(HTMLElement.prototype, "clientHeight", clientHeight);
});

function message(id: number, sent_at: number, extra: Partial<MessageView> = {}): MessageView {
  return {
    id,
    conversation_id: 1,
    direction: id % 2 === 0 ? "incoming" : "outgoing",
    status: id % 2 === 0 ? "received" : "read",
    body: `message ${id}`,
    sent_at,
    expires_at: null,
    edited: false,
    deleted: false,
    call: null,
    ...extra,
  };
}

describe("ChatTimeline", () => {
  it("shows the newest of 100,000 messages and keeps the DOM small", async () => {
    const messages = Array.from({ length: 100_000 }, (_, i) => message(i, NOW - (100_000 - i) * 60_000));
    render(ChatTimeline, { props: { messages, openUrl: vi.fn(), label: "Messages with Ada", now: NOW, locale: "en-US" } });
    await vi.waitFor(() => expect(screen.getByText("message 99999")).toBeTruthy());
    expect(document.querySelectorAll("article").length).toBeLessThan(40);
    const list = screen.getByRole("list");
    // 100,000 messages over about 70 days: one separator row per day.
    const setsize = Number(list.querySelector("[role=listitem]")?.getAttribute("aria-setsize"));
    expect(setsize).toBeGreaterThan(100_000 + 69);
    expect(setsize).toBeLessThan(100_000 + 72);
  });

  it("shows status, edits, deletions and countdowns as text", () => {
    const messages = [
      message(1, NOW - 5_000, { status: "pending" }),
      message(3, NOW - 4_000, { status: "failed" }),
      message(2, NOW - 3_000, { edited: true }),
      message(4, NOW - 2_000, { deleted: true, body: "" }),
      message(6, NOW - 1_000, { expires_at: NOW + 30_000, body: "<img src=x onerror=alert(1)>" }),
    ];
    render(ChatTimeline, { props: { messages, openUrl: vi.fn(), label: "Messages", now: NOW, contactName: "Ada" } });
    const articles = screen.getAllByRole("article");
    expect(articles.map((a) => a.querySelector(".visually-hidden")?.textContent)).toEqual([
      "You:",
      "You:",
      "Ada:",
      "Ada:",
      "Ada:",
    ]);
    expect(articles.map((a) => a.querySelector(".meta")?.textContent?.replace(/\s+/g, " ").trim())).toEqual([
      expect.stringMatching(/· Sending$/),
      expect.stringMatching(/· Not sent$/),
      expect.stringMatching(/· edited$/),
      expect.not.stringMatching(/edited|Sending|Sent/),
      expect.stringMatching(/· 30s Disappears in 30 seconds$/),
    ]);
    expect(screen.getByRole("heading", { name: "Today" })).toBeTruthy();
    expect(within(articles[3] as HTMLElement).getByText("This message was deleted.")).toBeTruthy();
    expect(articles[4]?.textContent).toContain("<img src=x onerror=alert(1)>");
    expect(document.querySelector("img")).toBeNull();
  });

  it("keeps the message the reader is at in place when an older page of the same day arrives", async () => {
    // Four minutes apart, as the benchmark's chat: the page boundary falls inside a day.
    const all = Array.from({ length: 200 }, (_, i) => message(i + 1, NOW - (200 - i) * 240_000));
    const props = { openUrl: vi.fn(), label: "Messages with Ada", now: NOW, locale: "en-US" };
    const { rerender } = render(ChatTimeline, { props: { ...props, messages: all.slice(100) } });
    const viewport = document.querySelector(".virtual-list") as HTMLElement;
    await vi.waitFor(() => expect(viewport.scrollTop).toBeGreaterThan(0));
    // The reader scrolls to the top: the day's separator, then message 101.
    viewport.scrollTop = 0;
    viewport.dispatchEvent(new Event("scroll"));
    await tick();
    const shown = () =>
      Array.from(document.querySelectorAll(".row"), (row) => row.querySelector("h3")?.textContent ?? row.querySelector("article")?.dataset.messageId);
    expect(shown().slice(0, 2)).toEqual(["Today", "101"]);

    await rerender({ ...props, messages: all });
    await tick();
    // The separator moved up to message 1; message 101 is where it was (64 px down, below the
    // end of message 100), with no separator before it.
    expect(viewport.scrollTop).toBe(101 * 64 - 64);
    expect(shown().slice(0, 2)).toEqual(["100", "101"]);
    expect(document.querySelector(".row")?.getAttribute("aria-posinset")).toBe("101");
  });

  it("survives times outside the range of Date", () => {
    render(ChatTimeline, {
      props: { messages: [message(2, 9e15, { expires_at: 9e15 })], openUrl: vi.fn(), label: "Messages", now: NOW },
    });
    expect(screen.getByText("message 2")).toBeTruthy();
    expect(screen.getByRole("heading", { name: "Unknown date" })).toBeTruthy();
  });
});
