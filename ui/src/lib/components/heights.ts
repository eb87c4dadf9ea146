// Row offsets for the virtualized list. A Fenwick tree keeps prefix sums of row heights, so with
// 100,000 rows both "where does row i start" and "which row is at pixel y" cost O(log n), and a
// row that turns out taller than estimated updates in O(log n) instead of re-summing the list.
// The tree keeps free room before and after the rows, so a page of rows added at either end (older
// history above, new messages below) costs O(page log n), not a rebuild of 100,000.

/** A height as the index keeps it: a finite, non-negative number, else 0. */
function valid(height: number | undefined): number {
  return height !== undefined && height > 0 && height < Number.POSITIVE_INFINITY ? height : 0;
}

/** Prefix sums of row heights with O(log n) update, offset and lookup. */
export class RowHeights {
  /** Row heights at positions [first, first + count); the free positions around them hold 0. */
  private heights: Float64Array;
  /** Fenwick tree over every position, free ones included, so they add nothing to a sum. */
  private tree: Float64Array;
  private topBit: number;
  private first: number;
  private count: number;

  /**
   * Builds the index in O(n) from each row's current (measured or estimated) height, with room
   * for `roomBefore` and `roomAfter` more rows at its ends.
   */
  constructor(heights: ArrayLike<number>, roomBefore = 0, roomAfter = 0) {
    const count = heights.length;
    const capacity = roomBefore + count + roomAfter;
    this.heights = new Float64Array(capacity);
    this.tree = new Float64Array(capacity + 1);
    // Plain indexed loops over typed arrays: this runs on every change to a 100,000-row list.
    for (let i = 0; i < count; i++) {
      const height = valid(heights[i]);
      this.heights[roomBefore + i] = height;
      this.tree[roomBefore + i + 1] = height;
    }
    for (let i = 1; i <= capacity; i++) {
      const parent = i + (i & -i);
      if (parent <= capacity) this.tree[parent] = (this.tree[parent] as number) + (this.tree[i] as number);
    }
    let bit = 1;
    while (bit * 2 <= capacity) bit *= 2;
    this.topBit = capacity === 0 ? 0 : bit;
    this.first = roomBefore;
    this.count = count;
  }

  /** Number of rows. */
  get length(): number {
    return this.count;
  }

  /** The height of row `index`. */
  height(index: number): number {
    return index >= 0 && index < this.count ? (this.heights[this.first + index] as number) : 0;
  }

  /** The heights of rows [start, end), as a view of this index's own storage (copy to keep). */
  heightsBetween(start: number, end: number): Float64Array {
    return this.heights.subarray(this.first + start, this.first + end);
  }

  /** Changes one row's height; returns how much it grew (negative if it shrank). */
  set(index: number, height: number): number {
    if (index < 0 || index >= this.count || !Number.isFinite(height) || height < 0) return 0;
    return this.put(this.first + index, height);
  }

  /** Where row `index` starts: the sum of the heights of rows before it. */
  offset(index: number): number {
    return this.prefix(this.first + Math.min(Math.max(index, 0), this.count));
  }

  /** The height of all rows. */
  total(): number {
    return this.prefix(this.first + this.count);
  }

  /** The row that covers pixel `y` (clamped to the first and last rows; 0 when empty). */
  indexAt(y: number): number {
    if (this.count === 0 || y <= 0) return 0;
    // Find the largest position p with prefix(p) <= y; the row at p covers y. The free room
    // before the rows sums to 0, so p is never before the first row.
    const capacity = this.heights.length;
    let position = 0;
    let remaining = y;
    for (let bit = this.topBit; bit > 0; bit >>= 1) {
      const next = position + bit;
      const size = this.tree[next] ?? 0;
      if (next <= capacity && size <= remaining) {
        position = next;
        remaining -= size;
      }
    }
    return Math.min(Math.max(position - this.first, 0), this.count - 1);
  }

  /**
   * These rows with the first `dropped` of them replaced by rows `heights` high (an older page
   * added above, whose last day's separator took the place of the first row here). In
   * O((page + dropped) log n) while the room lasts, else rebuilt with more room. The result
   * shares this index's storage: this one must not be used afterwards.
   */
  withStart(dropped: number, heights: ArrayLike<number>): RowHeights {
    const added = heights.length;
    const first = this.first + dropped - added;
    if (dropped < 0 || dropped > this.count) return this;
    if (first < 0) {
      const rows = new Float64Array(added + this.count - dropped);
      for (let i = 0; i < added; i++) rows[i] = valid(heights[i]);
      rows.set(this.heightsBetween(dropped, this.count), added);
      const roomAfter = this.heights.length - this.first - this.count;
      return new RowHeights(rows, Math.max(added, rows.length >> 1), roomAfter);
    }
    const next = this.sharing(first, this.count - dropped + added);
    // Positions from the new first row to the old first kept one: the added rows, and free
    // room where dropped rows were not replaced.
    const end = this.first + dropped;
    for (let position = Math.min(first, this.first); position < end; position++) {
      next.put(position, position >= first ? valid(heights[position - first]) : 0);
    }
    return next;
  }

  /**
   * These rows with the last `dropped` of them replaced by rows `heights` high (new messages
   * added below). In O((added + dropped) log n) while the room lasts, else rebuilt with more
   * room. The result shares this index's storage: this one must not be used afterwards.
   */
  withEnd(dropped: number, heights: ArrayLike<number>): RowHeights {
    const added = heights.length;
    if (dropped < 0 || dropped > this.count) return this;
    const kept = this.count - dropped;
    const count = kept + added;
    if (this.first + count > this.heights.length) {
      const rows = new Float64Array(count);
      rows.set(this.heightsBetween(0, kept), 0);
      for (let i = 0; i < added; i++) rows[kept + i] = valid(heights[i]);
      return new RowHeights(rows, this.first, Math.max(added, count >> 1));
    }
    const next = this.sharing(this.first, count);
    const start = this.first + kept;
    const end = this.first + Math.max(this.count, count);
    for (let position = start; position < end; position++) {
      const row = position - start;
      next.put(position, row < added ? valid(heights[row]) : 0);
    }
    return next;
  }

  /** An index over this one's storage, with its rows at [first, first + count). */
  private sharing(first: number, count: number): RowHeights {
    const next = new RowHeights([]);
    next.heights = this.heights;
    next.tree = this.tree;
    next.topBit = this.topBit;
    next.first = first;
    next.count = count;
    return next;
  }

  /** Sets the height at a storage position; returns the change. */
  private put(position: number, height: number): number {
    const delta = height - (this.heights[position] as number);
    if (delta === 0) return 0;
    this.heights[position] = height;
    for (let i = position + 1; i < this.tree.length; i += i & -i) this.tree[i] = (this.tree[i] as number) + delta;
    return delta;
  }

  /** The sum of the heights at storage positions before `position`. */
  private prefix(position: number): number {
    let sum = 0;
    for (let i = position; i > 0; i -= i & -i) sum += this.tree[i] as number;
    return sum;
  }
}

/**
 * How many rows `next` shares with `previous` at each end: `head` leading items that are the
 * same (===) at the same positions, and `tail` trailing ones, never overlapping the head.
 */
export function sharedEnds<T>(previous: readonly T[], next: readonly T[]): { head: number; tail: number } {
  const shortest = Math.min(previous.length, next.length);
  let head = 0;
  while (head < shortest && next[head] === previous[head]) head++;
  let tail = 0;
  const last = previous.length - 1;
  const nextLast = next.length - 1;
  while (head + tail < shortest && next[nextLast - tail] === previous[last - tail]) tail++;
  return { head, tail };
}

/** What a `RowHeights` was built for, so the next list can reuse its heights. */
export interface BuiltRows<T> {
  readonly items: readonly T[];
  readonly rows: RowHeights;
}

/**
 * The index for `items`, each row `heightOf(item, index)` high, made from `previous` where the
 * two lists share their ends: rows kept at the start (new messages after them), and, when
 * `keyed` (a row's height belongs to its item, not its position), rows kept at the end, which is
 * where the loaded history sits when an older page arrives. Kept rows keep their heights (they
 * equal `heightOf` for them, since the list keeps both in step); only the other rows are asked
 * for, and added to `previous` in place when only one end changed, so prepending a page to
 * 100,000 rows costs a page of lookups and O(page log n). `previous.rows` must not be used
 * afterwards.
 */
export function rowHeightsFor<T>(
  items: readonly T[],
  heightOf: (item: T, index: number) => number,
  previous: BuiltRows<T> | null,
  keyed: boolean,
): RowHeights {
  const heightsOf = (start: number, end: number) => {
    const heights = new Float64Array(end - start);
    for (let index = start; index < end; index++) heights[index - start] = heightOf(items[index] as T, index);
    return heights;
  };
  if (previous === null || previous.rows.length !== previous.items.length) {
    return new RowHeights(heightsOf(0, items.length));
  }
  const { head, tail: shared } = sharedEnds(previous.items, items);
  const kept = previous.items.length;
  // Rows keyed by position keep a height only where they keep their position.
  const tail = keyed || items.length === kept ? shared : 0;
  if (head === 0 && tail > 0) return previous.rows.withStart(kept - tail, heightsOf(0, items.length - tail));
  if (tail === 0 && head > 0) return previous.rows.withEnd(kept - head, heightsOf(head, items.length));
  if (head === 0) return new RowHeights(heightsOf(0, items.length));
  // Both ends kept, something changed between them: copy the ends, ask for the middle.
  const heights = new Float64Array(items.length);
  heights.set(previous.rows.heightsBetween(0, head), 0);
  heights.set(previous.rows.heightsBetween(kept - tail, kept), items.length - tail);
  heights.set(heightsOf(head, items.length - tail), head);
  return new RowHeights(heights);
}

/** The rows to render for a viewport: [start, end) plus the space above and below them. */
export interface RowRange {
  start: number;
  end: number;
  before: number;
  after: number;
}

/**
 * The rows visible between `scrollTop` and `scrollTop + viewport`, widened by `overscan` below
 * and by `overscanAbove` (the same unless given) above.
 */
export function visibleRange(
  rows: RowHeights,
  scrollTop: number,
  viewport: number,
  overscan: number,
  overscanAbove = overscan,
): RowRange {
  if (rows.length === 0) return { start: 0, end: 0, before: 0, after: 0 };
  const first = rows.indexAt(scrollTop);
  const last = rows.indexAt(scrollTop + Math.max(viewport, 1) - 0.5);
  const start = Math.max(0, first - overscanAbove);
  const end = Math.min(rows.length, last + 1 + overscan);
  const before = rows.offset(start);
  return { start, end, before, after: rows.total() - rows.offset(end) };
}
