/**
 * What the queue's modules share: the public input and output types, the
 * queue's errors, and the task entry every module reads.
 *
 * @module
 */
import type { OverflowPolicy } from "../channel.ts";
import {
  deserializeError,
  type ErrorClass,
  TaskCancelledError,
} from "../errors.ts";
import type { Logger, LoggerOptions } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type {
  PoolResult,
  PoolTask,
  WorkerPermissionOptions,
} from "../pool/worker_pool.ts";
import type { RetryOptions, RetryPolicy } from "../retry.ts";
import type { PostgresTaskStoreOptions } from "../store/postgres/postgres_store.ts";
import { CANCELLED_MESSAGE } from "../store/_shared.ts";
import type {
  QueueRetention,
  RetentionRule,
  TaskRecord,
  TaskStore,
} from "../store/store.ts";
import type { SchedulerOptions } from "./scheduler.ts";

/** A task to submit. */
export interface TaskInput {
  /** Task type: the name of a handler exported by the handler module. */
  type: string;
  /**
   * The handler's input: structured-cloneable; plain JSON data when the
   * queue is durable.
   *
   * @default {null}
   */
  payload?: unknown;
  /**
   * Deduplicates submissions: a second task with the same key is not run;
   * its handle answers with the first task's result. For `image.variant`
   * tasks it defaults to `image_key + ":" + size`.
   *
   * @default {undefined}
   */
  idempotencyKey?: string;
  /**
   * Attempts allowed for this task, overriding the queue's retry policy.
   *
   * @default {undefined}
   */
  maxAttempts?: number;
  /**
   * Earliest start, as epoch milliseconds or a `Date`.
   *
   * @default {undefined}
   */
  runAt?: number | Date;
  /**
   * How long, in ms from submission, `idempotencyKey` deduplicates. Within
   * the window a submission with the key gets this task's handle (and
   * result); after it, the next submission with the key is a new task that
   * runs, and takes the key over (this task keeps its record, without the
   * key). Without it the key deduplicates for as long as the task is kept,
   * which retention bounds.
   *
   * @default {undefined} for as long as the task is kept
   */
  dedupeFor?: number;
  /**
   * The named queue the task goes to (1 to 128 characters): only
   * processes that claim from it (`TaskQueue.open({ queues })`,
   * `start --queues`) run it.
   *
   * @default {"default"}
   */
  queue?: string;
  /**
   * Claim priority, an integer (32-bit): among due tasks of the queues a
   * process claims from, higher priorities run first; equal priorities
   * run in `runAt`, then submission, order.
   *
   * @default {0}
   */
  priority?: number;
}

/**
 * The task types of a handler module type `H`: the names of its exports
 * that are functions. For `H = unknown` (an untyped queue), any string.
 *
 * @typeParam H The handler module's type, e.g. `typeof import("./handlers.ts")`.
 *
 * @example Naming a module's task types
 * ```ts
 * import type { TaskTypeOf } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const handlers = {
 *   add: (p: { a: number; b: number }): number => p.a + p.b,
 *   limit: 10,
 * };
 * const type: TaskTypeOf<typeof handlers> = "add"; // "limit" is no handler
 * assert.equal(type, "add");
 * ```
 */
export type TaskTypeOf<H> = unknown extends H ? string
  :
    & {
      // deno-lint-ignore no-explicit-any
      [K in keyof H]: H[K] extends (...args: any[]) => unknown ? K : never;
    }[keyof H]
    & string;

/**
 * The payload of task type `K` of handler module type `H`: its handler's
 * first parameter (`undefined` for a handler that takes none). For an
 * untyped queue, `unknown`.
 *
 * @typeParam H The handler module's type.
 * @typeParam K A task type of `H`.
 *
 * @example Reading a handler's payload type
 * ```ts
 * import type { PayloadOf } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const handlers = { add: (p: { a: number; b: number }): number => p.a + p.b };
 * const payload: PayloadOf<typeof handlers, "add"> = { a: 1, b: 2 };
 * assert.equal(payload.a + payload.b, 3);
 * ```
 */
export type PayloadOf<H, K extends TaskTypeOf<H>> = unknown extends H ? unknown
  // deno-lint-ignore no-explicit-any
  : H[K & keyof H] extends (...args: infer A) => any ? A[0]
  : never;

/**
 * What a task of type `K` of handler module type `H` resolves with: its
 * handler's return, awaited. For an untyped queue, `T`. A durable
 * queue keeps only results that JSON holds faithfully (a `Date` or a
 * `Map` dead-letters the task), so type handlers with such results.
 *
 * @typeParam H The handler module's type.
 * @typeParam K A task type of `H`.
 * @typeParam T The result's type for an untyped queue: what the caller
 *   passes to `submit<T>`.
 *
 * @example Reading a handler's result type
 * ```ts
 * import type { ResultOf } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const handlers = {
 *   add: (p: { a: number; b: number }): Promise<number> =>
 *     Promise.resolve(p.a + p.b),
 * };
 * const sum: ResultOf<typeof handlers, "add"> = 3; // a number, not a promise
 * assert.equal(sum, 3);
 * ```
 */
export type ResultOf<H, K extends TaskTypeOf<H>, T = unknown> = unknown extends
  H ? T
  // deno-lint-ignore no-explicit-any
  : H[K & keyof H] extends (...args: any[]) => infer R ? Awaited<R>
  : never;

/**
 * A task of type `K` for a queue typed by handler module type `H`: a
 * {@linkcode TaskInput} whose `type` is `K` and whose `payload` is what
 * that handler takes. The payload may be left out (it is then `null`) only
 * when the handler takes no payload or accepts `null`. For an untyped
 * queue, a plain {@linkcode TaskInput}.
 *
 * @typeParam H The handler module's type.
 * @typeParam K A task type of `H`; left out, the union of one input per
 *   task type, so `type` selects the payload.
 *
 * @example Building a typed task
 * ```ts
 * import type { TypedTaskInput } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const handlers = {
 *   add: (p: { a: number; b: number }): number => p.a + p.b,
 *   ping: (): string => "pong",
 * };
 * const tasks: TypedTaskInput<typeof handlers>[] = [
 *   { type: "add", payload: { a: 1, b: 2 }, idempotencyKey: "add-1-2" },
 *   { type: "ping" },
 * ];
 * assert.equal(tasks.length, 2);
 * ```
 */
export type TypedTaskInput<H, K extends TaskTypeOf<H> = TaskTypeOf<H>> =
  unknown extends H ? TaskInput
    : K extends TaskTypeOf<H> ?
        & Omit<TaskInput, "type" | "payload">
        & { type: K }
        & (null extends PayloadOf<H, K> ? { payload?: PayloadOf<H, K> }
          // deno-lint-ignore no-explicit-any
          : H[K & keyof H] extends () => any ? { payload?: PayloadOf<H, K> }
          : { payload: PayloadOf<H, K> })
    : never;

/**
 * Retention of finished tasks: the policy, and how pruning is paced. A
 * pruned task is gone from the store (`getTask` returns `undefined`) and
 * its idempotency key is free.
 */
export interface RetentionOptions {
  /**
   * Rule for succeeded tasks; `{}` keeps them all.
   *
   * @default {{ maxAgeMs: 86_400_000, maxCount: 100_000 }}
   */
  succeeded?: RetentionRule;
  /**
   * Rule for dead-lettered tasks.
   *
   * @default {{}} kept until requeued or purged
   */
  dead?: RetentionRule;
  /**
   * Rules of particular queues, by name: a rule given for a queue
   * replaces the one above for that queue's tasks, a status it leaves out
   * follows the one above. Every rule applies to each queue separately
   * (`maxCount` counts one queue's tasks).
   *
   * @default {{}}
   */
  queues?: Record<string, QueueRetention>;
  /**
   * Milliseconds between pruning rounds.
   *
   * @default {1000}
   */
  intervalMs?: number;
  /**
   * Tasks deleted per transaction; a round deletes batch after batch,
   * letting the queue's own work run between them.
   *
   * @default {500}
   */
  batchSize?: number;
}

/** Options for one submission. */
export interface SubmitOptions {
  /**
   * Cancels a submission that is waiting for room in the channel.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** Options for a batch submission. */
export interface SubmitManyOptions extends SubmitOptions {
  /**
   * Commit the whole batch in one transaction, after every task is
   * checked: either all of it is accepted or none is. A consuming queue
   * needs channel room for the whole batch at once (it waits for none:
   * a batch that does not fit is refused with `QueueFullError`).
   *
   * @default {false}
   */
  atomic?: boolean;
  /**
   * The caller will not wait for the results (a producer that only
   * enqueues): a task that another process will run, or that a duplicate
   * key finds already in the store, is forgotten by this queue once
   * committed, so submitting millions holds no memory per task. Its
   * handle's `result` rejects at once, saying so; read the outcome with
   * `getTask(id)`. A task this queue claims to run itself is tracked as
   * usual.
   *
   * @default {false}
   */
  detached?: boolean;
}

/** What `submit` returns: the task's id and, later, its result. */
export interface TaskHandle<T = unknown> {
  /** The task's id. For a duplicate, the first task's id. */
  readonly id: string;
  /** The idempotency key, or `null`. */
  readonly idempotencyKey: string | null;
  /** `true` when an earlier task with the same key answered this submission. */
  readonly deduplicated: boolean;
  /**
   * Resolves with the handler's result; rejects with a
   * {@linkcode TaskFailedError} once the task is dead-lettered, or a
   * {@linkcode QueueClosedError} if the queue closes before it finishes.
   */
  readonly result: Promise<T>;
}

/** Options for {@linkcode TaskQueue.open}. Every field is optional. */
export interface TaskQueueOptions {
  /**
   * The most tasks of a named queue this process holds at once (claimed,
   * waiting for a worker slot or running), by queue name: a per-queue
   * concurrency limit inside the process. Each name must be one of
   * `queues`; a queue not named has only the pool's limit.
   *
   * @default {{}}
   */
  queueConcurrency?: Readonly<Record<string, number>>;
  /**
   * The named queues this queue claims from (consumers only), and claims
   * at submit: a task submitted to another queue is stored for a process
   * that claims from it. Whatever the queues, only task types the handler
   * module exports are claimed; the others stay queued for a process
   * whose module exports them.
   *
   * @default {["default"]}
   */
  queues?: readonly string[];
  /**
   * URL of the handler module (its named exports are handlers by task type).
   *
   * @default {the built-in handlers, `lib/handlers/builtin.ts`}
   */
  handlers?: string | URL;
  /**
   * Worker threads.
   *
   * @default {navigator.hardwareConcurrency}
   */
  workers?: number;
  /**
   * Tasks at once per worker (more than 1 suits I/O-bound handlers).
   *
   * @default {1}
   */
  concurrency?: number;
  /**
   * Tasks the channel in front of the pool holds: accepted (or claimed)
   * and not yet handed to a worker.
   *
   * @default {1024}
   */
  capacity?: number;
  /**
   * What `submit` does when the channel is full: wait, or throw
   * `QueueFullError`.
   *
   * @default {"block"}
   */
  overflow?: OverflowPolicy;
  /**
   * Where state lives: a SQLite file path (durable), `":memory:"` (SQLite in
   * memory), a PostgreSQL URL (see `postgres`), or a
   * {@linkcode TaskStore}. Without it, an in-memory store. A store the
   * queue opened from a string is closed with the queue.
   *
   * @default {undefined}
   */
  db?: string | TaskStore;
  /**
   * SQLite `synchronous` for a path `db`.
   *
   * @default {"NORMAL"}
   */
  synchronous?: "NORMAL" | "FULL" | "OFF";
  /**
   * SQLite driver for a path `db`.
   *
   * @default {"auto"}
   */
  driver?: "ffi" | "builtin" | "auto";
  /**
   * PostgreSQL settings for a `postgres://` `db`: the schema the queue
   * lives in, the connection pool's size, notifications.
   *
   * @default {{}} schema "sluice", 4 connections
   */
  postgres?: PostgresTaskStoreOptions;
  /**
   * Retry policy, or options to build one.
   *
   * @default {new RetryPolicy()}
   */
  retry?: RetryPolicy | RetryOptions;
  /**
   * Per-task timeout in milliseconds; 0 for none.
   *
   * @default {30000}
   */
  timeoutMs?: number;
  /**
   * How long a timed-out or cancelled handler may run on before its worker
   * is replaced.
   *
   * @default {1000}
   */
  graceMs?: number;
  /**
   * Lease of a claimed task, ms. Every task this process holds, wherever it
   * waits or runs, has its lease renewed by one heartbeat until it is
   * settled, so the lease is independent of how long tasks run; it bounds
   * how long a crashed process's tasks wait before another process takes
   * them over.
   *
   * @default {30000}
   */
  leaseMs?: number;
  /**
   * Tasks claimed from the store beyond the free worker slots, so workers
   * do not idle while the main thread commits the next claim. Only work
   * this process did not submit is claimed; what it holds is bounded by
   * `capacity + workers × concurrency`.
   *
   * @default {workers × concurrency}
   */
  prefetch?: number;
  /**
   * How often to look in the store for work this process did not submit
   * (other producers, due retries, expired leases), in ms.
   *
   * @default {100}
   */
  pollIntervalMs?: number;
  /**
   * Run tasks. `false` makes a producer-only queue (no workers), e.g. to
   * submit into a database another process works on.
   *
   * @default {true}
   */
  consume?: boolean;
  /**
   * What to keep of finished tasks, pruned in the background by a
   * consuming queue, in small batches; `false` keeps everything. Left
   * out, `succeeded` keeps succeeded tasks for 24 hours or the last
   * 100,000, whichever is less, and `dead` keeps dead-lettered tasks until
   * they are requeued or purged.
   *
   * @default {{ succeeded: { maxAgeMs: 86_400_000, maxCount: 100_000 } }}
   */
  retention?: RetentionOptions | false;
  /**
   * Root directory of the object store handlers see as `ctx.objects`.
   *
   * @default {Deno.cwd()}
   */
  objectsRoot?: string;
  /**
   * Deno permissions of the workers that run this queue's handlers,
   * narrower than the process's (`WorkerPermissions` from
   * `@sluice/sluice/pool`; a kind left out of the object is denied). The
   * handler module and its static imports load without a grant; grant read
   * and write on `objectsRoot` for `ctx.objects`. A handler that oversteps fails its task permanently
   * (dead-lettered, not retried) with Deno's `NotCapable` error, whose
   * message names the permission. Anything but `"inherit"` needs Deno's
   * `--unstable-worker-options` flag.
   *
   * @default {"inherit"} the process's own permissions
   */
  permissions?: WorkerPermissionOptions;
  /**
   * The logger, or options for one.
   *
   * @default {a JSON logger at level "warn" on stderr}
   */
  logger?: Logger | LoggerOptions;
  /**
   * Metrics sink; pass one to share or inspect it.
   *
   * @default {new Metrics()}
   */
  metrics?: Metrics;
  /**
   * Serve Prometheus `/metrics` and `/healthz` (200 while running, 503
   * while draining) on this port of 127.0.0.1; 0 picks a free port. Needs
   * `--allow-net=127.0.0.1`.
   *
   * @default {undefined} no server
   */
  metricsPort?: number;
  /**
   * File that `close` writes the final metrics snapshot to: CSV when the
   * name ends in `.csv`, JSON otherwise.
   *
   * @default {undefined} none
   */
  metricsFile?: string;
  /**
   * How a consuming queue runs the store's schedules (see
   * {@linkcode TaskQueue.schedule}): its clock and how often it reads
   * them again.
   *
   * @default {{}}
   */
  scheduler?: SchedulerOptions;
}

/** Options for {@linkcode TaskQueue.close}. */
export interface CloseOptions {
  /**
   * Milliseconds to let queued and running tasks finish. Past it, tasks
   * not yet started are handed back to the store uncharged, and running
   * handlers are cancelled through `ctx.signal`; in a durable store they
   * run again on the next start.
   *
   * @default {30000}
   */
  deadline?: number;
}

/** What {@linkcode TaskQueue.close} reports. */
export interface CloseReport {
  /** `true` when everything submitted here finished before the deadline. */
  drained: boolean;
  /** Tasks submitted here that had not finished (they stay in a durable store). */
  unfinished: number;
  /** Ids of those tasks. */
  unfinishedIds: string[];
}

/**
 * Thrown by `submit` on a closed queue, and by a handle's `result` when the
 * queue closed before the task finished.
 *
 * @example Submitting to a closed queue
 * ```ts
 * import { QueueClosedError, TaskQueue } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const queue = await TaskQueue.open({ workers: 1 });
 * await queue.close();
 * await assert.rejects(queue.submit({ type: "noop" }), QueueClosedError);
 * ```
 */
export class QueueClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What could not be done.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "QueueClosedError";
  }
}

/**
 * The rejection of a handle's `result` when its task was dead-lettered: a
 * permanent error, or a transient one with no attempts left.
 *
 * @example Inspecting a failure
 * ```ts
 * import { TaskFailedError, TaskQueue } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * await using queue = await TaskQueue.open({ workers: 1 });
 * const handle = await queue.submit({ type: "fail", payload: { error_message: "no" } });
 * const error = await handle.result.catch((e: unknown) => e);
 * assert.ok(error instanceof TaskFailedError);
 * assert.equal(error.errorClass, "permanent");
 * assert.equal(error.attempts, 1);
 * ```
 */
export class TaskFailedError extends Error {
  /** The task's id. */
  readonly taskId: string;
  /** Attempts made. */
  readonly attempts: number;
  /** Class of the last error. */
  readonly errorClass: ErrorClass;

  /**
   * Creates the error.
   *
   * @param taskId The dead task.
   * @param attempts Attempts made.
   * @param errorClass Class of the last error.
   * @param options `cause` is the last error.
   */
  constructor(
    taskId: string,
    attempts: number,
    errorClass: ErrorClass,
    options: ErrorOptions,
  ) {
    const message = options.cause instanceof Error
      ? options.cause.message
      : String(options.cause);
    super(
      `Cannot finish task ${taskId}: ${message} (after ${attempts} attempts)`,
      options,
    );
    this.name = "TaskFailedError";
    this.taskId = taskId;
    this.attempts = attempts;
    this.errorClass = errorClass;
  }
}

/**
 * The failure a dead task's handle rejects with, from its stored record.
 *
 * @param record A dead task.
 * @returns The error.
 */
export function failureOf(
  record: TaskRecord,
): TaskFailedError | TaskCancelledError {
  if (record.lastError === CANCELLED_MESSAGE) return cancelledError(record.id);
  const errorClass = record.errorClass ?? "permanent";
  const cause = deserializeError({
    name: errorClass === "transient" ? "TransientError" : "PermanentError",
    message: record.lastError ?? "unknown error",
    errorClass,
  });
  return new TaskFailedError(record.id, record.attempts, errorClass, { cause });
}

/**
 * The error a cancelled task's handle rejects with.
 *
 * @param id The task id.
 * @returns The error.
 */
export function cancelledError(id: string): TaskCancelledError {
  return new TaskCancelledError(`Cannot run task ${id}: cancelled`);
}

/**
 * Where one task stands in this process. Who moves an entry out of each
 * state:
 *
 * - `reserved`: intake holds a channel slot while its insert commits.
 * - `queued`: claimed (by the insert, or a claim of due work) and waiting
 *   in the channel; the dispatcher hands it to a worker.
 * - `dispatched`: in a worker slot, handler not started yet; the pool's
 *   start report moves it.
 * - `running`: the handler started; an attempt is charged. The settler
 *   takes its result.
 * - `settling`: its settle or release is being committed; the settler
 *   moves it on once the store answers.
 * - `remote`: this process holds no claim; the task waits in the store
 *   (scheduled, retrying, or run by another process). Its handle is
 *   answered when this process claims it, or by polling the store.
 *
 * Leaving the table is the end state: the handle has its answer.
 */
export type TaskState =
  | "reserved"
  | "queued"
  | "dispatched"
  | "running"
  | "settling"
  | "remote";

/** Whether the start of the current attempt has been charged in the store. */
export type ChargeState = "none" | "pending" | "written";

/** A promise with its resolvers, for a handle's result. */
export interface Deferred {
  /** The result callers await. */
  promise: Promise<unknown>;
  /** Answers with the handler's result. */
  resolve(value: unknown): void;
  /** Answers with a failure. */
  reject(error: unknown): void;
}

/**
 * One task this process knows about: its only entry in the task table.
 * The entry is also the {@linkcode PoolTask} the pool runs, so dispatching
 * allocates nothing.
 */
export interface TaskEntry extends PoolTask {
  /** Where the task stands; changed only by `TaskTable.move`. */
  state: TaskState;
  /** The named queue it belongs to. */
  readonly queue: string;
  /** Submitted here by a consuming queue: `drain` waits for it. */
  readonly local: boolean;
  /** Attempt limit. */
  maxAttempts: number;
  /** Claim fencing token (the record's version) while a claim is held. */
  version: number;
  /** When the idempotency key's window ends (epoch ms); `null`: never. */
  dedupeUntil: number | null;
  /** When the held claim's lease ends (epoch ms). */
  leaseUntil: number;
  /** Whether this attempt's start is charged. */
  charge: ChargeState;
  /** Whoever waits here for the result; null when nobody does. */
  handle: Deferred | null;
  /** When the task is due (epoch ms); what a remote entry waits for. */
  runAt: number;
  /** `performance.now()` when the task was accepted or became due here. */
  acceptedAt: number;
  /** A renewal or start came back stale: another process holds the task. */
  leaseLost: boolean;
  /**
   * Cancelled by this process: its handle rejects with a
   * `TaskCancelledError` once the running attempt (whose settle the store
   * refuses) ends.
   */
  cancelled: boolean;
  /** While `settling`: what is being committed. */
  pending: PendingSettle | null;
  /**
   * What the claim returned as the last attempt's checkpoint (the
   * handler's `ctx.checkpointed`); `undefined` for none.
   */
  checkpoint: unknown;
}

/** What a settling entry is waiting to commit, and what to report once it is. */
export type PendingSettle =
  | {
    kind: "succeeded";
    value: unknown;
    waitMs: number;
    runMs: number;
    workerId: number;
  }
  | {
    kind: "retry" | "dead";
    runAt: number;
    error: string;
    errorName: string;
    errorClass: ErrorClass;
    waitMs: number;
    runMs: number;
    workerId: number;
  }
  | { kind: "release"; reason: "shutdown" | "not-started"; refund: boolean };

/**
 * What the dispatcher needs of the settler: results to settle, and tasks
 * to hand back. Declared here so neither module imports the other.
 */
export interface ResultSink {
  /** Settles one attempt's result. */
  onResult(entry: TaskEntry, result: PoolResult): void;
  /** Hands a held claim back to the store, uncharged. */
  release(entry: TaskEntry, reason: "shutdown" | "not-started"): void;
}

/** What the settler and intake need of the dispatcher. */
export interface DueSink {
  /** Work may be claimable at `runAt` (epoch ms): look then. */
  dueAt(runAt: number): void;
  /** Work may be claimable now: look at the next pump. */
  wake(): void;
}

/**
 * A new entry for a task record this process now knows about.
 *
 * @param record The stored task.
 * @param state Its first state.
 * @param local Whether `drain` waits for it.
 * @param now The queue's epoch-ms clock, to date how long it has been due.
 * @returns The entry.
 */
export function entryOf(
  record: TaskRecord,
  state: TaskState,
  local: boolean,
  now: number,
): TaskEntry {
  return {
    id: record.id,
    type: record.type,
    queue: record.queue,
    payload: record.payload,
    attempt: record.attempts + 1,
    idempotencyKey: record.idempotencyKey,
    state,
    local,
    maxAttempts: record.maxAttempts,
    version: record.version,
    dedupeUntil: record.dedupeUntil,
    leaseUntil: record.leaseUntil ?? 0,
    charge: "none",
    handle: null,
    runAt: record.runAt,
    acceptedAt: performance.now() - Math.max(0, now - record.runAt),
    leaseLost: false,
    cancelled: false,
    pending: null,
    checkpoint: record.checkpoint ?? undefined,
  };
}

/**
 * A deferred result whose rejection is never unhandled: a caller that
 * never reads `result` must not see one.
 *
 * @returns The deferred.
 */
export function deferred(): Deferred {
  const { promise, resolve, reject } = Promise.withResolvers<unknown>();
  promise.catch(() => {});
  return { promise, resolve, reject };
}
