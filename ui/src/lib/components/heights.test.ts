import { describe, expect, it } from "vitest";
import { RowHeights, visibleRange } from "./heights";

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
