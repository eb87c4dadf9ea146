import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { createRawSnippet, tick } from "svelte";
import VirtualList from "./VirtualList.svelte";

// jsdom does no layout: give the scroll container a 400 px viewport, as a window would.
const VIEWPORT = 400;
let clientHeight: PropertyDescriptor | undefined;

beforeEach(() => {
  clientHeight = Object.getOwnPropertyDescriptor(HTMLElement.prototype, "clientHeight");
  Object.defineProperty(HTMLElement.prototype, "clientHeight", {
    configurable: true,
    get(this: HTMLElement) {
      return this.classList.contains("virtual-list") ? VIEWPORT : 0;
    },
  });
});

afterEach(() => {
  cleanup();
  if (clientHeight) Object.defineProperty(HTMLElement.prototype, "clientHeight", clientHeight);
  vi.unstubAllGlobals();
});

// Rows show their number; the items are numbers, so the raw snippet carries no markup from data.
const row = createRawSnippet((item: () => number) => ({
  render: () => `<span class="message">Message ${Number(item())}</span>`,
}));

function rendered(): number[] {
  return Array.from(document.querySelectorAll(".message"), (el) =>
    Number(el.textContent?.replace("Message ", "")),
  );
}

function list() {
  return screen.getByRole("region", { name: "Messages" });
}

function scrollTo(top: number) {
  const viewport = list();
  viewport.scrollTop = top;
  viewport.dispatchEvent(new Event("scroll"));
  return tick();
}

const HUNDRED_THOUSAND = Array.from({ length: 100_000 }, (_, i) => i);

/** A ResizeObserver the test drives by hand: `notify()` reports every observed row. */
function fakeResizeObserver() {
  const observed = new Set<Element>();
  let callback: (entries: { target: Element }[]) => void = () => {};
  vi.stubGlobal(
    "ResizeObserver",
    class {
      constructor(notify: (entries: { target: Element }[]) => void) {
        callback = notify;
      }
      observe(element: Element) {
        observed.add(element);
      }
      unobserve(element: Element) {
        observed.delete(element);
      }
      disconnect() {
        observed.clear();
      }
    },
  );
  const rows = () => Array.from(observed).filter((el) => (el as HTMLElement).classList.contains("row"));
  return { rows, notify: () => callback(rows().map((target) => ({ target }))) };
}

/** Rows laid out `height(index)` px tall (jsdom lays nothing out), until `restore()`. */
function rowHeightsInLayout(height: (index: number) => number) {
  const original = Object.getOwnPropertyDescriptor(HTMLElement.prototype, "offsetHeight");
  Object.defineProperty(HTMLElement.prototype, "offsetHeight", {
    configurable: true,
    get(this: HTMLElement) {
      return this.classList.contains("row") ? height(Number(this.dataset.index)) : 0;
    },
  });
  return () => {
    if (original) Object.defineProperty(HTMLElement.prototype, "offsetHeight", original);
  };
}

describe("VirtualList", () => {
  it("renders a bounded number of rows for 100,000 items", () => {
    render(VirtualList<number>, {
      props: { items: HUNDRED_THOUSAND, row, label: "Messages", estimatedRowHeight: 50, overscan: 5 },
    });
    const rows = rendered();
    // 400 px / 50 px = 8 rows in view, plus the overscan below (none above at the top).
    expect(rows.length).toBeLessThanOrEqual(8 + 1 + 5);
    expect(rows[0]).toBe(0);
    expect(rows).toEqual(Array.from({ length: rows.length }, (_, i) => i));
    expect(document.querySelectorAll("[role=listitem]").length).toBe(rows.length);
    // The rest of the list is space, so the scrollbar reflects all 100,000 rows.
    const inner = screen.getByRole("list");
    expect(inner.style.paddingBottom).toBe(`${(100_000 - rows.length) * 50}px`);
  });

  it("changes which rows render when it scrolls", async () => {
    render(VirtualList<number>, {
      props: { items: HUNDRED_THOUSAND, row, label: "Messages", estimatedRowHeight: 50, overscan: 5 },
    });
    await scrollTo(50 * 60_000);
    const rows = rendered();
    expect(rows).toContain(60_000);
    expect(rows).toContain(60_007);
    expect(rows).not.toContain(0);
    expect(rows.length).toBeLessThanOrEqual(8 + 1 + 10);
    expect(Math.min(...rows)).toBe(60_000 - 5);
    const inner = screen.getByRole("list");
    expect(inner.style.paddingTop).toBe(`${(60_000 - 5) * 50}px`);
  });

  it("tells assistive technology where each row sits in the whole list", async () => {
    render(VirtualList<number>, {
      props: { items: HUNDRED_THOUSAND, row, label: "Messages", estimatedRowHeight: 50 },
    });
    await scrollTo(50 * 1234);
    const item = screen.getByText("Message 1234").closest("[role=listitem]");
    expect(item?.getAttribute("aria-posinset")).toBe("1235");
    expect(item?.getAttribute("aria-setsize")).toBe("100000");
  });

  it("scrolls by keyboard", async () => {
    render(VirtualList<number>, {
      props: { items: HUNDRED_THOUSAND, row, label: "Messages", estimatedRowHeight: 50, overscan: 2 },
    });
    const viewport = list();
    expect(viewport.tabIndex).toBe(0);
    viewport.focus();

    await fireEvent.keyDown(viewport, { key: "End" });
    expect(rendered()).toContain(99_999);
    expect(viewport.scrollTop).toBe(100_000 * 50 - VIEWPORT);

    await fireEvent.keyDown(viewport, { key: "PageUp" });
    expect(viewport.scrollTop).toBe(100_000 * 50 - VIEWPORT - (VIEWPORT - 40));
    expect(rendered()).not.toContain(99_999);

    await fireEvent.keyDown(viewport, { key: "Home" });
    expect(viewport.scrollTop).toBe(0);
    expect(rendered()[0]).toBe(0);

    await fireEvent.keyDown(viewport, { key: "ArrowDown" });
    await fireEvent.keyDown(viewport, { key: "ArrowDown" });
    expect(viewport.scrollTop).toBe(80);
    await fireEvent.keyDown(viewport, { key: "PageDown" });
    expect(viewport.scrollTop).toBe(80 + VIEWPORT - 40);
    await fireEvent.keyDown(viewport, { key: "ArrowUp" });
    expect(viewport.scrollTop).toBe(VIEWPORT);
    await fireEvent.keyDown(viewport, { key: "ArrowUp", ctrlKey: true });
    expect(viewport.scrollTop).toBe(VIEWPORT);
  });

  it("opens at the end and follows new rows when asked to", async () => {
    const items = Array.from({ length: 1000 }, (_, i) => i);
    const { rerender } = render(VirtualList<number>, {
      props: { items, row, label: "Messages", estimatedRowHeight: 50, stickToBottom: true },
    });
    await tick();
    expect(rendered()).toContain(999);

    await rerender({ items: [...items, 1000], row, label: "Messages", estimatedRowHeight: 50, stickToBottom: true });
    await tick();
    expect(rendered()).toContain(1000);
    expect(list().scrollTop).toBe(1001 * 50 - VIEWPORT);

    // A reader who scrolled up is not dragged down by a new message.
    await scrollTo(0);
    await rerender({
      items: [...items, 1000, 1001],
      row,
      label: "Messages",
      estimatedRowHeight: 50,
      stickToBottom: true,
    });
    await tick();
    expect(list().scrollTop).toBe(0);
    expect(rendered()).not.toContain(1001);
  });

  it("keeps a valid position when rows disappear", async () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const { rerender } = render(VirtualList<number>, {
      props: { items, row, label: "Messages", estimatedRowHeight: 50, getKey: (i: number) => i },
    });
    await scrollTo(100 * 50 - VIEWPORT);
    await rerender({ items: items.slice(0, 10), row, label: "Messages", estimatedRowHeight: 50, getKey: (i: number) => i });
    await tick();
    expect(list().scrollTop).toBe(10 * 50 - VIEWPORT);
    expect(rendered()).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it("keeps the row in view still when older rows are added above it", async () => {
    const items = Array.from({ length: 1000 }, (_, i) => i);
    const props = { row, label: "Messages", estimatedRowHeight: 50, getKey: (i: number) => i };
    const { rerender } = render(VirtualList<number>, { props: { ...props, items } });
    await scrollTo(500 * 50 + 20);
    const older = Array.from({ length: 200 }, (_, i) => i - 200);
    await rerender({ ...props, items: [...older, ...items] });
    await tick();
    expect(list().scrollTop).toBe(700 * 50 + 20);
    expect(rendered()).toContain(500);

    // And when rows above it disappear.
    await rerender({ ...props, items: items.slice(300) });
    await tick();
    expect(list().scrollTop).toBe(200 * 50 + 20);
    expect(rendered()).toContain(500);
  });

  it("asks for older rows once when the start comes into view", async () => {
    const onreachstart = vi.fn();
    render(VirtualList<number>, {
      props: { items: HUNDRED_THOUSAND, row, label: "Messages", estimatedRowHeight: 50, onreachstart },
    });
    await tick();
    expect(onreachstart).toHaveBeenCalledTimes(1);
    await scrollTo(10);
    expect(onreachstart).toHaveBeenCalledTimes(1);
    await scrollTo(50 * 5000);
    await scrollTo(0);
    expect(onreachstart).toHaveBeenCalledTimes(2);
  });

  it("measures rows and keeps the content in view still when rows above it grow", async () => {
    // A ResizeObserver the test drives by hand, and rows that are 100 px tall once laid out.
    const observer = fakeResizeObserver();
    const restore = rowHeightsInLayout(() => 100);
    try {
      render(VirtualList<number>, {
        props: { items: HUNDRED_THOUSAND, row, label: "Messages", estimatedRowHeight: 50, overscan: 2 },
      });
      await scrollTo(50 * 500);
      const rows = observer.rows();
      expect(rows.length).toBeGreaterThan(0);
      const firstVisible = 500;
      const above = rows.filter((el) => Number((el as HTMLElement).dataset.index) < firstVisible).length;
      expect(above).toBe(2);

      observer.notify();
      await tick();

      // Each of the two overscan rows above grew by 50 px; the view moved with them.
      expect(list().scrollTop).toBe(50 * 500 + 2 * 50);
      expect(rendered()).toContain(500);
      const inner = screen.getByRole("list");
      const before = Number.parseFloat(inner.style.paddingTop);
      const after = Number.parseFloat(inner.style.paddingBottom);
      // The list's height is every row at the estimate, plus 50 px per measured row.
      const measuredIndices = new Set(rows.map((el) => Number((el as HTMLElement).dataset.index)));
      const inView = rendered().reduce((sum, i) => sum + (measuredIndices.has(i) ? 100 : 50), 0);
      expect(before + inView + after).toBe(100_000 * 50 + measuredIndices.size * 50);
    } finally {
      restore();
    }
  });

  it("moves the view with a first row that is cut off at the top when it grows", async () => {
    const observer = fakeResizeObserver();
    const restore = rowHeightsInLayout(() => 100);
    try {
      render(VirtualList<number>, {
        props: { items: HUNDRED_THOUSAND, row, label: "Messages", estimatedRowHeight: 50, overscan: 2 },
      });
      // Row 500 starts 20 px above the view.
      await scrollTo(50 * 500 + 20);
      observer.notify();
      await tick();
      // The two rows above and row 500 itself each grew by 50 px: what the reader sees of row
      // 500 (its lower part) and everything after it stay put.
      expect(list().scrollTop).toBe(50 * 500 + 20 + 3 * 50);
    } finally {
      restore();
    }
  });
});

describe("VirtualList, when rows arrive above the reader", () => {
  /** Counts what the list does to the viewport that makes a browser lay out: reads and scroll writes. */
  function watchLayout(viewport: HTMLElement) {
    const counts = { heightReads: 0, scrollWrites: 0 };
    let top = viewport.scrollTop;
    Object.defineProperty(viewport, "scrollTop", {
      configurable: true,
      get: () => top,
      set: (value: number) => {
        counts.scrollWrites++;
        top = value;
      },
    });
    Object.defineProperty(viewport, "scrollHeight", {
      configurable: true,
      get: () => {
        counts.heightReads++;
        return 0;
      },
    });
    return counts;
  }

  it("keeps the rows on screen, creates none above them and moves the view with one write", async () => {
    const items = Array.from({ length: 1000 }, (_, i) => i);
    const props = { row, label: "Messages", estimatedRowHeight: 50, overscan: 3, getKey: (i: number) => i };
    const { rerender } = render(VirtualList<number>, { props: { ...props, items } });
    // The reader is at the top of what is loaded, where an older page is asked for.
    await scrollTo(0);
    const onScreen = new Map(Array.from(document.querySelectorAll<HTMLElement>(".row"), (el) => [el.textContent, el]));
    const counts = watchLayout(list());

    const older = Array.from({ length: 100 }, (_, i) => i - 100);
    await rerender({ ...props, items: [...older, ...items] });
    await tick();

    expect(list().scrollTop).toBe(100 * 50);
    expect(counts).toEqual({ heightReads: 0, scrollWrites: 1 });
    // The same elements, now further down the list; no row of the new page is rendered yet.
    const rows = Array.from(document.querySelectorAll<HTMLElement>(".row"));
    expect(rows.map((el) => el.textContent)).toEqual(Array.from(onScreen.keys()));
    for (const el of rows) expect(el).toBe(onScreen.get(el.textContent));
    expect(rows[0]?.getAttribute("aria-posinset")).toBe("101");
    expect(rows[0]?.getAttribute("aria-setsize")).toBe("1100");

    // The reader's next scroll brings back the rows rendered above the view.
    await scrollTo(100 * 50 - 10);
    expect(rendered().slice(0, 4)).toEqual([-4, -3, -2, -1]);
  });

  it("keeps what follows the first row in place when that row moves away", async () => {
    // Like a day separator: when the older page has messages of the same day, the separator
    // moves up to the first of them, and the message after it is what stays put.
    const day = 1_000_000;
    const loaded = [day, ...Array.from({ length: 100 }, (_, i) => i + 1)];
    const props = { row, label: "Messages", estimatedRowHeight: 50, getKey: (i: number) => i };
    const { rerender } = render(VirtualList<number>, { props: { ...props, items: loaded } });
    await scrollTo(0);

    const page = [2_000_000, -4, -3, day, -2, -1];
    await rerender({ ...props, items: [...page, ...loaded.slice(1)] });
    await tick();
    // Message 1 was 50 px below the top of the view; it still is, below the end of message -1.
    expect(list().scrollTop).toBe(6 * 50 - 50);
    expect(rendered().slice(0, 2)).toEqual([-1, 1]);
  });

  it("asks for older rows within the given screens of the start, and again on scrolling further up", async () => {
    const onreachstart = vi.fn();
    const items = Array.from({ length: 1000 }, (_, i) => i);
    render(VirtualList<number>, {
      props: { items, row, label: "Messages", estimatedRowHeight: 50, reachStartScreens: 2, onreachstart },
    });
    await scrollTo(50 * 900);
    onreachstart.mockClear();
    await scrollTo(2 * VIEWPORT + 100);
    expect(onreachstart).not.toHaveBeenCalled();
    await scrollTo(2 * VIEWPORT);
    expect(onreachstart).toHaveBeenCalledTimes(1);
    await scrollTo(2 * VIEWPORT - 50);
    expect(onreachstart).toHaveBeenCalledTimes(2);
    await scrollTo(2 * VIEWPORT - 20);
    expect(onreachstart).toHaveBeenCalledTimes(2);
  });
});
