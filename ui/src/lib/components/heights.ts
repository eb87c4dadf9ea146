// Row offsets for the virtualized list. A Fenwick tree keeps prefix sums of row heights, so with
// 100,000 rows both "where does row i start" and "which row is at pixel y" cost O(log n), and a
// row that turns out taller than estimated updates in O(log n) instead of re-summing the list.

/** Prefix sums of row heights with O(log n) update, offset and lookup. */
export class RowHeights {
  /** Number of rows. */
  readonly length: number;
  private readonly heights: Float64Array;
  private readonly tree: Float64Array;
  private readonly topBit: number;

  /** Builds the index in O(n) from each row's current (measured or estimated) height. */
  constructor(heights: ArrayLike<number>) {
    const length = heights.length;
    this.length = length;
    this.heights = new Float64Array(length);
    this.tree = new Float64Array(length + 1);
    // Plain indexed loops over typed arrays: this runs on every change to a 100,000-row list.
    for (let i = 0; i < length; i++) {
      const h = heights[i] as number;
      const height = h > 0 && h < Number.POSITIVE_INFINITY ? h : 0;
      this.heights[i] = height;
      this.tree[i + 1] = height;
    }
    for (let i = 1; i <= length; i++) {
      const parent = i + (i & -i);
      if (parent <= length) this.tree[parent] = (this.tree[parent] as number) + (this.tree[i] as number);
    }
    let bit = 1;
    while (bit * 2 <= length) bit *= 2;
    this.topBit = length === 0 ? 0 : bit;
  }

  /** The height of row `index`. */
  height(index: number): number {
    return this.heights[index] ?? 0;
  }

  /** Changes one row's height; returns how much it grew (negative if it shrank). */
  set(index: number, height: number): number {
    if (index < 0 || index >= this.length || !Number.isFinite(height) || height < 0) return 0;
    const delta = height - (this.heights[index] ?? 0);
    if (delta === 0) return 0;
    this.heights[index] = height;
    for (let i = index + 1; i <= this.length; i += i & -i) this.tree[i] = (this.tree[i] ?? 0) + delta;
    return delta;
  }

  /** Where row `index` starts: the sum of the heights of rows before it. */
  offset(index: number): number {
    let sum = 0;
    for (let i = Math.min(Math.max(index, 0), this.length); i > 0; i -= i & -i) sum += this.tree[i] ?? 0;
    return sum;
  }

  /** The height of all rows. */
  total(): number {
    return this.offset(this.length);
  }

  /** The row that covers pixel `y` (clamped to the first and last rows; 0 when empty). */
  indexAt(y: number): number {
    if (this.length === 0 || y <= 0) return 0;
    // Find the largest k with offset(k) <= y; row k then covers y.
    let position = 0;
    let remaining = y;
    for (let bit = this.topBit; bit > 0; bit >>= 1) {
      const next = position + bit;
      const size = this.tree[next] ?? 0;
      if (next <= this.length && size <= remaining) {
        position = next;
        remaining -= size;
      }
    }
    return Math.min(position, this.length - 1);
  }
}

/** The rows to render for a viewport: [start, end) plus the space above and below them. */
export interface RowRange {
  start: number;
  end: number;
  before: number;
  after: number;
}

/** The rows visible between `scrollTop` and `scrollTop + viewport`, widened by `overscan`. */
export function visibleRange(
  rows: RowHeights,
  scrollTop: number,
  viewport: number,
  overscan: number,
): RowRange {
  if (rows.length === 0) return { start: 0, end: 0, before: 0, after: 0 };
  const first = rows.indexAt(scrollTop);
  const last = rows.indexAt(scrollTop + Math.max(viewport, 1) - 0.5);
  const start = Math.max(0, first - overscan);
  const end = Math.min(rows.length, last + 1 + overscan);
  const before = rows.offset(start);
  return { start, end, before, after: rows.total() - rows.offset(end) };
}
