import { describe, expect, it } from "vitest";
import { checkLink, linkify, previewParts, stripBidiControls, type TextPart } from "./linkify";

const links = (text: string) =>
  linkify(text)
    .filter((p): p is Extract<TextPart, { kind: "link" }> => p.kind === "link")
    .map((p) => p.href);

const joined = (parts: TextPart[]) => parts.map((p) => p.text).join("");

describe("linkify", () => {
  it("finds http and https links and keeps the surrounding text", () => {
    expect(linkify("see https://example.com/a?b=1#c now")).toEqual([
      { kind: "text", text: "see " },
      { kind: "link", text: "https://example.com/a?b=1#c", href: "https://example.com/a?b=1#c" },
      { kind: "text", text: " now" },
    ]);
    expect(links("http://a.test and HTTPS://B.TEST")).toEqual(["http://a.test", "HTTPS://B.TEST"]);
  });

  it("turns bare www. addresses into https links", () => {
    expect(linkify("go to www.example.org.")).toEqual([
      { kind: "text", text: "go to " },
      { kind: "link", text: "www.example.org", href: "https://www.example.org" },
      { kind: "text", text: "." },
    ]);
    expect(links("foo.www.example.org user@www.example.org")).toEqual([]);
  });

  it("never links other schemes", () => {
    for (const text of [
      "javascript:alert(1)",
      "JaVaScRiPt:alert(document.cookie)",
      "data:text/html,<script>alert(1)</script>",
      "file:///etc/passwd",
      "vbscript:msgbox(1)",
      "ftp://example.com",
      "mailto:a@example.com",
      "jar:http:/x",
      "https:/one-slash.example",
      "https://",
      "xhttps://glued.example",
    ]) {
      expect(links(text), text).toEqual([]);
    }
  });

  it("links only the https part of a hostile mix, with a safe href", () => {
    const hrefs = links("javascript:alert(1)//https://evil.example");
    expect(hrefs).toEqual(["https://evil.example"]);
    for (const href of hrefs) expect(href).toMatch(/^https?:\/\//i);
  });

  it("leaves trailing punctuation and unbalanced brackets outside the link", () => {
    expect(links("(see https://example.com/x).")).toEqual(["https://example.com/x"]);
    expect(links("https://en.wikipedia.org/wiki/Foo_(bar)")).toEqual([
      "https://en.wikipedia.org/wiki/Foo_(bar)",
    ]);
    expect(links("[https://example.com/a]")).toEqual(["https://example.com/a"]);
    expect(links("really? https://example.com/?!")).toEqual(["https://example.com/"]);
    expect(links('"https://example.com/q"')).toEqual(["https://example.com/q"]);
  });

  it("stops a link at markup characters", () => {
    expect(links('<a href="https://evil.example/x">click</a>')).toEqual([
      "https://evil.example/x",
    ]);
    expect(links("https://evil.example/<script>")).toEqual(["https://evil.example/"]);
  });

  it("ends a link at bidi controls, so its text cannot be reordered to disguise the target", () => {
    const rlo = "\u202E";
    const text = `https://example.com/${rlo}gpj.exe`;
    const parts = linkify(text);
    expect(parts).toEqual([
      { kind: "link", text: "https://example.com/", href: "https://example.com/" },
      { kind: "text", text: `${rlo}gpj.exe` },
    ]);
    for (const c of ["\u202A", "\u202B", "\u202C", "\u202D", "\u2066", "\u2067", "\u2068", "\u2069"]) {
      for (const part of linkify(`https://a.example/${c}b https://c.example${c}`)) {
        if (part.kind === "link") expect(part.text).not.toContain(c);
      }
    }
  });

  it("ends a link at zero-width characters instead of hiding them inside it", () => {
    for (const zw of ["\u200B", "\u200C", "\u200D", "\u2060", "\uFEFF", "\u00AD"]) {
      const text = `https://pay${zw}pal.example/login`;
      expect(links(text), JSON.stringify(zw)).toEqual(["https://pay"]);
      expect(joined(linkify(text))).toBe(text);
    }
  });

  it("keeps non-ASCII hosts and paths, and emoji", () => {
    expect(links("https://bücher.example/straße 🎉")).toEqual(["https://bücher.example/straße"]);
    expect(links("🎉https://example.com")).toEqual(["https://example.com"]);
  });

  it("gives back the input exactly when parts are joined", () => {
    const samples = [
      "",
      "plain",
      "https://a.example",
      "a https://b.example/(c) d www.e.example, f\u202Eg",
      "\uD800 lone surrogate https://x.example\uDC00",
      "<img src=x onerror=alert(1)> https://x.example/\"onmouseover=\"alert(1)",
    ];
    for (const s of samples) expect(joined(linkify(s))).toBe(s);
  });

  it("handles hostile 1 MB inputs without blowing up", () => {
    // Inputs built to defeat naive regexes: long runs of near-matches and nested brackets. A
    // quadratic scan takes minutes on these and trips the test timeout; the speed itself is
    // measured in linkify.bench.ts (`npx vitest bench --run`).
    const inputs = [
      "x".repeat(1 << 20),
      "http:/".repeat(1 << 17),
      "xhttps://".repeat(1 << 17),
      "https://a.example/" + "(".repeat(1 << 19) + ")".repeat(1 << 19) + ")".repeat(1 << 10),
      "https://a.example/" + "a\u200B".repeat(1 << 19),
      "https://a.example/" + ".".repeat(1 << 20),
      "www.a ".repeat(1 << 17),
    ];
    for (const input of inputs) expect(joined(linkify(input))).toBe(input);
    // The balanced brackets stay in the link; the unbalanced closing ones are trimmed off.
    const brackets = linkify(inputs[3] ?? "");
    expect(brackets[0]?.kind).toBe("link");
    expect(brackets[0]?.text.length).toBe("https://a.example/".length + (1 << 20));
    expect(links("www.a ".repeat(1 << 17)).length).toBe(1 << 17);
  });
});

describe("checkLink", () => {
  it("normalises the address and shows the real host", () => {
    expect(checkLink("https://bücher.example/a b")).toEqual({
      href: "https://xn--bcher-kva.example/a%20b",
      host: "xn--bcher-kva.example",
      hasCredentials: false,
    });
  });

  it("flags user@host addresses that disguise the real host", () => {
    const checked = checkLink("https://trusted.example@evil.example/");
    expect(checked?.host).toBe("evil.example");
    expect(checked?.hasCredentials).toBe(true);
  });

  it("refuses anything that is not http(s) with a host", () => {
    expect(checkLink("javascript:alert(1)")).toBeNull();
    expect(checkLink("data:text/html,x")).toBeNull();
    expect(checkLink("file:///etc/passwd")).toBeNull();
    expect(checkLink("https://[::1")).toBeNull();
    expect(checkLink("not a url")).toBeNull();
  });
});

describe("stripBidiControls", () => {
  it("removes embeddings, overrides and isolates but keeps other text", () => {
    expect(stripBidiControls("a\u202Ab\u202Bc\u202Cd\u202De\u202Ef\u2066g\u2067h\u2068i\u2069j")).toBe(
      "abcdefghij",
    );
    expect(stripBidiControls("\u200Bzero width stays")).toBe("\u200Bzero width stays");
  });
});

describe("previewParts", () => {
  it("returns short messages whole", () => {
    const parts = linkify("hello https://example.com");
    expect(previewParts(parts, 100)).toEqual({ parts, truncated: false });
  });

  it("cuts long messages and never leaves a clickable cut link", () => {
    const parts = linkify("abc https://example.com/long/path tail");
    const cutInLink = previewParts(parts, 10);
    expect(cutInLink.truncated).toBe(true);
    expect(cutInLink.parts).toEqual([
      { kind: "text", text: "abc " },
      { kind: "text", text: "https:" },
    ]);
    const cutAfterLink = previewParts(parts, 4 + "https://example.com/long/path".length + 2);
    expect(cutAfterLink.parts.map((p) => p.kind)).toEqual(["text", "link", "text"]);
    expect(cutAfterLink.parts[2]?.text).toBe(" t");
  });

  it("does not split a surrogate pair", () => {
    const { parts } = previewParts(linkify("ab😀cd"), 3);
    expect(parts.map((p) => p.text).join("")).toBe("ab");
  });
});

describe("trailing punctuation in other scripts", () => {
  it("leaves CJK and typographic marks outside the link", () => {
    expect(links("看这个https://example.cn/a。")).toEqual(["https://example.cn/a"]);
    expect(links("«https://example.fr/a»")).toEqual(["https://example.fr/a"]);
    expect(links("“https://example.com/q”")).toEqual(["https://example.com/q"]);
  });
});
