/**
 * Task ids: UUIDv7 (RFC 9562). The first 48 bits are the epoch-ms time and
 * the next 12 a counter within that millisecond, so ids created by one
 * process sort in creation order. Index inserts then land on the right
 * edge of the B-tree instead of on random pages, which keeps each group
 * commit to a few dirty pages.
 *
 * @module
 */

/**
 * The two lowercase hex digits of each byte value, as char codes: the high
 * digit in bits 8-15, the low one in bits 0-7.
 */
const HEX: number[] = Array.from({ length: 256 }, (_, i) => {
  const text = i.toString(16).padStart(2, "0");
  return (text.charCodeAt(0) << 8) | text.charCodeAt(1);
});

/**
 * The char codes of the id being built, hyphens in place. The string is
 * made from them in one allocation: adding up its 20 pieces instead made a
 * rope of about 15 intermediate strings per id (some 600 bytes), which
 * stayed reachable from the id until something flattened it.
 */
const codes: number[] = Array.from(
  { length: 36 },
  (_, i) => i === 8 || i === 13 || i === 18 || i === 23 ? 0x2d : 0x30,
);

/** Writes the two hex digits of `byte` at `at` in {@linkcode codes}. */
function put(at: number, byte: number): void {
  const pair = HEX[byte]!;
  codes[at] = pair >>> 8;
  codes[at + 1] = pair & 0xff;
}

/** Random bytes are drawn in blocks: one call per 256 ids. */
const pool = new Uint8Array(16 * 256);
let poolOffset = pool.length;

let lastMs = 0;
let counter = 0;

/**
 * Returns a new UUIDv7 string; later calls in this process sort after
 * earlier ones.
 *
 * @returns A lowercase, hyphenated UUID whose version nibble is 7.
 */
export function uuidv7(): string {
  if (poolOffset === pool.length) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  const r = poolOffset;
  poolOffset += 16;
  let ms = Date.now();
  if (ms > lastMs) {
    lastMs = ms;
    counter = 0;
  } else if (++counter > 0xfff) {
    // 4,096 ids in one millisecond: borrow the next one to stay ordered.
    lastMs++;
    counter = 0;
  }
  ms = lastMs;
  const high = Math.floor(ms / 0x100000000);
  const low = ms >>> 0;
  put(0, (high >>> 8) & 0xff);
  put(2, high & 0xff);
  put(4, low >>> 24);
  put(6, (low >>> 16) & 0xff);
  put(9, (low >>> 8) & 0xff);
  put(11, low & 0xff);
  put(14, 0x70 | (counter >>> 8));
  put(16, counter & 0xff);
  put(19, 0x80 | (pool[r + 8]! & 0x3f));
  put(21, pool[r + 9]!);
  for (let b = 10; b < 16; b++) put(4 + 2 * b, pool[r + b]!);
  return String.fromCharCode.apply(null, codes);
}
