/**
 * Task ids: UUIDv7 (RFC 9562). The first 48 bits are the epoch-ms time and
 * the next 12 a counter within that millisecond, so ids created by one
 * process sort in creation order. Index inserts then land on the right
 * edge of the B-tree instead of on random pages, which keeps each group
 * commit to a few dirty pages.
 *
 * @module
 */

const HEX: string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

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
  return HEX[(high >>> 8) & 0xff]! + HEX[high & 0xff]! + HEX[low >>> 24]! +
    HEX[(low >>> 16) & 0xff]! + "-" + HEX[(low >>> 8) & 0xff]! +
    HEX[low & 0xff]! +
    "-" + HEX[0x70 | (counter >>> 8)]! + HEX[counter & 0xff]! + "-" +
    HEX[0x80 | (pool[r + 8]! & 0x3f)]! + HEX[pool[r + 9]!]! + "-" +
    HEX[pool[r + 10]!]! + HEX[pool[r + 11]!]! + HEX[pool[r + 12]!]! +
    HEX[pool[r + 13]!]! + HEX[pool[r + 14]!]! + HEX[pool[r + 15]!]!;
}
