/**
 * When a failed attempt is tried again, and after how long.
 *
 * Errors are classified transient (retry) or permanent (fail). Transient
 * failures back off exponentially, `min(capMs, baseMs × factor^(attempt-1))`,
 * with jitter, until the attempt limit; then, or at once for a permanent
 * failure, the task goes to the dead-letter queue.
 *
 * @module
 */
import type { SerializedError } from "./errors.ts";
import { mulberry32 } from "./_rng.ts";

/** What the classifier says of an error: try again, or give up. */
export type RetryDecision = "retry" | "fail";

/** How random jitter spreads retries: see {@linkcode RetryOptions.jitter}. */
export type JitterMode = "full" | "equal" | "none";

/** Options for {@linkcode RetryPolicy}. */
export interface RetryOptions {
  /**
   * Attempts allowed in all, the first included (1 means never retry).
   *
   * @default {3}
   */
  maxAttempts?: number;
  /**
   * Backoff before the first retry, before jitter, in milliseconds.
   *
   * @default {100}
   */
  baseMs?: number;
  /**
   * Growth of the backoff per attempt.
   *
   * @default {2}
   */
  factor?: number;
  /**
   * Upper bound of the backoff, in milliseconds.
   *
   * @default {2000}
   */
  capMs?: number;
  /**
   * `"full"`: uniform in [0, backoff]; `"equal"`: backoff/2 plus uniform in
   * [0, backoff/2]; `"none"`: exactly the backoff.
   *
   * @default {"full"}
   */
  jitter?: JitterMode;
  /**
   * Seed for the jitter; makes delays reproducible (tests). Without it,
   * `Math.random` is used.
   *
   * @default {undefined}
   */
  seed?: number;
  /**
   * Decides whether an error is worth retrying. The default retries errors
   * whose class is `"transient"` (timeouts, worker crashes,
   * `TransientError`, unknown errors) and fails the rest.
   *
   * @default {defaultClassify}
   */
  classify?: (error: SerializedError) => RetryDecision;
}

/** What to do with a failed attempt. */
export type RetryVerdict =
  | { action: "retry"; delayMs: number }
  | { action: "dead"; reason: "permanent" | "exhausted" };

/**
 * The default classifier: transient errors are retried, permanent ones fail.
 *
 * @param error The failed attempt's error.
 * @returns `"retry"` for a transient error, `"fail"` otherwise.
 *
 * @example Classifying
 * ```ts
 * import { defaultClassify } from "./retry.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(defaultClassify({ name: "TaskTimeoutError", message: "slow", errorClass: "transient" }), "retry");
 * assert.equal(defaultClassify({ name: "PermanentError", message: "bad", errorClass: "permanent" }), "fail");
 * ```
 */
export function defaultClassify(error: SerializedError): RetryDecision {
  return error.errorClass === "transient" ? "retry" : "fail";
}

function check(
  condition: boolean,
  option: string,
  value: unknown,
  rule: string,
): void {
  if (!condition) {
    throw new RangeError(
      `Cannot create retry policy: ${option} must be ${rule}, got ${
        String(value)
      }`,
    );
  }
}

/**
 * Classification plus exponential backoff with jitter and an attempt limit.
 *
 * @example Deterministic delays with a seed
 * ```ts
 * import { RetryPolicy } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const policy = new RetryPolicy({ baseMs: 100, capMs: 1000, jitter: "none" });
 * assert.deepEqual([1, 2, 3, 4, 5].map((a) => policy.backoff(a)), [100, 200, 400, 800, 1000]);
 *
 * const error = { name: "TransientError", message: "later", errorClass: "transient" } as const;
 * assert.deepEqual(policy.decide(error, 1), { action: "retry", delayMs: 100 });
 * assert.deepEqual(policy.decide(error, 3), { action: "dead", reason: "exhausted" });
 * ```
 */
export class RetryPolicy {
  /** Attempts allowed in all. */
  readonly maxAttempts: number;
  /** Backoff before the first retry, ms. */
  readonly baseMs: number;
  /** Backoff growth per attempt. */
  readonly factor: number;
  /** Backoff cap, ms. */
  readonly capMs: number;
  /** Jitter mode. */
  readonly jitter: JitterMode;
  #random: () => number;
  #classify: (error: SerializedError) => RetryDecision;

  /**
   * Creates a policy.
   *
   * @param options Limits, backoff shape, jitter and classifier.
   * @throws {RangeError} When a number is out of range.
   * @throws {TypeError} When `jitter` or `classify` is of the wrong kind.
   */
  constructor(options: RetryOptions = {}) {
    const {
      maxAttempts = 3,
      baseMs = 100,
      factor = 2,
      capMs = 2000,
      jitter = "full",
      seed,
      classify = defaultClassify,
    } = options;
    check(
      Number.isInteger(maxAttempts) && maxAttempts >= 1,
      "maxAttempts",
      maxAttempts,
      "an integer >= 1",
    );
    check(
      Number.isFinite(baseMs) && baseMs >= 0,
      "baseMs",
      baseMs,
      "a finite number >= 0",
    );
    check(
      Number.isFinite(factor) && factor >= 1,
      "factor",
      factor,
      "a finite number >= 1",
    );
    check(
      Number.isFinite(capMs) && capMs >= 0,
      "capMs",
      capMs,
      "a finite number >= 0",
    );
    if (jitter !== "full" && jitter !== "equal" && jitter !== "none") {
      throw new TypeError(
        `Cannot create retry policy: jitter must be "full", "equal" or "none", got ${
          String(jitter)
        }`,
      );
    }
    if (typeof classify !== "function") {
      throw new TypeError(
        "Cannot create retry policy: classify must be a function",
      );
    }
    if (seed !== undefined) {
      check(Number.isInteger(seed), "seed", seed, "an integer");
    }
    this.maxAttempts = maxAttempts;
    this.baseMs = baseMs;
    this.factor = factor;
    this.capMs = capMs;
    this.jitter = jitter;
    this.#random = seed === undefined ? Math.random : mulberry32(seed);
    this.#classify = classify;
  }

  /**
   * The backoff after failed attempt number `attempt`, before jitter.
   *
   * @param attempt The attempt that failed (1 for the first).
   * @returns Milliseconds, at most `capMs`.
   */
  backoff(attempt: number): number {
    const exponent = Math.max(0, attempt - 1);
    return Math.min(this.capMs, this.baseMs * this.factor ** exponent);
  }

  /**
   * The delay before the next attempt, jitter applied.
   *
   * @param attempt The attempt that failed (1 for the first).
   * @returns Milliseconds, in [0, `capMs`].
   */
  delay(attempt: number): number {
    const backoff = this.backoff(attempt);
    switch (this.jitter) {
      case "full":
        return Math.floor(this.#random() * backoff);
      case "equal":
        return Math.floor(backoff / 2 + this.#random() * (backoff / 2));
      case "none":
        return backoff;
    }
  }

  /**
   * Decides the fate of a failed attempt.
   *
   * @param error The attempt's error.
   * @param attempt The attempt that failed (1 for the first).
   * @param maxAttempts This task's own limit, when it has one.
   * @returns Retry after a delay, or dead-letter with the reason.
   */
  decide(
    error: SerializedError,
    attempt: number,
    maxAttempts?: number,
  ): RetryVerdict {
    if (this.#classify(error) !== "retry") {
      return { action: "dead", reason: "permanent" };
    }
    if (attempt >= (maxAttempts ?? this.maxAttempts)) {
      return { action: "dead", reason: "exhausted" };
    }
    return { action: "retry", delayMs: this.delay(attempt) };
  }
}
