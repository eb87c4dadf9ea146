import { describe, expect, it } from "vitest";
import { RowHeights, rowHeightsFor, sharedEnds, visibleRange } from "./heights";

/** A small deterministic generator so failures reproduce. */
function rng(seed: number) {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

function naiveOffset(heights: number[], index: number) {
  return heights.slice(0, index).reduce((a, b) => a + b, 0);
}

describe("RowHeights", () => {
  it("matches naive prefix sums through random updates", () => {
    const random = rng(7);
    const heights = Array.from({ length: 257 }, () => Math.floor(random() * 100) + 1);
    const rows = new RowHeights(heights);
    for (let round = 0; round < 500; round++) {
      const index = Math.floor(random() * heights.length);
      const height = Math.floor(random() * 200) + 1;
      expect(rows.set(index, height)).toBe(height - (heights[index] ?? 0));
      heights[index] = height;
      const probe = Math.floor(random() * (heights.length + 1));
      expect(rows.offset(probe)).toBe(naiveOffset(heights, probe));
    }
    expect(rows.total()).toBe(naiveOffset(heights, heights.length));
  });

  it("finds the row under a pixel", () => {
    const heights = [10, 20, 30, 40];
    const rows = new RowHeights(heights);
    expect(rows.indexAt(-5)).toBe(0);
    expect(rows.indexAt(0)).toBe(0);
    expect(rows.indexAt(9.9)).toBe(0);
    expect(rows.indexAt(10)).toBe(1);
    expect(rows.indexAt(29)).toBe(1);
    expect(rows.indexAt(30)).toBe(2);
    expect(rows.indexAt(60)).toBe(3);
    expect(rows.indexAt(1e9)).toBe(3);
    const random = rng(3);
    const many = Array.from({ length: 1000 }, () => Math.floor(random() * 50) + 1);
    const big = new RowHeights(many);
    for (let probe = 0; probe < 200; probe++) {
      const y = random() * big.total();
      const index = big.indexAt(y);
      expect(big.offset(index)).toBeLessThanOrEqual(y);
      expect(big.offset(index + 1)).toBeGreaterThan(y);
    }
  });

  it("matches naive prefix sums as rows are added and dropped at both ends", () => {
    const random = rng(5);
    const height = () => Math.floor(random() * 90) + 10;
    let heights = Array.from({ length: 50 }, height);
    let rows = new RowHeights(heights);
    for (let round = 0; round < 300; round++) {
      const dropped = Math.floor(random() * Math.min(3, heights.length + 1));
      const added = Array.from({ length: Math.floor(random() * 120) }, height);
      if (round % 2 === 0) {
        rows = rows.withStart(dropped, added);
        heights = [...added, ...heights.slice(dropped)];
      } else {
        rows = rows.withEnd(dropped, added);
        heights = [...heights.slice(0, heights.length - dropped), ...added];
      }
      // Measurements land in the index as before.
      const index = Math.floor(random() * heights.length);
      const measured = height();
      rows.set(index, measured);
      heights[index] = measured;
      expect(rows.length).toBe(heights.length);
      for (let probe = 0; probe < 5; probe++) {
        const i = Math.floor(random() * (heights.length + 1));
        expect(rows.offset(i)).toBe(naiveOffset(heights, i));
        expect(rows.height(i)).toBe(heights[i] ?? 0);
        const y = random() * rows.total();
        const at = rows.indexAt(y);
        expect(rows.offset(at)).toBeLessThanOrEqual(y);
        expect(rows.offset(at + 1)).toBeGreaterThan(y);
      }
      expect(rows.total()).toBe(naiveOffset(heights, heights.length));
      expect(rows.indexAt(rows.total() + 1000)).toBe(heights.length - 1);
    }
  });

  it("ignores bad heights and out-of-range updates", () => {
    const rows = new RowHeights([10, Number.NaN, -4, 10]);
    expect(rows.total()).toBe(20);
    expect(rows.set(9, 100)).toBe(0);
    expect(rows.set(0, Number.POSITIVE_INFINITY)).toBe(0);
    expect(rows.total()).toBe(20);
    expect(new RowHeights([]).indexAt(100)).toBe(0);
  });
});

describe("visibleRange", () => {
  it("covers the viewport plus overscan and accounts for the space around it", () => {
    const rows = new RowHeights(new Array(100_000).fill(50));
    expect(visibleRange(rows, 0, 400, 3)).toEqual({ start: 0, end: 11, before: 0, after: 50 * 99_989 });
    const middle = visibleRange(rows, 50 * 50_000 + 25, 400, 3);
    expect(middle.start).toBe(49_997);
    expect(middle.end).toBe(50_012);
    expect(middle.before).toBe(49_997 * 50);
    expect(middle.before + (middle.end - middle.start) * 50 + middle.after).toBe(rows.total());
    const bottom = visibleRange(rows, rows.total() - 400, 400, 3);
    expect(bottom.end).toBe(100_000);
    expect(bottom.after).toBe(0);
    expect(visibleRange(new RowHeights([]), 0, 400, 3)).toEqual({ start: 0, end: 0, before: 0, after: 0 });
  });
});

describe("sharedEnds", () => {
  it("counts the items kept at the start and at the end, never twice", () => {
    const [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map((name) => ({ name }));
    expect(sharedEnds([a, b, c], [a, b, c, d])).toEqual({ head: 3, tail: 0 });
    expect(sharedEnds([b, c], [d, e, b, c])).toEqual({ head: 0, tail: 2 });
    expect(sharedEnds([a, b, c], [a, d, c])).toEqual({ head: 1, tail: 1 });
    // The same list: everything is head, nothing is counted again as tail.
    expect(sharedEnds([a, b], [a, b])).toEqual({ head: 2, tail: 0 });
    expect(sharedEnds([a, a], [a, a, a])).toEqual({ head: 2, tail: 0 });
    expect(sharedEnds([], [a])).toEqual({ head: 0, tail: 0 });
    expect(sharedEnds([a], [])).toEqual({ head: 0, tail: 0 });
  });
});

describe("rowHeightsFor", () => {
  /** Heights by key, as VirtualList keeps its measurements, and the full rebuild it replaces. */
  const heightsByKey = new Map<number, number>();
  const heightOf = (item: { key: number }) => heightsByKey.get(item.key) ?? 64;
  const rebuilt = (items: { key: number }[]) => new RowHeights(items.map((item) => heightOf(item)));
  const offsets = (rows: RowHeights) => Array.from({ length: rows.length + 1 }, (_, i) => rows.offset(i));
  const expectSame = (actual: RowHeights, expected: RowHeights) => {
    expect(Array.from(actual.heightsBetween(0, actual.length))).toEqual(Array.from(expected.heightsBetween(0, expected.length)));
    expect(offsets(actual)).toEqual(offsets(expected));
  };

  it("equals a full rebuild through pages added before, rows added after and rows replaced", () => {
    const random = rng(11);
    let nextKey = 0;
    const make = (count: number) => Array.from({ length: count }, () => ({ key: nextKey++ }));
    let items = make(300);
    let rows = rowHeightsFor(items, heightOf, null, true);
    expectSame(rows, rebuilt(items));
    for (let round = 0; round < 40; round++) {
      // Some rendered rows get measured, as they would on screen.
      for (let i = 0; i < 10; i++) {
        const index = Math.floor(random() * items.length);
        const height = 40 + Math.floor(random() * 80);
        heightsByKey.set((items[index] as { key: number }).key, height);
        rows.set(index, height);
      }
      const previous = { items, rows };
      const change = round % 4;
      if (change === 0) items = [...make(100), ...items];
      else if (change === 1) items = [...items, ...make(3)];
      else if (change === 2) items = [...make(50), ...items.slice(1)];
      else items = items.map((item, i) => (i === 7 ? { key: item.key } : item));
      rows = rowHeightsFor(items, heightOf, previous, true);
      expectSame(rows, rebuilt(items));
    }
  });

  it("asks only for the rows it does not have", () => {
    const items = Array.from({ length: 100_000 }, (_, key) => ({ key }));
    const previous = { items, rows: rowHeightsFor(items, heightOf, null, true) };
    const page = Array.from({ length: 100 }, (_, i) => ({ key: -1 - i }));
    const asked: number[] = [];
    const rows = rowHeightsFor(
      [...page, ...items],
      (item, index) => {
        asked.push(index);
        return heightOf(item);
      },
      previous,
      true,
    );
    expect(asked).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(rows.total()).toBe(previous.rows.total() + 100 * 64);
  });

  it("keeps no height by position when rows are keyed by position and move", () => {
    const items = [{ key: 1 }, { key: 2 }];
    const previous = { items, rows: new RowHeights([10, 20]) };
    const asked: number[] = [];
    rowHeightsFor([{ key: 0 }, ...items], (_item, index) => (asked.push(index), 30), previous, false);
    expect(asked).toEqual([0, 1, 2]);
  });
});
