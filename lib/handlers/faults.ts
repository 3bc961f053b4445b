/**
 * Fault injection: wraps a handler with simulated latency and random
 * transient or permanent failures, reproducibly.
 *
 * @module
 */
import { delay } from "../_delay.ts";
import { mulberry32, seedFrom } from "../_rng.ts";
import { PermanentError, TransientError } from "../errors.ts";
import type { Handler, TaskContext } from "../handler.ts";

/** Faults for one task type (or for all). */
export interface FaultConfig {
  /**
   * Latency added before the handler runs, in ms.
   *
   * @default {0}
   */
  latencyMs?: number;
  /**
   * The latency varies uniformly by up to this many ms either way (never
   * below 0).
   *
   * @default {0}
   */
  jitterMs?: number;
  /**
   * Probability (0..1) of throwing a `TransientError` instead of running.
   *
   * @default {0}
   */
  transientErrorRate?: number;
  /**
   * Probability (0..1) of throwing a `PermanentError` instead of running.
   * With `transientErrorRate` it must sum to at most 1.
   *
   * @default {0}
   */
  permanentErrorRate?: number;
  /**
   * Seed of the draws; with the task's identity (its idempotency key, or
   * else its id) and the attempt it fixes every outcome.
   *
   * @default {1}
   */
  seed?: number;
}

/**
 * Faults for all task types, with per-type overrides: a field set in
 * `byType[type]` replaces the same field of the base config.
 */
export type FaultPolicy = FaultConfig & {
  /**
   * Per-type overrides, keyed by task type.
   *
   * @default {{}}
   */
  byType?: Record<string, FaultConfig>;
};

/**
 * The original design's "30 ms simulated I/O": a fixed 30 ms before every
 * task and no failures.
 */
export const SIMULATED_IO_30MS: FaultConfig = Object.freeze({
  latencyMs: 30,
  jitterMs: 0,
});

function checkConfig(config: FaultConfig, where: string): void {
  if (typeof config !== "object" || config === null) {
    throw new TypeError(
      `Cannot use fault policy: ${where} must be an object, got ${
        String(config)
      }`,
    );
  }
  const number = (name: keyof FaultConfig, min: number, max: number): void => {
    const value = config[name];
    if (value === undefined) return;
    if (typeof value !== "number" || !(value >= min && value <= max)) {
      throw new RangeError(
        `Cannot use fault policy: ${where}${name} must be a number from ${min} to ${max}, got ${value}`,
      );
    }
  };
  number("latencyMs", 0, 600_000);
  number("jitterMs", 0, 600_000);
  number("transientErrorRate", 0, 1);
  number("permanentErrorRate", 0, 1);
  if (config.seed !== undefined && !Number.isInteger(config.seed)) {
    throw new RangeError(
      `Cannot use fault policy: ${where}seed must be an integer, got ${config.seed}`,
    );
  }
}

/**
 * Checks a fault policy, including each per-type override as merged with
 * the base.
 *
 * @param policy The policy to check.
 * @returns Nothing; returns normally when the policy is valid.
 * @throws {RangeError} Naming the field (e.g. `byType["fail"].transientErrorRate`)
 * when a value is out of range, or the two error rates sum to more than 1.
 * @throws {TypeError} When the policy or an override is not an object.
 *
 * @example Rejecting a rate above 1
 * ```ts
 * import { validateFaultPolicy } from "@sluice/sluice/faults";
 * import assert from "node:assert/strict";
 *
 * validateFaultPolicy({ transientErrorRate: 0.2 });
 * assert.throws(() => validateFaultPolicy({ transientErrorRate: 2 }), RangeError);
 * ```
 */
export function validateFaultPolicy(policy: FaultPolicy): void {
  checkConfig(policy, "");
  const merged: Array<[string, FaultConfig]> = [["", policy]];
  const byType = policy.byType ?? {};
  if (typeof byType !== "object" || byType === null) {
    throw new TypeError(
      `Cannot use fault policy: byType must be an object, got ${
        String(byType)
      }`,
    );
  }
  for (const [type, config] of Object.entries(byType)) {
    const where = `byType[${JSON.stringify(type)}].`;
    checkConfig(config, where);
    merged.push([where, { ...policy, ...config }]);
  }
  for (const [where, config] of merged) {
    const sum = (config.transientErrorRate ?? 0) +
      (config.permanentErrorRate ?? 0);
    if (sum > 1) {
      throw new RangeError(
        `Cannot use fault policy: ${where}transientErrorRate + permanentErrorRate must be at most 1, got ${sum}`,
      );
    }
  }
}

/**
 * Wraps `handler` so that each call first waits `latencyMs ± jitterMs`
 * (honouring `ctx.signal`), then fails with the configured probabilities,
 * and otherwise runs the handler. Every draw comes from a PRNG seeded with
 * `(seed, idempotencyKey ?? taskId, attempt)`, so the same task attempt
 * meets the same fault however tasks are scheduled, while its retry draws
 * afresh. Task ids are random, so only tasks with idempotency keys meet the
 * same faults from one run to the next.
 *
 * @param handler The handler to wrap.
 * @param policy The faults; `byType[type]` overrides the base fields.
 * @param type The task type the handler serves.
 * @returns The wrapped handler.
 * @throws {RangeError} When the policy is invalid (see {@linkcode validateFaultPolicy}).
 * @throws {TypeError} When `handler` is not a function.
 *
 * @example Failing every task transiently
 * ```ts
 * import { noop } from "./noop.ts";
 * import { TransientError, type TaskContext } from "@sluice/sluice";
 * import { withFaults } from "@sluice/sluice/faults";
 * import assert from "node:assert/strict";
 *
 * const flaky = withFaults(noop, { transientErrorRate: 1 }, "noop");
 * const ctx = { signal: new AbortController().signal, taskId: "t1", attempt: 1 } as TaskContext;
 * await assert.rejects(async () => await flaky(null as never, ctx), TransientError);
 * ```
 */
export function withFaults(
  handler: Handler,
  policy: FaultPolicy,
  type: string,
): Handler {
  if (typeof handler !== "function") {
    throw new TypeError(
      `Cannot inject faults: handler must be a function, got ${typeof handler}`,
    );
  }
  validateFaultPolicy(policy);
  const { byType, ...base } = policy;
  const config: FaultConfig = { ...base, ...(byType?.[type] ?? {}) };
  const latencyMs = config.latencyMs ?? 0;
  const jitterMs = config.jitterMs ?? 0;
  const transient = config.transientErrorRate ?? 0;
  const permanent = config.permanentErrorRate ?? 0;
  const seed = config.seed ?? 1;
  return async (payload: never, ctx: TaskContext): Promise<unknown> => {
    // The key, not the random id, names the task across runs, so a seeded
    // run with keyed tasks is reproducible end to end.
    const identity = ctx.idempotencyKey ?? ctx.taskId;
    const random = mulberry32(seedFrom(seed, identity, ctx.attempt));
    const wait = Math.max(0, latencyMs + (random() * 2 - 1) * jitterMs);
    const draw = random();
    if (wait > 0) await delay(wait, ctx.signal);
    else ctx.signal.throwIfAborted();
    if (draw < transient) {
      throw new TransientError("Cannot run task: injected transient fault");
    }
    if (draw < transient + permanent) {
      throw new PermanentError("Cannot run task: injected permanent fault");
    }
    return await handler(payload, ctx);
  };
}

const FAULTY = new URL("./faulty.ts", import.meta.url);

/**
 * The URL of a handler module exporting every built-in handler wrapped in
 * `policy`'s faults: point a queue's `handlers` at it. The policy travels
 * in the URL, so each worker builds the same wrappers.
 *
 * @param policy The faults to inject.
 * @returns The module's URL.
 * @throws {TypeError | RangeError} When the policy is malformed.
 *
 * @example Built-in handlers with 30 ms of simulated I/O
 * ```ts
 * import { faultyHandlers, SIMULATED_IO_30MS } from "@sluice/sluice/faults";
 * import { TaskQueue } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * await using queue = await TaskQueue.open({
 *   workers: 1,
 *   handlers: faultyHandlers(SIMULATED_IO_30MS),
 * });
 * const started = performance.now();
 * await (await queue.submit({ type: "noop" })).result;
 * assert.ok(performance.now() - started >= 29);
 * ```
 */
export function faultyHandlers(policy: FaultPolicy): URL {
  validateFaultPolicy(policy);
  const url = new URL(FAULTY);
  url.searchParams.set("faults", JSON.stringify(policy));
  return url;
}
