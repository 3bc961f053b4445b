/**
 * The ids a streamed submission committed, kept compactly: 16 bytes per
 * UUID and one byte for its flag, so a million ids cost about 17 MB rather
 * than a string object each.
 *
 * @module
 */

/** A canonical lowercase UUID, the only form packed into 16 bytes. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Ids per block: 68 KiB a block. */
const BLOCK = 4096;

/** Two hex digits per byte value. */
const HEX = Array.from(
  { length: 256 },
  (_, byte) => byte.toString(16).padStart(2, "0"),
);

/** Where each of the 16 bytes starts in the canonical text. */
const OFFSETS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/** The value of a lowercase hex digit's char code. */
function nibble(code: number): number {
  return code <= 57 ? code - 48 : code - 87;
}

/**
 * The ids of a streamed submission (`TaskQueue.submitAll`), in submission
 * order, each with whether an earlier task with the same idempotency key
 * answered it. Read-only once returned.
 *
 * @example Reading the ids of a submission
 * ```ts
 * import { TaskQueue } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * await using queue = await TaskQueue.open({ consume: false });
 * const ids = await queue.submitAll([
 *   [{ type: "noop", idempotencyKey: "a" }],
 *   [{ type: "noop", idempotencyKey: "a" }, { type: "noop" }],
 * ]);
 * assert.equal(ids.length, 3);
 * assert.deepEqual([ids.submitted, ids.deduplicated], [2, 1]);
 * assert.equal(ids.id(1), ids.id(0));
 * assert.equal(ids.isDeduplicated(1), true);
 * assert.deepEqual([...ids], [ids.id(0), ids.id(1), ids.id(2)]);
 * ```
 */
export class SubmittedIds implements Iterable<string> {
  /**
   * Blocks of {@linkcode BLOCK} ids, 16 bytes each, then one flag byte
   * each: fixed-size blocks, so growing never copies and never holds
   * more than one block spare.
   */
  #blocks: Uint8Array[] = [];
  /** Ids that are not canonical UUIDs, by index (rare: ids given by hand). */
  #other = new Map<number, string>();
  #length = 0;
  #deduplicated = 0;

  /** How many ids. */
  get length(): number {
    return this.#length;
  }

  /** How many tasks were inserted (not answered by an earlier task). */
  get submitted(): number {
    return this.#length - this.#deduplicated;
  }

  /** How many submissions an earlier task with the same key answered. */
  get deduplicated(): number {
    return this.#deduplicated;
  }

  /**
   * Appends an id. Called by the queue while the submission commits.
   *
   * @param id The task's id (for a duplicate, the first task's).
   * @param deduplicated Whether an earlier task answered the submission.
   */
  push(id: string, deduplicated: boolean): void {
    const i = this.#length;
    const at = i % BLOCK;
    if (at === 0) this.#blocks.push(new Uint8Array(BLOCK * 17));
    const block = this.#blocks[this.#blocks.length - 1]!;
    if (UUID.test(id)) {
      const from = at * 16;
      for (let b = 0; b < 16; b++) {
        const o = OFFSETS[b]!;
        block[from + b] = (nibble(id.charCodeAt(o)) << 4) |
          nibble(id.charCodeAt(o + 1));
      }
    } else {
      this.#other.set(i, id);
    }
    block[BLOCK * 16 + at] = deduplicated ? 1 : 0;
    if (deduplicated) this.#deduplicated++;
    this.#length++;
  }

  /**
   * The id at `index`.
   *
   * @param index From 0 to `length - 1`.
   * @returns The id.
   * @throws {RangeError} When `index` is out of range.
   */
  id(index: number): string {
    this.#checkIndex(index);
    const other = this.#other.get(index);
    if (other !== undefined) return other;
    const b = this.#blocks[Math.floor(index / BLOCK)]!;
    const at = (index % BLOCK) * 16;
    let text = "";
    for (let k = 0; k < 16; k++) {
      if (k === 4 || k === 6 || k === 8 || k === 10) text += "-";
      text += HEX[b[at + k]!]!;
    }
    return text;
  }

  /**
   * Whether an earlier task with the same key answered the submission at
   * `index`.
   *
   * @param index From 0 to `length - 1`.
   * @returns `true` for a duplicate.
   * @throws {RangeError} When `index` is out of range.
   */
  isDeduplicated(index: number): boolean {
    this.#checkIndex(index);
    const block = this.#blocks[Math.floor(index / BLOCK)]!;
    return block[BLOCK * 16 + index % BLOCK] === 1;
  }

  /**
   * The ids in order.
   *
   * @returns An iterator over the ids.
   */
  *[Symbol.iterator](): Iterator<string> {
    for (let i = 0; i < this.#length; i++) yield this.id(i);
  }

  #checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.#length) {
      throw new RangeError(
        `Cannot read id ${index}: there are ${this.#length} ids`,
      );
    }
  }
}
