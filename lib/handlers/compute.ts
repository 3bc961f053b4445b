/**
 * The `compute` handler: CPU-bound arithmetic on big integers.
 *
 * @module
 */
import { PermanentError } from "../errors.ts";
import type { TaskContext } from "../handler.ts";

/** The operations `compute` knows. */
export type ComputeOperation = "factorial" | "fibonacci" | "double";

/**
 * Payload of the `compute` task type.
 *
 * ```json
 * { "operation": "factorial", "value": 20 }
 * ```
 *
 * Limits: factorial 0..5,000; fibonacci 0..100,000; double |value| ≤ 1e15.
 */
export interface ComputePayload {
  /** What to compute. */
  operation: ComputeOperation;
  /** The integer argument. */
  value: number;
}

/** What `compute` returns: the result as a decimal string, which survives JSON. */
export interface ComputeResult {
  /** The exact result in base 10. */
  result: string;
}

const LIMITS: Record<ComputeOperation, [number, number]> = {
  factorial: [0, 5_000],
  fibonacci: [0, 100_000],
  double: [-1e15, 1e15],
};

/**
 * Handler for `compute`: `factorial(n)`, `fibonacci(n)` (fast doubling,
 * `fibonacci(0) = 0`) or `2 * n`, exactly, using `BigInt`.
 *
 * @param payload `{ operation, value }`.
 * @param ctx The task context; an aborted signal stops the task before it starts.
 * @returns `{ result }` as a decimal string.
 * @throws {PermanentError} When `operation` is unknown or `value` is not an
 * integer within the operation's limits.
 *
 * @example Computing a factorial
 * ```ts
 * import { compute } from "./compute.ts";
 * import { type TaskContext } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const ctx = { signal: new AbortController().signal } as TaskContext;
 * assert.deepEqual(compute({ operation: "factorial", value: 20 }, ctx), {
 *   result: "2432902008176640000",
 * });
 * ```
 */
export function compute(
  payload: ComputePayload,
  ctx: TaskContext,
): ComputeResult {
  const p = payload as unknown as Record<string, unknown> | null;
  if (typeof p !== "object" || p === null) {
    throw new PermanentError(
      `Cannot run compute: payload must be an object, got ${JSON.stringify(p)}`,
    );
  }
  const operation = p.operation;
  if (
    typeof operation !== "string" || !Object.hasOwn(LIMITS, operation)
  ) {
    throw new PermanentError(
      `Cannot run compute: payload.operation must be "factorial", "fibonacci" or "double", got ${
        JSON.stringify(operation)
      }`,
    );
  }
  const [min, max] = LIMITS[operation as ComputeOperation];
  const value = p.value;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < min ||
    value > max
  ) {
    throw new PermanentError(
      `Cannot run compute: payload.value must be an integer from ${min} to ${max} for ${operation}, got ${
        JSON.stringify(value)
      }`,
    );
  }
  ctx.signal.throwIfAborted();
  switch (operation as ComputeOperation) {
    case "factorial":
      return { result: factorial(value).toString() };
    case "fibonacci":
      return { result: fibonacci(value)[0].toString() };
    case "double":
      return { result: (BigInt(value) * 2n).toString() };
  }
}

function factorial(n: number): bigint {
  // Multiply by halves so the operands stay balanced.
  const product = (lo: number, hi: number): bigint => {
    if (lo > hi) return 1n;
    if (hi - lo < 8) {
      let r = 1n;
      for (let i = lo; i <= hi; i++) r *= BigInt(i);
      return r;
    }
    const mid = (lo + hi) >>> 1;
    return product(lo, mid) * product(mid + 1, hi);
  };
  return product(2, n);
}

/** Returns [F(n), F(n + 1)] by fast doubling. */
function fibonacci(n: number): [bigint, bigint] {
  if (n === 0) return [0n, 1n];
  const [a, b] = fibonacci(Math.floor(n / 2));
  const c = a * (2n * b - a);
  const d = a * a + b * b;
  return n % 2 === 0 ? [c, d] : [d, c + d];
}
