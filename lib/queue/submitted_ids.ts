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

/**
 * Ids the first block has room for at first: it doubles up to
 * {@linkcode BLOCK}, so a submission of a few hundred tasks does not take
 * a whole block.
 */
const FIRST_BLOCK = 256;

/**
 * The two lowercase hex digits of each byte value, as char codes: the high
 * digit in bits 8-15, the low one in bits 0-7.
 */
const HEX: number[] = Array.from({ length: 256 }, (_, byte) => {
  const text = byte.toString(16).padStart(2, "0");
  return (text.charCodeAt(0) << 8) | text.charCodeAt(1);
});

/**
 * The char codes of the id being read back, hyphens in place: the string
 * is made from them in one allocation, not added up from 20 pieces.
 */
const codes: number[] = Array.from(
  { length: 36 },
  (_, i) => i === 8 || i === 13 || i === 18 || i === 23 ? 0x2d : 0x30,
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
   * each: fixed-size blocks, so growing never holds more than one block
   * spare and copies only the first block, which starts with room for
   * {@linkcode FIRST_BLOCK} ids and doubles until it is full size.
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
    if (at === 0) {
      this.#blocks.push(new Uint8Array((i === 0 ? FIRST_BLOCK : BLOCK) * 17));
    } else if (at * 17 === this.#blocks[0]!.length) {
      this.#blocks[0] = grown(this.#blocks[0]!);
    }
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
    block[flagsAt(block) + at] = deduplicated ? 1 : 0;
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
    for (let k = 0; k < 16; k++) {
      const pair = HEX[b[at + k]!]!;
      const to = OFFSETS[k]!;
      codes[to] = pair >>> 8;
      codes[to + 1] = pair & 0xff;
    }
    return String.fromCharCode.apply(null, codes);
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
    return block[flagsAt(block) + index % BLOCK] === 1;
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

/** Where a block's flags start: after 16 bytes for each id it has room for. */
function flagsAt(block: Uint8Array): number {
  return (block.length / 17) * 16;
}

/** The first block with twice the room: its ids, then its flags, copied. */
function grown(block: Uint8Array): Uint8Array {
  const room = block.length / 17;
  const next = new Uint8Array(room * 2 * 17);
  next.set(block.subarray(0, room * 16));
  next.set(block.subarray(room * 16), room * 2 * 16);
  return next;
}
