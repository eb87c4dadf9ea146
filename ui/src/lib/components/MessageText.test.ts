import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { tick } from "svelte";
import MessageText from "./MessageText.svelte";

afterEach(cleanup);

const ALLOWED_LINK_ATTRIBUTES = new Set(["href", "dir", "rel", "referrerpolicy", "class"]);

/** Renders `text` and checks it came out as text nodes and safe links only. */
function renderInert(text: string) {
  const { container } = render(MessageText, { props: { text, openUrl: vi.fn() } });
  const root = container.querySelector(".message-text");
  expect(root).not.toBeNull();
  expect(root?.textContent).toBe(text);
  for (const element of Array.from(container.querySelectorAll("*"))) {
    expect(["SPAN", "A"]).toContain(element.tagName);
    for (const attribute of Array.from(element.attributes)) {
      expect(attribute.name.startsWith("on"), attribute.name).toBe(false);
      if (element.tagName === "A") expect(ALLOWED_LINK_ATTRIBUTES).toContain(attribute.name);
    }
    if (element.tagName === "A") {
      expect(element.getAttribute("href")).toMatch(/^https?:\/\//i);
      // The visible text is the address (www. links gain only the scheme).
      expect(element.getAttribute("href")?.endsWith(element.textContent ?? "\0")).toBe(true);
    }
  }
  return { container, root: root as HTMLElement };
}

const HOSTILE = [
  "<script>alert(1)</script>",
  '<img src=x onerror="alert(1)">',
  "<svg onload=alert(1)><a xlink:href=javascript:alert(1)>x</a></svg>",
  '<a href="javascript:alert(1)">click me</a>',
  '<div onclick="alert(1)" onmouseover=alert(2)>hover</div>',
  "javascript:alert(document.cookie)",
  "JaVaScRiPt:alert(1) data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg== file:///etc/passwd",
  '<iframe src="https://evil.example"></iframe>',
  "{@html '<b>x</b>'} {{7*7}} ${7*7}",
  "https://evil.example/\"><img src=x onerror=alert(1)>",
  "https://example.com/\u202Eexe.gpj",
  "\u202Ehttps://moc.elgoog\u202C \u2066https://a.example\u2069 \u202Bright\u202A",
  "pay\u200Bpal https://pay\u200Dpal.example \uFEFFbom \u2060wj \u00ADshy",
  "&lt;b&gt;not bold&lt;/b&gt; &amp;amp;",
  "\u0000null \u0007bell \r\n crlf",
];

describe("MessageText", () => {
  it("renders each hostile message inert, with the exact text", () => {
    for (const text of HOSTILE) {
      renderInert(text);
      cleanup();
    }
    // The same corpus in one long message, shown whole.
    const long = HOSTILE.join("\n").repeat(40);
    const { container } = render(MessageText, { props: { text: long, openUrl: vi.fn(), previewLength: Infinity } });
    expect(container.querySelector(".message-text")?.textContent).toBe(long);
    expect(new Set(Array.from(container.querySelectorAll("*"), (el) => el.tagName))).toEqual(new Set(["SPAN", "A"]));
    expect(document.querySelector("script, img, iframe, svg, div[onclick]")).toBeNull();
  });

  it("renders a 1 MB message as text, collapsed until asked", async () => {
    const text = "<b>" + "x".repeat(1 << 20) + "</b> https://example.com";
    const { container } = render(MessageText, { props: { text, openUrl: vi.fn() } });
    const root = container.querySelector(".message-text") as HTMLElement;
    expect(root.textContent).toBe(text.slice(0, 4_000));
    expect(root.querySelectorAll("*")).toHaveLength(0);
    const more = screen.getByRole("button", { name: /Show the whole message/ });
    expect(more.textContent).toContain((text.length).toLocaleString());

    await fireEvent.click(more);
    expect(root.textContent).toBe(text);
    expect(Array.from(root.querySelectorAll("*"), (el) => el.tagName)).toEqual(["A"]);
    expect(screen.queryByRole("button")).toBeNull();
  });

  it("keeps zero-width characters in the text and out of links", () => {
    const text = "https://exa\u200Bmple.com";
    const { root } = renderInert(text);
    const link = root.querySelector("a");
    expect(link?.textContent).toBe("https://exa");
    expect(root.textContent).toContain("\u200B");
  });

  it("isolates links from the bidi state of the surrounding text", () => {
    const { root } = renderInert("\u202Eabc https://example.com def");
    expect(root.getAttribute("dir")).toBe("auto");
    expect(root.querySelector("a")?.getAttribute("dir")).toBe("ltr");
  });

  it("asks before opening a link, showing the host and the full URL", async () => {
    const openUrl = vi.fn();
    render(MessageText, { props: { text: "look: https://bücher.example/a b", openUrl } });
    const link = screen.getByRole("link", { name: "https://bücher.example/a" });

    const event = new MouseEvent("click", { bubbles: true, cancelable: true });
    link.dispatchEvent(event);
    await tick();
    expect(event.defaultPrevented).toBe(true);
    expect(openUrl).not.toHaveBeenCalled();

    const confirm = screen.getByRole("group", { name: "Open this link in your browser?" });
    expect(confirm.textContent).toContain("xn--bcher-kva.example");
    expect(confirm.textContent).toContain("https://xn--bcher-kva.example/a");
    await vi.waitFor(() =>
      expect(document.activeElement).toBe(screen.getByRole("button", { name: "Cancel" })),
    );

    await fireEvent.click(screen.getByRole("button", { name: "Open in browser" }));
    expect(openUrl).toHaveBeenCalledExactlyOnceWith("https://xn--bcher-kva.example/a");
    expect(screen.queryByRole("group")).toBeNull();
    expect(document.activeElement).toBe(link);
  });

  it("asks on a middle click too, instead of letting the webview open a window", async () => {
    const openUrl = vi.fn();
    render(MessageText, { props: { text: "https://example.com", openUrl } });
    const event = new MouseEvent("auxclick", { bubbles: true, cancelable: true, button: 1 });
    screen.getByRole("link").dispatchEvent(event);
    await tick();
    expect(event.defaultPrevented).toBe(true);
    expect(screen.getByRole("group", { name: "Open this link in your browser?" })).toBeTruthy();
    expect(openUrl).not.toHaveBeenCalled();
  });

  it("opens nothing on Cancel or Escape and returns focus to the link", async () => {
    const openUrl = vi.fn();
    render(MessageText, { props: { text: "https://example.com", openUrl } });
    const link = screen.getByRole("link");

    await fireEvent.click(link);
    await fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(screen.queryByRole("group")).toBeNull();
    expect(document.activeElement).toBe(link);

    await fireEvent.click(link);
    await fireEvent.keyDown(screen.getByRole("button", { name: "Cancel" }), { key: "Escape" });
    expect(screen.queryByRole("group")).toBeNull();
    expect(openUrl).not.toHaveBeenCalled();
  });

  it("warns when a user name disguises the real host", async () => {
    render(MessageText, {
      props: { text: "https://bank.example@evil.example/login", openUrl: vi.fn() },
    });
    await fireEvent.click(screen.getByRole("link"));
    const confirm = screen.getByRole("group");
    expect(confirm.textContent).toContain("really goes to evil.example");
  });

  it("refuses to open an address that does not parse", async () => {
    const openUrl = vi.fn();
    render(MessageText, { props: { text: "https://[::1 broken", openUrl } });
    await fireEvent.click(screen.getByRole("link"));
    expect(screen.getByRole("group").textContent).toContain("cannot be opened");
    expect(screen.queryByRole("button", { name: "Open in browser" })).toBeNull();
    await fireEvent.click(screen.getByRole("button", { name: "Close" }));
    expect(openUrl).not.toHaveBeenCalled();
  });

  it("updates when the message is edited", async () => {
    const { rerender, container } = render(MessageText, {
      props: { text: "first", openUrl: vi.fn() },
    });
    await rerender({ text: "edited https://example.com", openUrl: vi.fn() });
    expect(container.querySelector(".message-text")?.textContent).toBe("edited https://example.com");
    expect(container.querySelectorAll("a")).toHaveLength(1);
  });
});
