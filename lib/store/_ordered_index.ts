/**
 * The memory store's index: tasks in `(at, order)` order, with lazy
 * removal. The store keeps one for claimable tasks (by `runAt`) and one per
 * finished status (by `updatedAt`).
 *
 * @module
 */

/** A task's place in one {@linkcode OrderedIndex}. */
export interface IndexEntry {
  /** The task's id. */
  id: string;
  /** The time it is ordered by. */
  at: number;
  /** Insertion order among equal times (the `rowid` twin). */
  order: number;
  /**
   * Matches the task's current token while this entry is the task's live
   * place; a task moved elsewhere (claimed, finished, deleted) leaves a
   * dead entry behind, dropped when met.
   */
  token: number;
}

/** Which entries {@linkcode OrderedIndex.countBefore} counts. */
export interface CountOptions {
  /**
   * Count entries at `limit` too.
   *
   * @default {false}
   */
  inclusive?: boolean;
  /**
   * Count only the entries this accepts (called for live entries only).
   *
   * @default {undefined}
   */
  where?: (entry: IndexEntry) => boolean;
}

function before(a: IndexEntry, b: IndexEntry): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

/**
 * Entries in `(at, order)` order, held in two sorted sources merged when
 * read: a FIFO for entries that arrive in order (the common case, O(1))
 * and a min-heap for the rest (O(log n)). Entries are never removed by id:
 * an entry whose token no longer matches its task is dead, skipped and
 * dropped when it reaches the front, and {@linkcode OrderedIndex.compact}
 * drops those left behind in the middle, so the index holds O(live)
 * entries.
 */
export class OrderedIndex {
  #fifo: IndexEntry[] = [];
  #head = 0;
  #heap: IndexEntry[] = [];
  #live: (entry: IndexEntry) => boolean;

  /**
   * @param live Whether an entry is its task's live place.
   */
  constructor(live: (entry: IndexEntry) => boolean) {
    this.#live = live;
  }

  /** Entries held, live or dead. */
  get size(): number {
    return this.#fifo.length - this.#head + this.#heap.length;
  }

  /** Adds an entry. */
  push(entry: IndexEntry): void {
    const tail = this.#fifo[this.#fifo.length - 1];
    if (this.#head >= this.#fifo.length || !before(entry, tail!)) {
      this.#fifo.push(entry);
    } else {
      this.#heapPush(entry);
    }
  }

  /** The earliest live entry, dropping dead ones on the way. */
  peek(): IndexEntry | undefined {
    while (
      this.#head < this.#fifo.length && !this.#live(this.#fifo[this.#head]!)
    ) {
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#fifo.length) {
      this.#fifo = this.#fifo.slice(this.#head);
      this.#head = 0;
    }
    while (this.#heap.length > 0 && !this.#live(this.#heap[0]!)) {
      this.#heapPop();
    }
    const a = this.#head < this.#fifo.length
      ? this.#fifo[this.#head]
      : undefined;
    const b = this.#heap[0];
    if (a === undefined) return b;
    if (b === undefined) return a;
    return before(b, a) ? b : a;
  }

  /**
   * Counts the live entries with `at` below `limit` (or up to it, when
   * `inclusive`) that `where` accepts: the FIFO's front up to the first
   * later entry, and the heap.
   */
  countBefore(limit: number, options: CountOptions = {}): number {
    const { inclusive = false, where } = options;
    const early = (entry: IndexEntry): boolean =>
      inclusive ? entry.at <= limit : entry.at < limit;
    const counts = (entry: IndexEntry): boolean =>
      this.#live(entry) && (where === undefined || where(entry));
    let count = 0;
    for (let i = this.#head; i < this.#fifo.length; i++) {
      const entry = this.#fifo[i]!;
      if (!early(entry)) break;
      if (counts(entry)) count++;
    }
    for (const entry of this.#heap) {
      if (early(entry) && counts(entry)) count++;
    }
    return count;
  }

  /**
   * Drops the dead entries when they outnumber the live ones (plus a
   * slack, so small indexes are never rebuilt): amortized O(1) per entry
   * pushed. Entries die in the middle when a task leaves by another way
   * than the front (a dead task requeued, a record pruned).
   *
   * @param live How many live entries the index holds.
   */
  compact(live: number): void {
    if (this.size <= 2 * live + 1024) return;
    this.#fifo = this.#fifo.slice(this.#head).filter(this.#live);
    this.#head = 0;
    const heap = this.#heap.filter(this.#live);
    this.#heap = [];
    for (const entry of heap) this.#heapPush(entry);
  }

  /** Drops every entry. */
  clear(): void {
    this.#fifo = [];
    this.#head = 0;
    this.#heap = [];
  }

  #heapPush(entry: IndexEntry): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = heap[parent]!;
      if (!before(entry, above)) break;
      heap[i] = above;
      i = parent;
    }
    heap[i] = entry;
  }

  #heapPop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && before(heap[left]!, heap[smallest]!)) {
        smallest = left;
      }
      if (right < heap.length && before(heap[right]!, heap[smallest]!)) {
        smallest = right;
      }
      if (smallest === i) return;
      const below = heap[smallest]!;
      heap[smallest] = heap[i]!;
      heap[i] = below;
      i = smallest;
    }
  }
}
