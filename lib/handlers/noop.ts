/**
 * The `noop` handler: does nothing, for measuring queue overhead.
 *
 * @module
 */
import type { TaskContext } from "../handler.ts";

/**
 * Handler for `noop`: ignores its payload (any value) and returns `null`.
 * Combined with {@linkcode SIMULATED_IO_30MS} fault injection it reproduces
 * the original design's "30 ms simulated I/O" task.
 *
 * @param _payload Ignored.
 * @param _ctx Ignored.
 * @returns `null`.
 *
 * @example Doing nothing
 * ```ts
 * import { noop } from "./noop.ts";
 * import { type TaskContext } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * assert.equal(noop({}, {} as TaskContext), null);
 * ```
 */
export function noop(_payload: unknown, _ctx: TaskContext): null {
  return null;
}
