/**
 * A growable first-in, first-out ring buffer with O(1) `push` and `shift`.
 * Internal to the package: the channel keeps its items in one and the
 * semaphore and channel keep their waiters in one.
 *
 * @module
 */

const MIN_CAPACITY = 8;

/**
 * A first-in, first-out queue stored in a power-of-two array used as a ring.
 * `push` and `shift` are O(1) (amortized for `push`, which doubles the array
 * when it is full); nothing moves the items already stored.
 *
 * @typeParam T The type of the stored values.
 *
 * @example Queueing and dequeueing in order
 * ```ts
 * import { RingBuffer } from "./ring_buffer.ts";
 * import assert from "node:assert/strict";
 *
 * const ring = new RingBuffer<number>();
 * ring.push(1);
 * ring.push(2);
 * assert.equal(ring.shift(), 1);
 * assert.equal(ring.peek(), 2);
 * assert.equal(ring.length, 1);
 * ```
 */
export class RingBuffer<T> {
  // Slots outside [head, head + length) always hold `undefined`, so a
  // dequeued value is never kept alive by the buffer.
  #slots: (T | undefined)[];
  #mask: number;
  #head = 0;
  #length = 0;

  /**
   * Creates an empty ring buffer.
   *
   * @param initialCapacity Slots to allocate up front, rounded up to a power
   * of two (at least 8). The buffer grows past it as needed.
   * @throws {RangeError} If `initialCapacity` is not an integer >= 0.
   *
   * @example Reserving room for 1,000 items
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<string>(1000);
   * assert.equal(ring.capacity, 1024);
   * ```
   */
  constructor(initialCapacity = MIN_CAPACITY) {
    if (!Number.isInteger(initialCapacity) || initialCapacity < 0) {
      throw new RangeError(
        `Cannot create ring buffer: initialCapacity must be an integer >= 0, received ${initialCapacity}`,
      );
    }
    let capacity = MIN_CAPACITY;
    while (capacity < initialCapacity) capacity *= 2;
    this.#slots = new Array<T | undefined>(capacity).fill(undefined);
    this.#mask = capacity - 1;
  }

  /**
   * The number of stored values.
   *
   * @returns The number of values `shift` can still return.
   *
   * @example Counting stored values
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<number>();
   * ring.push(7);
   * assert.equal(ring.length, 1);
   * ```
   */
  get length(): number {
    return this.#length;
  }

  /**
   * The number of allocated slots, always a power of two.
   *
   * @returns How many values fit before the next growth.
   *
   * @example Growing past the initial capacity
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<number>(8);
   * for (let i = 0; i < 9; i++) ring.push(i);
   * assert.equal(ring.capacity, 16);
   * ```
   */
  get capacity(): number {
    return this.#slots.length;
  }

  /**
   * Appends a value at the tail, doubling the storage when it is full.
   *
   * @param value The value to append.
   *
   * @example Appending
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<string>();
   * ring.push("a");
   * assert.deepEqual([...ring], ["a"]);
   * ```
   */
  push(value: T): void {
    if (this.#length === this.#slots.length) this.#grow();
    this.#slots[(this.#head + this.#length) & this.#mask] = value;
    this.#length++;
  }

  /**
   * Removes and returns the value at the head.
   *
   * @returns The oldest value, or `undefined` when the buffer is empty.
   *
   * @example Dequeueing
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<number>();
   * ring.push(1);
   * assert.equal(ring.shift(), 1);
   * assert.equal(ring.shift(), undefined);
   * ```
   */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const head = this.#head;
    const value = this.#slots[head];
    this.#slots[head] = undefined;
    this.#head = (head + 1) & this.#mask;
    this.#length--;
    return value;
  }

  /**
   * Returns the value at the head without removing it.
   *
   * @returns The oldest value, or `undefined` when the buffer is empty.
   *
   * @example Looking at the head
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<number>();
   * ring.push(1);
   * assert.equal(ring.peek(), 1);
   * assert.equal(ring.length, 1);
   * ```
   */
  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#slots[this.#head];
  }

  /**
   * Removes every value. The allocated storage is kept.
   *
   * @example Emptying
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<number>();
   * ring.push(1);
   * ring.clear();
   * assert.equal(ring.length, 0);
   * ```
   */
  clear(): void {
    this.#slots.fill(undefined);
    this.#head = 0;
    this.#length = 0;
  }

  /**
   * Keeps only the values for which `keep` returns true, preserving their
   * order, in one O(n) pass.
   *
   * @param keep Called once per value, head first.
   * @returns How many values were removed.
   *
   * @example Dropping cancelled entries
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<number>();
   * for (let i = 0; i < 6; i++) ring.push(i);
   * assert.equal(ring.retain((n) => n % 2 === 0), 3);
   * assert.deepEqual([...ring], [0, 2, 4]);
   * ```
   */
  retain(keep: (value: T) => boolean): number {
    const slots = this.#slots;
    const mask = this.#mask;
    const head = this.#head;
    const length = this.#length;
    let kept = 0;
    for (let i = 0; i < length; i++) {
      const value = slots[(head + i) & mask] as T;
      if (keep(value)) {
        slots[(head + kept) & mask] = value;
        kept++;
      }
    }
    for (let i = kept; i < length; i++) slots[(head + i) & mask] = undefined;
    this.#length = kept;
    return length - kept;
  }

  /**
   * Iterates the stored values from head to tail without removing them.
   * The buffer must not be changed while the iteration runs.
   *
   * @returns An iterator over the values, oldest first.
   *
   * @example Spreading into an array
   * ```ts
   * import { RingBuffer } from "./ring_buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const ring = new RingBuffer<number>();
   * ring.push(1);
   * ring.push(2);
   * assert.deepEqual([...ring], [1, 2]);
   * ```
   */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#length; i++) {
      yield this.#slots[(this.#head + i) & this.#mask] as T;
    }
  }

  #grow(): void {
    const old = this.#slots;
    const capacity = old.length * 2;
    const slots = new Array<T | undefined>(capacity).fill(undefined);
    for (let i = 0; i < this.#length; i++) {
      slots[i] = old[(this.#head + i) & this.#mask];
    }
    this.#slots = slots;
    this.#mask = capacity - 1;
    this.#head = 0;
  }
}
