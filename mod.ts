/**
 * Sluice: a Deno-native task queue. Web Workers form the thread pool, a
 * bounded channel on a counting semaphore sits in front of it, and SQLite
 * (or PostgreSQL) holds the state: idempotency keys, retries with backoff,
 * and a dead-letter queue.
 *
 * @example Running tasks on the built-in handlers, durably
 * ```ts
 * import { TaskQueue } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * {
 *   await using queue = await TaskQueue.open({
 *     db: `${dir}/tasks.db`, // SQLite; omit for an in-memory queue
 *     workers: 2,
 *     capacity: 1024, // bounded channel; overflow "block" (default) or "reject"
 *     retry: { maxAttempts: 3, baseMs: 100, capMs: 2000 },
 *   });
 *
 *   const handle = await queue.submit({
 *     type: "compute",
 *     payload: { operation: "factorial", value: 25 },
 *     idempotencyKey: "factorial-25",
 *   });
 *   assert.deepEqual(await handle.result, { result: "15511210043330985984000000" });
 *
 *   // The same key again: answered by the first task, not run twice.
 *   const again = await queue.submit({
 *     type: "compute",
 *     payload: { operation: "factorial", value: 25 },
 *     idempotencyKey: "factorial-25",
 *   });
 *   assert.equal(again.deduplicated, true);
 *   assert.equal(again.id, handle.id);
 *
 *   assert.equal(queue.metrics.snapshot().counters.succeeded, 1);
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

export { VERSION } from "./lib/version.ts";

// -- the queue --
export { TaskQueue } from "./lib/queue/task_queue.ts";
export type { QueueChannelStats } from "./lib/queue/task_queue.ts";
export {
  type CloseOptions,
  type CloseReport,
  type PayloadOf,
  QueueClosedError,
  type ResultOf,
  type RetentionOptions,
  type SubmitManyOptions,
  type SubmitOptions,
  TaskFailedError,
  type TaskHandle,
  type TaskInput,
  type TaskQueueOptions,
  type TaskState,
  type TaskTypeOf,
  type TypedTaskInput,
} from "./lib/queue/types.ts";
export { type OverflowPolicy, QueueFullError } from "./lib/channel.ts";
export type {
  AttemptEvent,
  FailureEvent,
  TaskEventBase,
  TaskEventListener,
  TaskEventMap,
  TaskEventName,
} from "./lib/queue/events.ts";
export type {
  CancelOutcome,
  QueueState,
  RemoveOutcome,
  RetentionRule,
  TaskRecord,
  TaskStatus,
  TaskStore,
} from "./lib/store/store.ts";
export type {
  PostgresTaskStoreOptions,
  PostgresTransaction,
} from "./lib/store/postgres/postgres_store.ts";
export type { SubmitWithOptions } from "./lib/queue/transactional.ts";
export type { SubmittedIds } from "./lib/queue/submitted_ids.ts";
export type {
  ScheduleOptions,
  SchedulerClock,
  SchedulerOptions,
} from "./lib/queue/scheduler.ts";
export type { ScheduleRecord, ScheduleTask } from "./lib/store/store.ts";

// -- handlers and their errors --
export type {
  Handler,
  LogFields,
  TaskContext,
  TaskLogger,
} from "./lib/handler.ts";
export {
  type ErrorClass,
  PermanentError,
  type SerializedError,
  TaskCancelledError,
  TaskTimeoutError,
  TransientError,
  WorkerCrashedError,
} from "./lib/errors.ts";
export {
  type JitterMode,
  type RetryDecision,
  type RetryOptions,
  RetryPolicy,
  type RetryVerdict,
} from "./lib/retry.ts";
export {
  InvalidObjectKeyError,
  type ObjectInfo,
  ObjectNotFoundError,
  type ObjectRequestOptions,
  ObjectStore,
  type ObjectStoreOptions,
  type PutResult,
} from "./lib/objects.ts";

// -- observability --
export { Metrics, type MetricsSnapshot } from "./lib/metrics/metrics.ts";
export {
  type LogFormat,
  Logger,
  type LoggerOptions,
  type LogLevel,
} from "./lib/log.ts";
