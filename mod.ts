/**
 * Sluice: a Deno-native task queue. Web Workers form the thread pool, a
 * bounded channel on a counting semaphore sits in front of it, and SQLite
 * holds the state.
 *
 * @example Checking the version
 * ```ts
 * import { VERSION } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * assert.match(VERSION, /^\d+\.\d+\.\d+$/);
 * ```
 *
 * @module
 */

/**
 * The version of this package.
 *
 * @example Reading the version
 * ```ts
 * import { VERSION } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * assert.equal(typeof VERSION, "string");
 * ```
 */
export const VERSION: string = "0.1.0";

// -- errors --
export {
  deserializeError,
  type ErrorClass,
  errorClassOf,
  PermanentError,
  type SerializedError,
  serializeError,
  TaskTimeoutError,
  TransientError,
  WorkerCrashedError,
} from "./lib/errors.ts";
export type {
  Handler,
  LogFields,
  TaskContext,
  TaskLogger,
} from "./lib/handler.ts";

// -- semaphore, channel --

// -- pool --

// -- store --

// -- metrics, log --

// -- objects, handlers --

// -- queue --
