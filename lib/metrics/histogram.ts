/**
 * A log-linear latency histogram with bounded relative error.
 *
 * @module
 */

/**
 * Options for {@linkcode Histogram}. Values are milliseconds as floats.
 *
 * @example Tracking sub-millisecond to one-minute latencies
 * ```ts
 * import { Histogram, type HistogramOptions } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * const options: HistogramOptions = { lowest: 0.001, highest: 60_000 };
 * const histogram = new Histogram(options);
 * assert.equal(histogram.lowest, 0.001);
 * ```
 */
export interface HistogramOptions {
  /**
   * The smallest value told apart from zero, in milliseconds. Smaller values
   * (zero included) fall into the first bucket.
   *
   * @default {0.001}
   */
  lowest?: number;
  /**
   * The largest value with bounded error, in milliseconds. Larger values fall
   * into the last bucket.
   *
   * @default {3_600_000}
   */
  highest?: number;
  /**
   * Decimal significant digits kept, from 1 to 4. The relative error of
   * {@linkcode Histogram.percentile} is at most `0.5 × 10^-significantDigits`.
   *
   * @default {2}
   */
  significantDigits?: number;
}

/**
 * The summary {@linkcode Histogram.toJSON} returns, in the histogram's unit
 * (milliseconds). Every statistic is `0` while the histogram is empty.
 */
export interface HistogramSummary {
  /** Number of recorded values. */
  count: number;
  /** Exact arithmetic mean. */
  mean: number;
  /** Exact smallest value. */
  min: number;
  /** Exact largest value. */
  max: number;
  /** Median, within {@linkcode Histogram.relativeError}. */
  p50: number;
  /** 95th percentile, within {@linkcode Histogram.relativeError}. */
  p95: number;
  /** 99th percentile, within {@linkcode Histogram.relativeError}. */
  p99: number;
}

// Scratch views over one float: the bucket index is read from the IEEE 754
// bits (exponent = octave, top mantissa bits = linear sub-bucket), so
// recording needs no logarithm and is exact at bucket edges.
const SCRATCH_F64 = new Float64Array(1);
const SCRATCH_U32 = new Uint32Array(SCRATCH_F64.buffer);
const HIGH_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * A log-linear (HdrHistogram-style) histogram of non-negative values.
 *
 * The range `[lowest, highest]` is split into octaves (powers of two above
 * `lowest`), and each octave into `S` equal sub-buckets, where `S` is the
 * smallest power of two at least `10^significantDigits`. A bucket is then
 * at most `1/S` of its lower edge wide, and a percentile reported as the
 * bucket's midpoint is within `1/(2S)` of the true value:
 * **relative error ≤ 1/(2S) ≤ 0.5 × 10^-significantDigits** (0.39 % with
 * the default 2 digits). Results are also clamped to the exact
 * `[min, max]`. Values outside the range land in the edge buckets, so their
 * percentiles lose that bound, but `min`, `max`, `count` and `mean` stay
 * exact.
 *
 * Recording is O(1) and allocates nothing: counts live in one preallocated
 * `Float64Array` (exact to 2^53 per bucket).
 *
 * @example Percentiles of recorded latencies
 * ```ts
 * import { Histogram } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * const histogram = new Histogram();
 * for (let ms = 1; ms <= 100; ms++) histogram.record(ms);
 * assert.equal(histogram.count, 100);
 * assert.equal(histogram.mean, 50.5);
 * const p95 = histogram.percentile(95);
 * assert.ok(Math.abs(p95 - 95) <= 95 * histogram.relativeError);
 * ```
 */
export class Histogram {
  #lowest: number;
  #highest: number;
  #digits: number;
  #inverseLowest: number;
  // log2 of the sub-bucket count S; S = 1 << #shift.
  #shift: number;
  #octaves: number;
  #counts: Float64Array;
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  /**
   * Creates an empty histogram.
   *
   * @param options Range and precision; see {@linkcode HistogramOptions}.
   * @throws {RangeError} When `lowest` is not a positive finite number,
   * `highest` is not a finite number above `lowest`, or `significantDigits`
   * is not an integer from 1 to 4.
   */
  constructor(options: HistogramOptions = {}) {
    const { lowest = 0.001, highest = 3_600_000, significantDigits = 2 } =
      options;
    if (!(Number.isFinite(lowest) && lowest > 0)) {
      throw new RangeError(
        `Cannot create histogram: option "lowest" must be a positive finite number, got ${lowest}`,
      );
    }
    if (!(Number.isFinite(highest) && highest > lowest)) {
      throw new RangeError(
        `Cannot create histogram: option "highest" must be a finite number above lowest (${lowest}), got ${highest}`,
      );
    }
    if (
      !Number.isInteger(significantDigits) || significantDigits < 1 ||
      significantDigits > 4
    ) {
      throw new RangeError(
        `Cannot create histogram: option "significantDigits" must be an integer from 1 to 4, got ${significantDigits}`,
      );
    }
    this.#lowest = lowest;
    this.#highest = highest;
    this.#digits = significantDigits;
    this.#inverseLowest = 1 / lowest;
    this.#shift = Math.ceil(Math.log2(10 ** significantDigits));
    // floor + 1 so that `highest` itself falls inside the last octave.
    this.#octaves = Math.floor(Math.log2(highest / lowest)) + 1;
    this.#counts = new Float64Array(this.#octaves << this.#shift);
  }

  /** The smallest value told apart from zero, in milliseconds. */
  get lowest(): number {
    return this.#lowest;
  }

  /** The largest value with bounded error, in milliseconds. */
  get highest(): number {
    return this.#highest;
  }

  /** The decimal significant digits kept. */
  get significantDigits(): number {
    return this.#digits;
  }

  /**
   * The bound on the relative error of {@linkcode Histogram.percentile} for
   * in-range values: `1/(2S)` with `S` sub-buckets per octave.
   */
  get relativeError(): number {
    return 1 / (2 << this.#shift);
  }

  /** Number of buckets, fixed at construction. */
  get bucketCount(): number {
    return this.#counts.length;
  }

  /** Number of recorded values. */
  get count(): number {
    return this.#count;
  }

  /** Exact sum of recorded values. */
  get sum(): number {
    return this.#sum;
  }

  /** Exact mean, or `0` when empty. */
  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /** Exact smallest recorded value, or `0` when empty. */
  get min(): number {
    return this.#count === 0 ? 0 : this.#min;
  }

  /** Exact largest recorded value, or `0` when empty. */
  get max(): number {
    return this.#count === 0 ? 0 : this.#max;
  }

  /**
   * Records one value in O(1) without allocating.
   *
   * @param value A non-negative finite number, in milliseconds.
   * @throws {RangeError} When `value` is negative, `NaN` or infinite.
   *
   * @example Recording a duration
   * ```ts
   * import { Histogram } from "@sluice/sluice/metrics";
   * import assert from "node:assert/strict";
   *
   * const histogram = new Histogram();
   * histogram.record(12.5);
   * assert.equal(histogram.max, 12.5);
   * ```
   */
  record(value: number): void {
    if (!(value >= 0 && value < Infinity)) {
      throw new RangeError(
        `Cannot record value: expected a non-negative finite number, got ${value}`,
      );
    }
    this.#count++;
    this.#sum += value;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
    this.#counts[this.#indexOf(value)]!++;
  }

  #indexOf(value: number): number {
    const units = value * this.#inverseLowest;
    if (units < 1) return 0;
    SCRATCH_F64[0] = units;
    const high = SCRATCH_U32[HIGH_WORD]!;
    const octave = ((high >>> 20) & 0x7ff) - 1023;
    if (octave >= this.#octaves) return this.#counts.length - 1;
    const sub = (high & 0xfffff) >>> (20 - this.#shift);
    return (octave << this.#shift) + sub;
  }

  /**
   * Returns the `p`-th percentile by nearest rank (the smallest recorded
   * value with at least `p` % of values at or below it), within
   * {@linkcode Histogram.relativeError} for in-range values and clamped to
   * `[min, max]`. `p = 0` gives the exact min and `p = 100` the exact max.
   *
   * @param p The percentile, from 0 to 100.
   * @returns The estimated value, or `0` when the histogram is empty.
   * @throws {RangeError} When `p` is not a number from 0 to 100.
   *
   * @example Reading the median
   * ```ts
   * import { Histogram } from "@sluice/sluice/metrics";
   * import assert from "node:assert/strict";
   *
   * const histogram = new Histogram();
   * for (const ms of [1, 2, 3, 4, 1000]) histogram.record(ms);
   * const median = histogram.percentile(50);
   * assert.ok(Math.abs(median - 3) <= 3 * histogram.relativeError);
   * ```
   */
  percentile(p: number): number {
    if (!(p >= 0 && p <= 100)) {
      throw new RangeError(
        `Cannot compute percentile: expected a number from 0 to 100, got ${p}`,
      );
    }
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    if (rank === 1) return this.#min;
    if (rank >= this.#count) return this.#max;
    const counts = this.#counts;
    let seen = 0;
    let index = 0;
    for (; index < counts.length; index++) {
      seen += counts[index]!;
      if (seen >= rank) break;
    }
    const value = this.#midpoint(index);
    return value < this.#min
      ? this.#min
      : value > this.#max
      ? this.#max
      : value;
  }

  #midpoint(index: number): number {
    const octave = index >>> this.#shift;
    const sub = index & ((1 << this.#shift) - 1);
    return this.#lowest * 2 ** octave * (1 + (sub + 0.5) / (1 << this.#shift));
  }

  /**
   * Forgets every recorded value; the buckets stay allocated.
   *
   * @example Starting a new interval
   * ```ts
   * import { Histogram } from "@sluice/sluice/metrics";
   * import assert from "node:assert/strict";
   *
   * const histogram = new Histogram();
   * histogram.record(5);
   * histogram.reset();
   * assert.equal(histogram.count, 0);
   * ```
   */
  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#min = Infinity;
    this.#max = -Infinity;
  }

  /**
   * Adds every value recorded in `other` to this histogram.
   *
   * @param other A histogram with the same `lowest`, `highest` and
   * `significantDigits`; it is left unchanged.
   * @throws {RangeError} When the two histograms are configured differently.
   *
   * @example Combining per-worker histograms
   * ```ts
   * import { Histogram } from "@sluice/sluice/metrics";
   * import assert from "node:assert/strict";
   *
   * const a = new Histogram();
   * const b = new Histogram();
   * a.record(1);
   * b.record(9);
   * a.merge(b);
   * assert.equal(a.count, 2);
   * assert.equal(a.max, 9);
   * ```
   */
  merge(other: Histogram): void {
    if (
      other.#lowest !== this.#lowest || other.#highest !== this.#highest ||
      other.#digits !== this.#digits
    ) {
      throw new RangeError(
        `Cannot merge histograms: ranges differ (${this.#describe()} vs ${other.#describe()})`,
      );
    }
    if (other.#count === 0) return;
    const counts = this.#counts;
    const theirs = other.#counts;
    for (let i = 0; i < counts.length; i++) counts[i]! += theirs[i]!;
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  #describe(): string {
    return `lowest ${this.#lowest}, highest ${this.#highest}, significantDigits ${this.#digits}`;
  }

  /**
   * Summarises the histogram: count, exact mean/min/max and p50/p95/p99.
   *
   * @returns A plain object, in the histogram's unit; all zero when empty.
   *
   * @example Serialising a histogram
   * ```ts
   * import { Histogram } from "@sluice/sluice/metrics";
   * import assert from "node:assert/strict";
   *
   * const histogram = new Histogram();
   * histogram.record(4);
   * assert.deepEqual(histogram.toJSON(), {
   *   count: 1, mean: 4, min: 4, max: 4, p50: 4, p95: 4, p99: 4,
   * });
   * ```
   */
  toJSON(): HistogramSummary {
    return {
      count: this.#count,
      mean: this.mean,
      min: this.min,
      max: this.max,
      p50: this.percentile(50),
      p95: this.percentile(95),
      p99: this.percentile(99),
    };
  }
}
