// Message text is data. Whatever a contact sends — markup, script URLs, bidi overrides,
// invisible characters, a megabyte of text — reaches the screen as text nodes, and the only
// elements built from it are <a>s for the http(s) links linkify found.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { clearMocks } from "@tauri-apps/api/mocks";
import { FakeCore, ME, conversation, message } from "../../test/fakeCore";
import { withViewportHeight } from "../../test/layout";
import Main from "../../screens/Main.svelte";
import ChatTimeline from "./ChatTimeline.svelte";

withViewportHeight(4000);

const MEGABYTE = `${"A".repeat(1_000_000)}<b>the end</b>`;

const CORPUS = [
  "<script>alert(1)</script>",
  '<img src=x onerror="alert(1)">',
  '<iframe src="javascript:alert(1)"></iframe><svg onload=alert(1)>',
  "javascript:alert(document.cookie)",
  "[click me](javascript:alert(1)) data:text/html,<script>alert(1)</script>",
  "invoice\u202Egnp.exe and \u2066isolated\u2069 text",
  "pay\u200Bpal.com\u200D\uFEFF\u2060 zero width",
  "{@html '<b>x</b>'} {{constructor.constructor('alert(1)')()}} &lt;b&gt; &amp;",
  "see https://example.org/path?q=<img src=x> and http://example.com/",
];

/** Every element created inside a message body is a link to an http(s) address. */
function onlyLinks(root: ParentNode) {
  for (const body of Array.from(root.querySelectorAll(".message-body"))) {
    for (const element of Array.from(body.querySelectorAll("*"))) {
      if (element.classList.contains("message-text")) continue;
      expect(element.tagName).toBe("A");
      expect(element.getAttribute("href")).toMatch(/^https?:\/\//);
    }
  }
}

beforeEach(() => {
  vi.spyOn(document, "hasFocus").mockReturnValue(true);
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
});

describe("hostile message text", () => {
  it("renders every corpus entry as inert text in the timeline", async () => {
    const messages = CORPUS.map((body, i) => message(i + 1, 1, { body }));
    const { container } = render(ChatTimeline, { props: { messages, openUrl: vi.fn(), label: "Messages" } });
    await vi.waitFor(() => expect(container.querySelectorAll(".message-body")).toHaveLength(CORPUS.length));

    expect(container.querySelector("script, img, iframe, svg:not(.icon), b, object, embed")).toBeNull();
    const bodies = Array.from(container.querySelectorAll(".message-body"), (b) => b.textContent);
    expect(bodies).toEqual(CORPUS);
    onlyLinks(container);
    // The only links: the two real http(s) addresses of the last entry.
    expect(Array.from(container.querySelectorAll(".message-body a"), (a) => a.getAttribute("href"))).toEqual([
      "https://example.org/path?q=",
      "http://example.com/",
    ]);
    // No attribute anywhere carries a script URL or an event handler from the text.
    for (const element of Array.from(container.querySelectorAll("*"))) {
      for (const attribute of Array.from(element.attributes)) {
        expect(attribute.name.startsWith("on")).toBe(false);
        expect(attribute.value.toLowerCase()).not.toContain("javascript:");
      }
    }
    // Bidi overrides stay inside the message: the body is isolated and direction is automatic.
    const bidi = container.querySelector('[data-message-id="6"] .message-text');
    expect(bidi?.getAttribute("dir")).toBe("auto");
  });

  it("renders a 1 MB message as text, cut at first and whole on request", async () => {
    const { container } = render(ChatTimeline, {
      props: { messages: [message(1, 1, { body: MEGABYTE })], openUrl: vi.fn(), label: "Messages" },
    });
    const body = () => container.querySelector(".message-body .message-text")?.textContent ?? "";
    await vi.waitFor(() => expect(body().length).toBeGreaterThan(0));
    expect(body().length).toBeLessThan(10_000);
    expect(MEGABYTE.startsWith(body().replace(/…$/, ""))).toBe(true);
    await fireEvent.click(screen.getByRole("button", { name: /Show the whole message/ }));
    expect(body()).toBe(MEGABYTE);
    expect(container.querySelector("b, script, img, iframe")).toBeNull();
  });

  it("shows hostile names and previews as text in the list, the header and the dialogs", async () => {
    const core = new FakeCore().install();
    const name = '<img src=x onerror="alert(1)">\u202Eevil';
    core.conversations = [
      conversation(1, { contact_name: name }),
      conversation(2, { contact_name: "<script>x</script>", kind: "secret" }),
    ];
    core.messages = [
      message(1, 1, { body: "<iframe src=javascript:alert(1)>\nsecond line" }),
      message(2, 2, { body: MEGABYTE }),
    ];
    const { container } = render(Main, { props: { me: { ...ME, name: "<b>me</b>" } } });
    await vi.waitFor(() => expect(document.querySelectorAll("[data-conversation-id]")).toHaveLength(2));

    const first = document.querySelector('[data-conversation-id="1"]');
    expect(first?.querySelector(".name")?.textContent).toBe(name);
    expect(first?.querySelector(".preview")?.textContent).toBe("<iframe src=javascript:alert(1)> second line");
    const secret = document.querySelector('[data-conversation-id="2"] .preview')?.textContent ?? "";
    expect(secret.length).toBeLessThan(200);
    expect(secret.startsWith("AAAA")).toBe(true);

    await fireEvent.click(first as HTMLElement);
    await vi.waitFor(() => expect(document.getElementById("chat-title")?.textContent).toBe(name));
    await fireEvent.click(document.getElementById("safety-button") as HTMLElement);
    await vi.waitFor(() => expect(document.getElementById("safety-digits")).toBeTruthy());

    expect(document.body.querySelector("script, img, iframe, b")).toBeNull();
    expect(document.body.textContent).toContain("<b>me</b>");
    onlyLinks(container);
  });
});
