/**
 * What a task handler is and what it receives.
 *
 * A handler module is an ES module whose named exports are handler
 * functions, keyed by task type. The worker pool loads it by URL in every
 * worker.
 *
 * @module
 */
import type { ObjectStore } from "./objects.ts";

/** Fields attached to a log line. Values must be JSON-serializable. */
export type LogFields = Record<string, unknown>;

/** The logger a handler receives: each line already carries the task's id, key and attempt. */
export interface TaskLogger {
  /** Logs a debug line. */
  debug(event: string, fields?: LogFields): void;
  /** Logs an info line. */
  info(event: string, fields?: LogFields): void;
  /** Logs a warning. */
  warn(event: string, fields?: LogFields): void;
  /** Logs an error. */
  error(event: string, fields?: LogFields): void;
}

/** What a handler receives besides its payload. */
export interface TaskContext {
  /**
   * Aborts when the task reaches its timeout (reason: `TaskTimeoutError`)
   * or when its queue closes past the deadline (reason:
   * `TaskCancelledError`). The handler then has the queue's grace period
   * to stop before its worker is terminated.
   */
  readonly signal: AbortSignal;
  /** 1 for the first run, 2 for the first retry, and so on. */
  readonly attempt: number;
  /** The task's id. */
  readonly taskId: string;
  /** The task's idempotency key, or `null` when it has none. */
  readonly idempotencyKey: string | null;
  /** The task's type, i.e. the handler's export name. */
  readonly type: string;
  /** The object store rooted at the pool's objects directory. */
  readonly objects: ObjectStore;
  /** A structured logger bound to this task. */
  readonly log: TaskLogger;
  /**
   * The state the task's last attempt saved with
   * {@linkcode TaskContext.checkpoint}, read from the store when this
   * attempt was claimed: after a retry, or after another process's crash
   * and the recovery of its lease. `undefined` on a first attempt, or
   * when nothing was checkpointed (or `null` was).
   */
  readonly checkpointed: unknown;
  /**
   * Reports how far the task has come: a number or a small JSON value,
   * recorded on the task (`getTask(id).progress`, `status --json`) and
   * announced as a `progress` event once committed. Cheap to call often:
   * only the last value of each turn of the event loop is sent, and the
   * queue writes the last one per commit. Ignored once the handler has
   * returned.
   *
   * @param value Plain JSON data, at most 4096 bytes as JSON.
   * @throws {TypeError} When `value` is not plain JSON data (a `Map`, a
   *   `Date`, `NaN`, `undefined`, a cycle, a string holding U+0000…).
   * @throws {RangeError} When its JSON is longer than 4096 bytes.
   */
  progress(value: unknown): void;
  /**
   * Saves `state` durably for the task's next attempt, which receives it
   * as {@linkcode TaskContext.checkpointed}: a long job that checkpoints
   * after each chunk resumes after the last one saved instead of starting
   * over. Resolves once the state is committed to the store; rejects if
   * the task's claim was taken over by another process (this attempt's
   * work will not count) or the store could not be written.
   *
   * @param state Plain JSON data, at most 4096 bytes as JSON; `null`
   *   clears the checkpoint.
   * @returns A promise that resolves once the state is committed.
   * @throws {TypeError} (as a rejection) When `state` is not plain JSON
   *   data.
   * @throws {RangeError} (as a rejection) When its JSON is longer than
   *   4096 bytes.
   */
  checkpoint(state: unknown): Promise<void>;
}

/**
 * A task handler: takes the payload and a context, returns the result
 * (structured-cloneable; JSON-serializable when the queue is durable).
 */
export type Handler = (
  payload: never,
  ctx: TaskContext,
) => unknown;
