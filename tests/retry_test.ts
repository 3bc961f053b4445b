import assert from "node:assert/strict";
import { defaultClassify, RetryPolicy } from "../lib/retry.ts";
import {
  serializeError,
  TaskTimeoutError,
  WorkerCrashedError,
} from "../lib/errors.ts";
import { PermanentError, TransientError } from "../lib/errors.ts";

const transient = serializeError(new TransientError("later"));
const permanent = serializeError(new PermanentError("never"));

Deno.test("RetryPolicy.backoff() grows exponentially up to the cap", () => {
  const policy = new RetryPolicy({
    baseMs: 50,
    factor: 3,
    capMs: 1000,
    jitter: "none",
  });
  assert.deepEqual([1, 2, 3, 4, 5].map((a) => policy.backoff(a)), [
    50,
    150,
    450,
    1000,
    1000,
  ]);
});

Deno.test("RetryPolicy.delay() stays within the jitter bounds", () => {
  const full = new RetryPolicy({
    baseMs: 100,
    capMs: 2000,
    jitter: "full",
    seed: 1,
  });
  const equal = new RetryPolicy({
    baseMs: 100,
    capMs: 2000,
    jitter: "equal",
    seed: 1,
  });
  for (let attempt = 1; attempt <= 8; attempt++) {
    const backoff = full.backoff(attempt);
    for (let i = 0; i < 200; i++) {
      const f = full.delay(attempt);
      assert.ok(f >= 0 && f <= backoff, `full ${f} vs ${backoff}`);
      const e = equal.delay(attempt);
      assert.ok(
        e >= Math.floor(backoff / 2) && e <= backoff,
        `equal ${e} vs ${backoff}`,
      );
    }
  }
});

Deno.test("RetryPolicy.delay() is reproducible with a seed and spread without one", () => {
  const a = new RetryPolicy({ seed: 42 });
  const b = new RetryPolicy({ seed: 42 });
  const seq = (p: RetryPolicy) => Array.from({ length: 20 }, () => p.delay(5));
  assert.deepEqual(seq(a), seq(b));
  assert.ok(new Set(seq(new RetryPolicy())).size > 1);
});

Deno.test("RetryPolicy.decide() retries transient errors until the limit", () => {
  const policy = new RetryPolicy({
    maxAttempts: 3,
    jitter: "none",
    baseMs: 10,
  });
  assert.deepEqual(policy.decide(transient, 1), {
    action: "retry",
    delayMs: 10,
  });
  assert.deepEqual(policy.decide(transient, 2), {
    action: "retry",
    delayMs: 20,
  });
  assert.deepEqual(policy.decide(transient, 3), {
    action: "dead",
    reason: "exhausted",
  });
  assert.deepEqual(policy.decide(transient, 1, 1), {
    action: "dead",
    reason: "exhausted",
  });
  assert.deepEqual(policy.decide(permanent, 1), {
    action: "dead",
    reason: "permanent",
  });
});

Deno.test("defaultClassify() treats timeouts and crashes as transient", () => {
  assert.equal(
    defaultClassify(serializeError(new TaskTimeoutError("t"))),
    "retry",
  );
  assert.equal(
    defaultClassify(serializeError(new WorkerCrashedError("c"))),
    "retry",
  );
  assert.equal(defaultClassify(serializeError(new Error("unknown"))), "retry");
  assert.equal(
    defaultClassify(serializeError(new TypeError("bad input"))),
    "fail",
  );
  assert.equal(defaultClassify(permanent), "fail");
});

Deno.test("RetryPolicy uses a pluggable classifier", () => {
  const policy = new RetryPolicy({
    classify: (error) => error.message.includes("429") ? "retry" : "fail",
    jitter: "none",
  });
  assert.equal(
    policy.decide(serializeError(new Error("HTTP 429")), 1).action,
    "retry",
  );
  assert.equal(policy.decide(transient, 1).action, "dead");
});

Deno.test("new RetryPolicy() refuses bad options naming the option", () => {
  assert.throws(
    () => new RetryPolicy({ maxAttempts: -1 }),
    /maxAttempts must be an integer >= 1, got -1/,
  );
  assert.throws(() => new RetryPolicy({ maxAttempts: 0 }), RangeError);
  assert.throws(() => new RetryPolicy({ baseMs: -5 }), /baseMs/);
  assert.throws(() => new RetryPolicy({ factor: 0.5 }), /factor/);
  assert.throws(() => new RetryPolicy({ capMs: Number.NaN }), /capMs/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => new RetryPolicy({ jitter: "some" as any }), TypeError);
});
