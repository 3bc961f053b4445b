/**
 * The `fail` handler: always throws, for testing retries and dead letters.
 *
 * @module
 */
import { PermanentError, TransientError } from "../errors.ts";
import type { TaskContext } from "../handler.ts";

/**
 * Payload of the `fail` task type.
 *
 * ```json
 * { "error_message": "Cannot reach upstream: 503", "transient": true }
 * ```
 */
export interface FailPayload {
  /** The message of the thrown error; a non-empty string. */
  error_message: string;
  /** Throw a {@linkcode TransientError} when true, else a {@linkcode PermanentError}. Defaults to false. */
  transient?: boolean;
}

/**
 * Handler for `fail`: throws a `TransientError` (when `transient` is true)
 * or a `PermanentError` carrying `error_message`.
 *
 * @param payload `{ error_message: string, transient?: boolean }`.
 * @param _ctx The task context (unused).
 * @returns Never returns.
 * @throws {TransientError} When `transient` is true.
 * @throws {PermanentError} Otherwise, and when the payload is malformed.
 *
 * @example Failing on purpose
 * ```ts
 * import { fail } from "./fail.ts";
 * import { PermanentError, TransientError, type TaskContext } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const ctx = {} as TaskContext;
 * assert.throws(() => fail({ error_message: "boom", transient: true }, ctx), TransientError);
 * assert.throws(() => fail({ error_message: "boom" }, ctx), PermanentError);
 * ```
 */
export function fail(payload: FailPayload, _ctx: TaskContext): never {
  const p = payload as unknown as Record<string, unknown> | null;
  if (typeof p !== "object" || p === null) {
    throw new PermanentError(
      `Cannot run fail: payload must be an object, got ${JSON.stringify(p)}`,
    );
  }
  if (typeof p.error_message !== "string" || p.error_message === "") {
    throw new PermanentError(
      `Cannot run fail: payload.error_message must be a non-empty string, got ${
        JSON.stringify(p.error_message)
      }`,
    );
  }
  if (p.transient !== undefined && typeof p.transient !== "boolean") {
    throw new PermanentError(
      `Cannot run fail: payload.transient must be a boolean, got ${
        JSON.stringify(p.transient)
      }`,
    );
  }
  if (p.transient === true) throw new TransientError(p.error_message);
  throw new PermanentError(p.error_message);
}
