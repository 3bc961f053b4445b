/**
 * Errors shared by handlers, the worker pool and the retry policy.
 *
 * Handlers throw {@linkcode TransientError} for failures worth retrying and
 * {@linkcode PermanentError} for failures that will never succeed. The pool
 * reports {@linkcode WorkerCrashedError} and {@linkcode TaskTimeoutError}
 * itself; both are transient.
 *
 * @module
 */

/** How a failure is treated: `"transient"` may be retried, `"permanent"` never is. */
export type ErrorClass = "transient" | "permanent";

/**
 * A failure that may succeed if tried again later: a timeout, a dropped
 * connection, an overloaded dependency.
 *
 * @example Throwing a transient error from a handler
 * ```ts
 * import { TransientError } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const error = new TransientError("Cannot reach upstream: 503");
 * assert.equal(error.name, "TransientError");
 * assert.equal(error.errorClass, "transient");
 * ```
 */
export class TransientError extends Error {
  /** Always `"transient"`. */
  readonly errorClass: ErrorClass = "transient";

  /**
   * Creates a transient error.
   *
   * @param message What failed, "Cannot <action>: <state>".
   * @param options Standard error options; `cause` is kept.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransientError";
  }
}

/**
 * A failure that will not succeed however often it is tried: bad input,
 * a missing object, an unknown task type.
 *
 * @example Throwing a permanent error from a handler
 * ```ts
 * import { PermanentError } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const error = new PermanentError("Cannot resize: size is missing");
 * assert.equal(error.errorClass, "permanent");
 * ```
 */
export class PermanentError extends Error {
  /** Always `"permanent"`. */
  readonly errorClass: ErrorClass = "permanent";

  /**
   * Creates a permanent error.
   *
   * @param message What failed, "Cannot <action>: <state>".
   * @param options Standard error options; `cause` is kept.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermanentError";
  }
}

/**
 * The worker running a task died (an uncaught error, `Deno.exit`, or
 * termination after a timeout). Transient: the task is retried elsewhere.
 *
 * @example Recognising a crash
 * ```ts
 * import { WorkerCrashedError } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const error = new WorkerCrashedError("Cannot finish task: worker 2 died");
 * assert.equal(error.errorClass, "transient");
 * ```
 */
export class WorkerCrashedError extends TransientError {
  /**
   * Creates a worker-crashed error.
   *
   * @param message What failed.
   * @param options Standard error options; `cause` is kept.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WorkerCrashedError";
  }
}

/**
 * A task ran past its timeout. Transient.
 *
 * @example Recognising a timeout
 * ```ts
 * import { TaskTimeoutError } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const error = new TaskTimeoutError("Cannot finish task: timed out after 50 ms");
 * assert.equal(error.errorClass, "transient");
 * ```
 */
export class TaskTimeoutError extends TransientError {
  /**
   * Creates a timeout error.
   *
   * @param message What failed.
   * @param options Standard error options; `cause` is kept.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TaskTimeoutError";
  }
}

/**
 * A task was cancelled because its queue shut down before it finished:
 * the handler's `ctx.signal` aborts with this reason. Transient: the task
 * keeps its lease and runs again after the next start.
 *
 * @example Recognising a cancellation
 * ```ts
 * import { TaskCancelledError } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const error = new TaskCancelledError("Cannot finish task: the queue is shutting down");
 * assert.equal(error.errorClass, "transient");
 * ```
 */
export class TaskCancelledError extends TransientError {
  /**
   * Creates a cancellation error.
   *
   * @param message What could not be finished.
   * @param options Standard error options; `cause` is kept.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TaskCancelledError";
  }
}

/**
 * An error as it crosses a thread or process boundary and is stored:
 * plain data, structured-cloneable and JSON-serializable.
 */
export interface SerializedError {
  /** The error's `name`, e.g. `"TransientError"`. */
  name: string;
  /** The error's message. */
  message: string;
  /** How it is treated by the retry policy. */
  errorClass: ErrorClass;
  /** The stack trace, when there is one. */
  stack?: string;
}

/**
 * Classifies any thrown value by the default rules: an explicit
 * `errorClass` property wins; `TypeError`, `RangeError` and `SyntaxError`
 * (bad input) are permanent, and so are Deno's permission errors
 * (`NotCapable`, `PermissionDenied`, also as the `cause` of what was
 * thrown): the same code asking again is refused again. Anything else is
 * transient.
 *
 * @param error Whatever was thrown.
 * @returns The class the default retry policy gives it.
 *
 * @example Classifying errors
 * ```ts
 * import { errorClassOf } from "./errors.ts";
 * import { PermanentError } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * assert.equal(errorClassOf(new PermanentError("no")), "permanent");
 * assert.equal(errorClassOf(new TypeError("bad field")), "permanent");
 * assert.equal(errorClassOf(new Error("flaky")), "transient");
 * ```
 */
export function errorClassOf(error: unknown): ErrorClass {
  if (typeof error !== "object" || error === null) return "transient";
  try {
    const declared = (error as { errorClass?: unknown }).errorClass;
    if (declared === "transient" || declared === "permanent") return declared;
    if (
      error instanceof TypeError || error instanceof RangeError ||
      error instanceof SyntaxError || isPermissionError(error)
    ) {
      return "permanent";
    }
  } catch {
    // A getter that throws, or a revoked proxy: nothing declared.
  }
  return "transient";
}

/**
 * Deno's errors for an access refused by its permissions (`NotCapable`) or
 * the operating system (`PermissionDenied`), known by name: this module
 * does not use `Deno.*`.
 */
const PERMISSION_ERRORS: ReadonlySet<string> = new Set([
  "NotCapable",
  "PermissionDenied",
]);

/** Whether `error`, or an error in its `cause` chain, is a permission error. */
function isPermissionError(error: object): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8; depth++) {
    if (typeof current !== "object" || current === null) return false;
    const name = stringField(current, "name");
    if (name !== undefined && PERMISSION_ERRORS.has(name)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** Longest message or stack kept; handlers can throw anything. */
const MAX_TEXT = 8192;

function clip(text: string): string {
  return text.length <= MAX_TEXT
    ? text
    : `${text.slice(0, MAX_TEXT)}… (${text.length - MAX_TEXT} more characters)`;
}

/** Reads `value[key]` as a string, or `undefined` when it is not one or reading throws. */
function stringField(value: object, key: string): string | undefined {
  try {
    const field = (value as Record<string, unknown>)[key];
    return typeof field === "string" ? field : undefined;
  } catch {
    return undefined;
  }
}

/** Describes a thrown value that is not an `Error`, without ever throwing. */
function describeThrown(value: unknown): string {
  switch (typeof value) {
    case "string":
      return value;
    case "undefined":
      return "handler threw undefined";
    case "function":
      return "handler threw a function";
    case "symbol":
    case "number":
    case "boolean":
    case "bigint":
      return `handler threw ${String(value)}`;
  }
  if (value === null) return "handler threw null";
  try {
    const text = JSON.stringify(value);
    if (typeof text === "string") return `handler threw ${text}`;
  } catch {
    // A cycle, a BigInt or a throwing toJSON: try the next description.
  }
  try {
    const text = String(value);
    if (text !== "[object Object]") return `handler threw ${text}`;
  } catch {
    // No toString (Object.create(null)) or one that throws.
  }
  try {
    return `handler threw ${Object.prototype.toString.call(value)}`;
  } catch {
    return "handler threw an object that cannot be described";
  }
}

/**
 * Turns any thrown value into a {@linkcode SerializedError}, and never
 * throws doing it: a string becomes the message; `undefined`, `null`, a
 * circular object, `Object.create(null)` or an object whose `toString`
 * throws get a description instead. Messages and stacks longer than 8 KiB
 * are cut.
 *
 * @param error Whatever was thrown.
 * @returns Plain data describing it.
 *
 * @example Serializing an error
 * ```ts
 * import { PermanentError } from "@sluice/sluice";
 * import { serializeError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const data = serializeError(new PermanentError("Cannot parse: bad json"));
 * assert.deepEqual(
 *   { name: data.name, message: data.message, errorClass: data.errorClass },
 *   { name: "PermanentError", message: "Cannot parse: bad json", errorClass: "permanent" },
 * );
 * ```
 */
export function serializeError(error: unknown): SerializedError {
  const errorClass = errorClassOf(error);
  let isError = false;
  try {
    isError = error instanceof Error;
  } catch {
    // A proxy whose prototype trap throws.
  }
  if (isError) {
    const out: SerializedError = {
      name: stringField(error as Error, "name") ?? "Error",
      message: clip(stringField(error as Error, "message") ?? ""),
      errorClass,
    };
    const stack = stringField(error as Error, "stack");
    if (stack !== undefined) out.stack = clip(stack);
    return out;
  }
  return { name: "Error", message: clip(describeThrown(error)), errorClass };
}

/**
 * Rebuilds an `Error` from a {@linkcode SerializedError}, choosing the class
 * by `errorClass` and `name` so that `instanceof` checks keep working.
 *
 * @param data The serialized error.
 * @returns An error carrying the same name, message and class.
 *
 * @example Round trip
 * ```ts
 * import { deserializeError, serializeError } from "./errors.ts";
 * import { TransientError } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const error = deserializeError(serializeError(new TransientError("later")));
 * assert.ok(error instanceof TransientError);
 * assert.equal(error.message, "later");
 * ```
 */
export function deserializeError(data: SerializedError): Error {
  let error: Error;
  switch (data.name) {
    case "WorkerCrashedError":
      error = new WorkerCrashedError(data.message);
      break;
    case "TaskTimeoutError":
      error = new TaskTimeoutError(data.message);
      break;
    case "TaskCancelledError":
      error = new TaskCancelledError(data.message);
      break;
    default:
      error = data.errorClass === "permanent"
        ? new PermanentError(data.message)
        : new TransientError(data.message);
      error.name = data.name;
  }
  if (data.stack !== undefined) error.stack = data.stack;
  return error;
}
