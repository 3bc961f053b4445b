/**
 * A small seeded pseudo-random generator shared by fault injection and the
 * simulated handlers. Private: not part of the public API.
 *
 * @module
 */

/** Returns a float in [0, 1). */
export type Rng = () => number;

/**
 * Mulberry32: 32 bits of state, fast, good enough for simulation. The same
 * seed always yields the same sequence on every platform.
 *
 * @param seed Any number; only its low 32 bits are used.
 * @returns A generator of floats in [0, 1).
 */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Hashes the parts into a 32-bit seed (FNV-1a over their string forms,
 * separated so that `("ab", 1)` and `("a", "b1")` differ).
 *
 * @param parts Strings and numbers to mix.
 * @returns An unsigned 32-bit integer.
 */
export function seedFrom(...parts: ReadonlyArray<string | number>): number {
  let hash = 0x811c9dc5;
  for (const part of parts) {
    const text = String(part);
    for (let i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193);
    }
    hash ^= 0x1f;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
