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
}

/**
 * A task handler: takes the payload and a context, returns the result
 * (structured-cloneable; JSON-serializable when the queue is durable).
 */
export type Handler = (
  payload: never,
  ctx: TaskContext,
) => unknown;
