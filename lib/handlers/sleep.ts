/**
 * The `sleep` handler: waits, honouring cancellation.
 *
 * @module
 */
import { delay } from "../_delay.ts";
import { PermanentError, TransientError } from "../errors.ts";
import type { TaskContext } from "../handler.ts";

/** Longest accepted `duration_ms` and `timeout_ms`: 10 minutes. */
const MAX_MS = 600_000;

/**
 * Payload of the `sleep` task type.
 *
 * ```json
 * { "duration_ms": 250, "timeout_ms": 1000 }
 * ```
 */
export interface SleepPayload {
  /** How long to wait, 0 to 600,000 ms. */
  duration_ms: number;
  /** Give up with a `TransientError` after this long when it is shorter than `duration_ms`; 0 to 600,000 ms. */
  timeout_ms?: number;
}

/** What `sleep` returns. */
export interface SleepResult {
  /** The duration waited, in ms. */
  slept_ms: number;
}

function checkMs(name: string, value: unknown): number {
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < 0 ||
    value > MAX_MS
  ) {
    throw new PermanentError(
      `Cannot run sleep: payload.${name} must be a number from 0 to ${MAX_MS}, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return value;
}

/**
 * Handler for `sleep`: waits `duration_ms`. When `timeout_ms` is shorter,
 * it waits `timeout_ms` and throws a `TransientError`. When `ctx.signal`
 * aborts it rejects at once with the signal's reason and clears its timer.
 *
 * @param payload `{ duration_ms: number, timeout_ms?: number }`.
 * @param ctx The task context; only `signal` is used.
 * @returns `{ slept_ms }`.
 * @throws {PermanentError} When a field is missing or out of range.
 * @throws {TransientError} When `timeout_ms < duration_ms`.
 * @throws {unknown} The signal's reason when the task is aborted.
 *
 * @example Sleeping briefly
 * ```ts
 * import { sleep } from "./sleep.ts";
 * import { type TaskContext } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const ctx = { signal: new AbortController().signal } as TaskContext;
 * assert.deepEqual(await sleep({ duration_ms: 1 }, ctx), { slept_ms: 1 });
 * ```
 */
export async function sleep(
  payload: SleepPayload,
  ctx: TaskContext,
): Promise<SleepResult> {
  const p = payload as unknown as Record<string, unknown> | null;
  if (typeof p !== "object" || p === null) {
    throw new PermanentError(
      `Cannot run sleep: payload must be an object, got ${JSON.stringify(p)}`,
    );
  }
  const duration = checkMs("duration_ms", p.duration_ms);
  const timeout = p.timeout_ms === undefined
    ? undefined
    : checkMs("timeout_ms", p.timeout_ms);
  if (timeout !== undefined && timeout < duration) {
    await delay(timeout, ctx.signal);
    throw new TransientError(
      `Cannot run sleep: timed out after ${timeout} ms of ${duration} ms`,
    );
  }
  await delay(duration, ctx.signal);
  return { slept_ms: duration };
}
