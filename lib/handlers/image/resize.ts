/**
 * Resizing RGBA rows in bands: only the source rows that the current output
 * row needs are held, so memory is O(width x a few rows) whatever the
 * image's height.
 *
 * The target is an exact `width x height`: the image is stretched to it, and
 * the aspect ratio is not preserved. All arithmetic is on integers (or on
 * doubles holding exact integers), so the same input always gives the same
 * bytes on every platform.
 *
 * @module
 */

/** How output pixels are computed from source pixels. */
export type ResizeFilter = "box" | "bilinear";

/** Options for {@linkcode resizeRows}. */
export interface ResizeOptions {
  /**
   * `"box"` averages every source pixel an output pixel covers, weighted by
   * the covered area (best for downscaling); `"bilinear"` interpolates the
   * four nearest source pixels.
   *
   * @default {"box"}
   */
  filter?: ResizeFilter;
  /**
   * Aborts resizing: the output stream errors with the signal's reason and
   * the source rows are cancelled.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** Width and height in pixels. */
export interface Size {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

function checkSize(what: string, size: Size): void {
  for (const name of ["width", "height"] as const) {
    const value = size[name];
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(
        `Cannot resize: ${what} ${name} must be a positive integer, got ${value}`,
      );
    }
  }
}

/**
 * Resizes a stream of RGBA rows (`from.width * 4` bytes each) to exactly
 * `to.width x to.height`, stretching when the aspect ratios differ. Output
 * rows are produced as soon as the source rows they cover have arrived.
 *
 * @param rows The source rows, top to bottom; exactly `from.height` of them.
 * @param from The source size.
 * @param to The target size.
 * @param options The filter and an abort signal.
 * @returns The resized rows, `to.width * 4` bytes each.
 * @throws {RangeError} When a size is not made of positive integers or the
 * filter is unknown. The output stream errors with a `RangeError` when a
 * source row has the wrong length or the row count is wrong.
 *
 * @example Halving a 2x2 image
 * ```ts
 * import { resizeRows } from "@sluice/sluice/image";
 * import assert from "node:assert/strict";
 *
 * const source = ReadableStream.from([
 *   new Uint8Array([0, 0, 0, 255, 100, 100, 100, 255]),
 *   new Uint8Array([200, 200, 200, 255, 100, 100, 100, 255]),
 * ]);
 * const rows = resizeRows(source, { width: 2, height: 2 }, { width: 1, height: 1 });
 * assert.deepEqual(await Array.fromAsync(rows), [new Uint8Array([100, 100, 100, 255])]);
 * ```
 */
export function resizeRows(
  rows: ReadableStream<Uint8Array>,
  from: Size,
  to: Size,
  options: ResizeOptions = {},
): ReadableStream<Uint8Array> {
  checkSize("source", from);
  checkSize("target", to);
  const filter = options.filter ?? "box";
  if (filter !== "box" && filter !== "bilinear") {
    throw new RangeError(
      `Cannot resize: filter must be "box" or "bilinear", got ${
        JSON.stringify(filter)
      }`,
    );
  }
  const source = sourceRows(rows, from, options.signal);
  return ReadableStream.from(
    filter === "box" ? box(source, from, to) : bilinear(source, from, to),
  );
}

/** Pulls source rows one at a time, checking their length and count. */
async function* sourceRows(
  rows: ReadableStream<Uint8Array>,
  from: Size,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  const reader = rows.getReader();
  const onAbort = (): void => {
    reader.cancel(signal?.reason).catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let finished = false;
  try {
    for (let y = 0; y < from.height; y++) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      signal?.throwIfAborted();
      if (done) {
        throw new RangeError(
          `Cannot resize: expected ${from.height} source rows, got ${y}`,
        );
      }
      if (value.length !== from.width * 4) {
        throw new RangeError(
          `Cannot resize: source row ${y} must be ${
            from.width * 4
          } bytes, got ${value.length}`,
        );
      }
      yield value;
    }
    const extra = await reader.read();
    if (!extra.done) {
      throw new RangeError(
        `Cannot resize: expected ${from.height} source rows, got more`,
      );
    }
    finished = true;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * Area averaging. In units where a source pixel is `dw` wide and a target
 * pixel `sw` wide, both images span `sw * dw`, so every overlap is an
 * integer and every weight sum is exactly `sw` (horizontally) and `sh`
 * (vertically).
 */
async function* box(
  source: AsyncGenerator<Uint8Array>,
  from: Size,
  to: Size,
): AsyncGenerator<Uint8Array> {
  const sw = from.width, sh = from.height, dw = to.width, dh = to.height;
  // Horizontal spans: for each target x, the source pixels and weights.
  const spanStart = new Int32Array(dw);
  const spanWeights: Float64Array[] = [];
  for (let dx = 0; dx < dw; dx++) {
    const d0 = dx * sw, d1 = d0 + sw;
    const first = Math.floor(d0 / dw);
    const last = Math.min(sw - 1, Math.floor((d1 - 1) / dw));
    const weights = new Float64Array(last - first + 1);
    for (let sx = first; sx <= last; sx++) {
      const s0 = sx * dw, s1 = s0 + dw;
      weights[sx - first] = Math.min(s1, d1) - Math.max(s0, d0);
    }
    spanStart[dx] = first;
    spanWeights.push(weights);
  }
  const horizontal = new Float64Array(dw * 4);
  const acc = new Float64Array(dw * 4);
  const total = sw * sh;
  const half = Math.floor(total / 2);
  let dy = 0;
  let sy = 0;
  for await (const row of source) {
    for (let dx = 0, o = 0; dx < dw; dx++, o += 4) {
      const weights = spanWeights[dx]!;
      let r = 0, g = 0, b = 0, a = 0;
      for (let k = 0, i = spanStart[dx]! * 4; k < weights.length; k++, i += 4) {
        const w = weights[k]!;
        r += w * row[i]!;
        g += w * row[i + 1]!;
        b += w * row[i + 2]!;
        a += w * row[i + 3]!;
      }
      horizontal[o] = r;
      horizontal[o + 1] = g;
      horizontal[o + 2] = b;
      horizontal[o + 3] = a;
    }
    const s0 = sy * dh, s1 = s0 + dh;
    while (dy < dh) {
      const d0 = dy * sh, d1 = d0 + sh;
      const overlap = Math.min(s1, d1) - Math.max(s0, d0);
      if (overlap > 0) {
        for (let i = 0; i < acc.length; i++) {
          acc[i] = acc[i]! + overlap * horizontal[i]!;
        }
      }
      if (d1 > s1) break;
      const out = new Uint8Array(dw * 4);
      for (let i = 0; i < out.length; i++) {
        out[i] = Math.floor((acc[i]! + half) / total);
      }
      acc.fill(0);
      dy++;
      yield out;
    }
    sy++;
  }
}

/**
 * Bilinear interpolation with 8-bit fixed-point weights, sampling at pixel
 * centres. Holds two source rows.
 */
async function* bilinear(
  source: AsyncGenerator<Uint8Array>,
  from: Size,
  to: Size,
): AsyncGenerator<Uint8Array> {
  const sw = from.width, sh = from.height, dw = to.width, dh = to.height;
  const x0 = new Int32Array(dw),
    x1 = new Int32Array(dw),
    fx = new Int32Array(dw);
  for (let dx = 0; dx < dw; dx++) {
    const [i, f] = samplePosition(dx, sw, dw);
    x0[dx] = i * 4;
    x1[dx] = Math.min(i + 1, sw - 1) * 4;
    fx[dx] = f;
  }
  let top: Uint8Array | null = null;
  let bottom: Uint8Array | null = null;
  let loaded = -1; // index of `bottom`
  const load = async (index: number): Promise<void> => {
    while (loaded < index) {
      const next = await source.next();
      if (next.done) throw new RangeError("Cannot resize: source ended early");
      top = bottom;
      bottom = next.value;
      loaded++;
    }
  };
  try {
    yield* bilinearRows();
  } finally {
    await source.return(undefined);
  }
  async function* bilinearRows(): AsyncGenerator<Uint8Array> {
    for (let dy = 0; dy < dh; dy++) {
      const [y0, fy] = samplePosition(dy, sh, dh);
      const y1 = Math.min(y0 + 1, sh - 1);
      await load(y1);
      const upper = (y0 === loaded ? bottom : top)!;
      const lower = bottom!;
      const out = new Uint8Array(dw * 4);
      for (let dx = 0, o = 0; dx < dw; dx++, o += 4) {
        const wx = fx[dx]!, a = x0[dx]!, b = x1[dx]!;
        for (let c = 0; c < 4; c++) {
          const t = upper[a + c]! * (256 - wx) + upper[b + c]! * wx;
          const u = lower[a + c]! * (256 - wx) + lower[b + c]! * wx;
          out[o + c] = (t * (256 - fy) + u * fy + 32768) >> 16;
        }
      }
      yield out;
    }
    // Drain the rest so the row count is still checked.
    while (!(await source.next()).done) { /* rows below the last sample */ }
  }
}

/**
 * The source index and 8-bit fraction sampled for target index `d`:
 * `(d + 0.5) * s / dn - 0.5`, clamped at 0, computed on integers.
 */
function samplePosition(d: number, s: number, dn: number): [number, number] {
  const numerator = (2 * d + 1) * s - dn;
  if (numerator <= 0) return [0, 0];
  const denominator = 2 * dn;
  const index = Math.floor(numerator / denominator);
  if (index >= s - 1) return [s - 1, 0];
  const fraction = Math.floor(((numerator % denominator) * 256) / denominator);
  return [index, fraction];
}
