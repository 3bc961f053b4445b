import assert from "node:assert/strict";
import { Histogram } from "../../lib/metrics/histogram.ts";
import { mulberry32 } from "../../lib/_rng.ts";

const PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100];

/** A seeded PRNG, so failures reproduce. */
const random = mulberry32;

/** The nearest-rank percentile of sorted data: the reference. */
function truePercentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

function assertWithinBound(
  histogram: Histogram,
  values: readonly number[],
  what: string,
): void {
  const sorted = [...values].sort((a, b) => a - b);
  for (const p of PERCENTILES) {
    const expected = truePercentile(sorted, p);
    const actual = histogram.percentile(p);
    const error = Math.abs(actual - expected) / expected;
    assert.ok(
      error <= histogram.relativeError,
      `${what}: p${p} = ${actual}, true ${expected}, error ${error} > ${histogram.relativeError}`,
    );
  }
}

function recordAll(histogram: Histogram, values: readonly number[]): void {
  for (const value of values) histogram.record(value);
}

Deno.test("Histogram.relativeError is at most 0.5 × 10^-digits for each precision", () => {
  for (const significantDigits of [1, 2, 3, 4]) {
    const histogram = new Histogram({ significantDigits });
    assert.ok(histogram.relativeError <= 0.5 * 10 ** -significantDigits);
    assert.ok(histogram.relativeError > 0.25 * 10 ** -significantDigits);
  }
  assert.equal(new Histogram().relativeError, 1 / 256);
});

Deno.test("Histogram.percentile() stays within the bound when values are uniform", () => {
  const next = random(1);
  const values = Array.from({ length: 20_000 }, () => 0.01 + next() * 1000);
  const histogram = new Histogram();
  recordAll(histogram, values);
  assertWithinBound(histogram, values, "uniform");
});

Deno.test("Histogram.percentile() stays within the bound when values are exponential", () => {
  const next = random(2);
  const values = Array.from(
    { length: 20_000 },
    () => -Math.log(1 - next()) * 50,
  ).map((v) => Math.max(v, 0.001));
  const histogram = new Histogram();
  recordAll(histogram, values);
  assertWithinBound(histogram, values, "exponential");
});

Deno.test("Histogram.percentile() stays within the bound at every precision when values span the range", () => {
  const next = random(3);
  // Log-uniform from 1 µs to 1 hour: every octave gets values.
  const values = Array.from(
    { length: 5_000 },
    () => 0.001 * 3.6e9 ** next(),
  );
  for (const significantDigits of [1, 2, 3]) {
    const histogram = new Histogram({ significantDigits });
    recordAll(histogram, values);
    assertWithinBound(histogram, values, `${significantDigits} digits`);
  }
});

Deno.test("Histogram.percentile() stays within the bound when there are a few values", () => {
  const values = [3, 1_000, 7.25, 7.3, 0.002];
  const histogram = new Histogram();
  recordAll(histogram, values);
  assertWithinBound(histogram, values, "few values");
});

Deno.test("Histogram.percentile() returns the value itself when there is a single value", () => {
  const histogram = new Histogram();
  histogram.record(42.123);
  for (const p of PERCENTILES) assert.equal(histogram.percentile(p), 42.123);
  assert.equal(histogram.percentile(0), 42.123);
});

Deno.test("Histogram.percentile() returns exact min and max at 0 and 100", () => {
  const histogram = new Histogram();
  recordAll(histogram, [0.0031, 5, 17.77]);
  assert.equal(histogram.percentile(0), 0.0031);
  assert.equal(histogram.percentile(100), 17.77);
});

Deno.test("Histogram.percentile() is within the bound when a value equals lowest or highest", () => {
  const histogram = new Histogram({ lowest: 1, highest: 1024 });
  const values = [1, 1, 1, 1024, 1024, 1024, 512];
  recordAll(histogram, values);
  assertWithinBound(histogram, values, "edges");
});

Deno.test("Histogram.record() keeps min, max, count and mean exact when values fall outside the range", () => {
  const histogram = new Histogram({ lowest: 1, highest: 100 });
  recordAll(histogram, [0, 0.5, 50, 10_000, 123_456]);
  assert.equal(histogram.count, 5);
  assert.equal(histogram.min, 0);
  assert.equal(histogram.max, 123_456);
  assert.equal(histogram.sum, 133_506.5);
  assert.equal(histogram.mean, 133_506.5 / 5);
  // Out-of-range values sit in the edge buckets; results stay in [min, max].
  for (const p of PERCENTILES) {
    const value = histogram.percentile(p);
    assert.ok(value >= 0 && value <= 123_456, `p${p} = ${value}`);
  }
  assert.equal(histogram.percentile(20), 0);
});

Deno.test("Histogram.record() throws a RangeError when the value is negative, NaN or infinite", () => {
  const histogram = new Histogram();
  for (const value of [-1, NaN, Infinity, -Infinity]) {
    assert.throws(
      () => histogram.record(value),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message.startsWith("Cannot record value:"),
    );
  }
  assert.equal(histogram.count, 0);
});

Deno.test("Histogram.percentile() throws a RangeError when p is outside 0..100", () => {
  const histogram = new Histogram();
  histogram.record(1);
  for (const p of [-0.1, 100.1, NaN]) {
    assert.throws(() => histogram.percentile(p), RangeError);
  }
});

Deno.test("Histogram.toJSON() returns zeros when empty", () => {
  assert.deepEqual(new Histogram().toJSON(), {
    count: 0,
    mean: 0,
    min: 0,
    max: 0,
    p50: 0,
    p95: 0,
    p99: 0,
  });
});

Deno.test("Histogram.toJSON() summarises count, mean, min, max and percentiles", () => {
  const histogram = new Histogram();
  for (let ms = 1; ms <= 1000; ms++) histogram.record(ms);
  const summary = histogram.toJSON();
  assert.deepEqual(Object.keys(summary), [
    "count",
    "mean",
    "min",
    "max",
    "p50",
    "p95",
    "p99",
  ]);
  assert.equal(summary.count, 1000);
  assert.equal(summary.mean, 500.5);
  assert.equal(summary.min, 1);
  assert.equal(summary.max, 1000);
  for (
    const [p, value] of [[500, summary.p50], [950, summary.p95], [
      990,
      summary.p99,
    ]] as const
  ) {
    assert.ok(Math.abs(value - p) <= p * histogram.relativeError, `${value}`);
  }
});

Deno.test("Histogram.reset() forgets every value when called", () => {
  const histogram = new Histogram();
  recordAll(histogram, [1, 2, 3]);
  histogram.reset();
  assert.deepEqual(histogram.toJSON(), new Histogram().toJSON());
  histogram.record(9);
  assert.equal(histogram.min, 9);
  assert.equal(histogram.percentile(50), 9);
});

Deno.test("Histogram.merge() matches recording everything in one when ranges agree", () => {
  const next = random(4);
  const a = new Histogram();
  const b = new Histogram();
  const all = new Histogram();
  for (let i = 0; i < 2_000; i++) {
    const value = next() * 100;
    (i % 3 === 0 ? a : b).record(value);
    all.record(value);
  }
  a.merge(b);
  assert.equal(a.count, all.count);
  assert.equal(a.min, all.min);
  assert.equal(a.max, all.max);
  for (const p of PERCENTILES) assert.equal(a.percentile(p), all.percentile(p));
  assert.equal(b.count, 2_000 - Math.ceil(2_000 / 3));
});

Deno.test("Histogram.merge() throws a RangeError when ranges differ", () => {
  const a = new Histogram();
  assert.throws(
    () => a.merge(new Histogram({ significantDigits: 3 })),
    /^RangeError: Cannot merge histograms: ranges differ/,
  );
  assert.throws(() => a.merge(new Histogram({ highest: 1000 })), RangeError);
});

Deno.test("new Histogram() throws naming the option when options are invalid", () => {
  const cases: [Record<string, number>, RegExp][] = [
    [{ lowest: 0 }, /"lowest".*got 0/],
    [{ lowest: NaN }, /"lowest".*got NaN/],
    [{ highest: 0.0005 }, /"highest".*got 0.0005/],
    [{ highest: Infinity }, /"highest".*got Infinity/],
    [{ significantDigits: 0 }, /"significantDigits".*got 0/],
    [{ significantDigits: 5 }, /"significantDigits".*got 5/],
    [{ significantDigits: 2.5 }, /"significantDigits".*got 2.5/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new Histogram(options),
      (error: unknown) =>
        error instanceof RangeError && message.test(error.message),
      JSON.stringify(options),
    );
  }
});

Deno.test("new Histogram() preallocates a fixed number of buckets when created", () => {
  const histogram = new Histogram();
  // 1 µs .. 1 h is 32 octaves of 128 sub-buckets.
  assert.equal(histogram.bucketCount, 32 * 128);
  for (let i = 0; i < 1000; i++) histogram.record(i * 3600);
  assert.equal(histogram.bucketCount, 32 * 128);
});
