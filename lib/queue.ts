/**
 * `TaskQueue` wires the parts together: intake → store (group commit,
 * idempotency) → bounded channel → dispatcher → Web Worker pool → settle
 * (success, retry at `run_at`, or dead-letter) → metrics and logs.
 *
 * @module
 */
import { Channel, type OverflowPolicy, QueueFullError } from "./channel.ts";
import {
  deserializeError,
  type ErrorClass,
  type SerializedError,
} from "./errors.ts";
import type { FaultPolicy } from "./faults.ts";
import { GroupCommitter } from "./_group_commit.ts";
import { uuidv7 } from "./_id.ts";
import { type LogFields, Logger, type LoggerOptions } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { type MetricsServer, serveMetrics } from "./metrics_server.ts";
import { type PoolResult, WorkerPool } from "./pool.ts";
import { type RetryOptions, RetryPolicy } from "./retry.ts";
import { MemoryTaskStore } from "./store/memory_store.ts";
import { openStore } from "./store/open_store.ts";
import type { NewTask, TaskRecord, TaskStore } from "./store/store.ts";

/** A task to submit. */
export interface TaskInput {
  /** Task type: the name of a handler exported by the handler module. */
  type: string;
  /**
   * The handler's input: structured-cloneable; JSON-serializable when the
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

/** Options for {@linkcode TaskQueue.open}. Every field is optional. */
export interface TaskQueueOptions {
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
   * Tasks the channel in front of the pool holds.
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
   * memory), or a {@linkcode TaskStore}. Without it, an in-memory store.
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
   * How long a timed-out handler may run on before its worker is replaced.
   *
   * @default {1000}
   */
  graceMs?: number;
  /**
   * Lease of a claimed task, ms. A task whose lease expires (its process
   * died) is claimable again. Must exceed `timeoutMs + graceMs`.
   *
   * @default {timeoutMs + graceMs + 5000, or 60000 without a timeout}
   */
  leaseMs?: number;
  /**
   * Tasks claimed ahead of free worker slots, so workers do not idle while
   * the main thread commits the next claim. Claimed tasks are in flight:
   * they have left the channel and hold a lease. Tasks accepted but not
   * finished are bounded by `capacity + workers × concurrency + prefetch`.
   *
   * @default {workers × concurrency × 2, at least 32}
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
   * Root directory of the object store handlers see as `ctx.objects`.
   *
   * @default {Deno.cwd()}
   */
  objectsRoot?: string;
  /**
   * Fault injection applied in the workers, for tests and benchmarks.
   *
   * @default {undefined}
   */
  faults?: FaultPolicy;
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
}

/** Options for {@linkcode TaskQueue.close}. */
export interface CloseOptions {
  /**
   * Milliseconds to let queued and running tasks finish; what is left
   * then is reported, and stays in a durable store for the next start.
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

/** A task this process is waiting on. */
interface Waiter {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  promise: Promise<unknown>;
  /**
   * `performance.now()` at acceptance; `NaN` when another process runs the
   * task, in which case the handle is answered by polling the store.
   */
  acceptedAt: number;
  /** Whether this process submitted it (counts toward `drain`). */
  local: boolean;
}

const DEFAULT_HANDLERS = new URL("./handlers/builtin.ts", import.meta.url);

function positiveInteger(name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot open queue: ${name} must be an integer >= 1, got ${
        String(value)
      }`,
    );
  }
}

function nonNegative(name: string, value: unknown): void {
  if (typeof value !== "number" || !(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot open queue: ${name} must be a finite number >= 0, got ${
        String(value)
      }`,
    );
  }
}

function defaultIdempotencyKey(type: string, payload: unknown): string | null {
  if (
    type !== "image.variant" || typeof payload !== "object" || payload === null
  ) return null;
  const { image_key, size } = payload as {
    image_key?: unknown;
    size?: unknown;
  };
  return typeof image_key === "string" && typeof size === "string"
    ? `${image_key}:${size}`
    : null;
}

function settledPromise(record: TaskRecord): Promise<unknown> {
  const promise = record.status === "succeeded"
    ? Promise.resolve(record.result)
    : Promise.reject(failure(record));
  promise.catch(() => {});
  return promise;
}

function failure(record: TaskRecord): TaskFailedError {
  const errorClass = record.errorClass ?? "permanent";
  const cause = deserializeError({
    name: errorClass === "transient" ? "TransientError" : "PermanentError",
    message: record.lastError ?? "unknown error",
    errorClass,
  });
  return new TaskFailedError(record.id, record.attempts, errorClass, { cause });
}

/**
 * A bounded, durable task queue in front of a pool of Web Workers.
 *
 * @example Running tasks on the built-in handlers
 * ```ts
 * import { TaskQueue } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * await using queue = await TaskQueue.open({ workers: 2 });
 * const handle = await queue.submit({
 *   type: "compute",
 *   payload: { operation: "factorial", value: 20 },
 * });
 * assert.deepEqual(await handle.result, { result: "2432902008176640000" });
 *
 * const again = await queue.submit({
 *   type: "compute",
 *   payload: { operation: "double", value: 21 },
 *   idempotencyKey: "double-21",
 * });
 * const duplicate = await queue.submit({
 *   type: "compute",
 *   payload: { operation: "double", value: 21 },
 *   idempotencyKey: "double-21",
 * });
 * assert.equal(duplicate.deduplicated, true);
 * assert.equal(duplicate.id, again.id);
 * assert.deepEqual(await duplicate.result, await again.result);
 * ```
 */
export class TaskQueue implements AsyncDisposable {
  /** The store holding the state. */
  readonly store: TaskStore;
  /** Counters, gauges and latency histograms. */
  readonly metrics: Metrics;
  /** The structured logger. */
  readonly logger: Logger;
  /** The retry policy. */
  readonly retry: RetryPolicy;

  #pool: WorkerPool | null;
  #channel: Channel<TaskRecord>;
  #committer: GroupCommitter;
  #leaseMs: number;
  /** Lease a claim must still hold to be dispatched: timeout + grace. */
  #runBudgetMs: number;
  /** How long a cancelled handler may take to stop. */
  #graceMs: number;
  #pollIntervalMs: number;
  #ownsStore: boolean;

  /** Tasks this process waits on, by id. */
  #waiters = new Map<string, Waiter>();
  /** Live tasks of this process by idempotency key, for in-memory dedup. */
  #liveKeys = new Map<string, string>();
  /** Local submissions not yet final (succeeded or dead): what `drain` waits for. */
  #outstanding = 0;
  /** Waits for a condition on `#outstanding` and `#active`; see `#wakeIdle`. */
  #idleWaiters: Array<{ check: () => boolean; resolve: () => void }> = [];

  /**
   * Claimed records waiting in the channel, by id: their leases are kept
   * alive by the heartbeat. A record whose renewal was refused is marked
   * lost and dropped when it leaves the channel.
   */
  #held = new Map<string, TaskRecord>();
  #lost = new Set<string>();
  /** A sweep of `#pollWaiters` is under way. */
  #sweeping = false;
  /** Claims requested plus tasks in the pool: bounded by `#window`. */
  #active = 0;
  #window: number;
  /** Ask the store for due tasks at the next pump. */
  #wantDue = true;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryAt = Infinity;
  /** Run times of retries scheduled here and not yet due. */
  #retryTimes: number[] = [];
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #unsubscribe: (() => void) | undefined;
  #pumpScheduled = false;

  #closing = false;
  /** Close passed its deadline and is cancelling what is left. */
  #cancelling = false;
  #closed = false;
  #draining = false;
  #server: MetricsServer | undefined;
  #metricsFile: string | undefined;

  private constructor(
    store: TaskStore,
    ownsStore: boolean,
    pool: WorkerPool | null,
    options: {
      capacity: number;
      overflow: OverflowPolicy;
      prefetch: number;
      leaseMs: number;
      runBudgetMs: number;
      graceMs: number;
      pollIntervalMs: number;
      retry: RetryPolicy;
      logger: Logger;
      metrics: Metrics;
    },
  ) {
    this.store = store;
    this.#ownsStore = ownsStore;
    this.#pool = pool;
    this.retry = options.retry;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.#leaseMs = options.leaseMs;
    this.#runBudgetMs = options.runBudgetMs;
    this.#graceMs = options.graceMs;
    this.#pollIntervalMs = options.pollIntervalMs;
    this.#channel = new Channel<TaskRecord>({
      capacity: options.capacity,
      overflow: options.overflow,
    });
    this.#window = pool === null ? 0 : pool.capacity + options.prefetch;
    this.#committer = new GroupCommitter(
      store,
      this.#leaseMs,
      (claimed, due, error) => this.#onClaimed(claimed, due, error),
      (error, failures, delayMs) =>
        this.logger.warn("store_unavailable", {
          error: String(error),
          failures,
          retry_in_ms: delayMs,
        }),
    );
  }

  /**
   * Opens a queue: the store (recovering expired leases), then the worker
   * pool, which loads the handler module in every worker.
   *
   * @param options Pool, channel, store, retry and observability settings.
   * @returns The running queue.
   * @throws {RangeError} When a number is out of range.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {Error} When the handler module fails to load, with its error.
   */
  static async open(options: TaskQueueOptions = {}): Promise<TaskQueue> {
    const capacity = options.capacity ?? 1024;
    positiveInteger("capacity", capacity);
    const overflow = options.overflow ?? "block";
    if (overflow !== "block" && overflow !== "reject") {
      throw new TypeError(
        `Cannot open queue: overflow must be "block" or "reject", got ${
          String(overflow)
        }`,
      );
    }
    if (options.workers !== undefined) {
      positiveInteger("workers", options.workers);
    }
    if (options.concurrency !== undefined) {
      positiveInteger("concurrency", options.concurrency);
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    nonNegative("timeoutMs", timeoutMs);
    const graceMs = options.graceMs ?? 1000;
    nonNegative("graceMs", graceMs);
    const leaseMs = options.leaseMs ??
      (timeoutMs > 0 ? timeoutMs + graceMs + 5000 : 60_000);
    positiveInteger("leaseMs", leaseMs);
    if (timeoutMs > 0 && leaseMs <= timeoutMs + graceMs) {
      throw new RangeError(
        `Cannot open queue: leaseMs must exceed timeoutMs + graceMs (${
          timeoutMs + graceMs
        }), got ${leaseMs}`,
      );
    }
    if (options.prefetch !== undefined) {
      nonNegative("prefetch", options.prefetch);
    }
    const pollIntervalMs = options.pollIntervalMs ?? 100;
    positiveInteger("pollIntervalMs", pollIntervalMs);
    const retry = options.retry instanceof RetryPolicy
      ? options.retry
      : new RetryPolicy(options.retry);
    const logger = options.logger instanceof Logger
      ? options.logger
      : new Logger({ level: "warn", ...options.logger });
    const metrics = options.metrics ?? new Metrics();

    let store: TaskStore;
    let ownsStore = true;
    if (options.db === undefined) {
      store = new MemoryTaskStore();
    } else if (typeof options.db === "string") {
      store = await openStore(options.db, {
        sqlite: {
          synchronous: options.synchronous ?? "NORMAL",
          driver: options.driver ?? "auto",
        },
      });
      logger.info("store_opened", { store: store.kind });
    } else {
      store = options.db;
      ownsStore = false;
    }

    let pool: WorkerPool | null = null;
    try {
      const recovered = await store.recoverExpired(Date.now());
      if (recovered > 0) logger.warn("leases_recovered", { tasks: recovered });
      if (options.consume ?? true) {
        pool = await WorkerPool.start({
          handlers: options.handlers ?? DEFAULT_HANDLERS,
          ...(options.workers !== undefined && { workers: options.workers }),
          ...(options.concurrency !== undefined &&
            { concurrency: options.concurrency }),
          timeoutMs,
          graceMs,
          ...(options.objectsRoot !== undefined &&
            { objectsRoot: options.objectsRoot }),
          ...(options.faults !== undefined && { faults: options.faults }),
          logLevel: logger.level,
          onEvent: (event) => {
            if (event.type === "worker-replaced") {
              metrics.inc("workers_replaced");
              if (pool !== null) metrics.setWorkersAlive(aliveWorkers(pool));
              logger.warn("worker_replaced", {
                worker_id: event.workerId,
                reason: event.reason,
              });
            }
          },
        });
        const started = pool;
        metrics.setWorkerStatsProvider(() => started.stats());
        metrics.setWorkersAlive(aliveWorkers(started));
      }
    } catch (error) {
      if (ownsStore) await store.close();
      throw error;
    }
    const queue = new TaskQueue(store, ownsStore, pool, {
      capacity,
      overflow,
      prefetch: options.prefetch ?? Math.max(32, (pool?.capacity ?? 0) * 2),
      leaseMs,
      runBudgetMs: timeoutMs > 0 ? timeoutMs + graceMs : 0,
      graceMs,
      pollIntervalMs,
      retry,
      logger,
      metrics,
    });
    queue.#metricsFile = options.metricsFile;
    if (options.metricsPort !== undefined) {
      try {
        queue.#server = serveMetrics({
          port: options.metricsPort,
          metrics: () => metrics.toPrometheus(),
          healthy: () => !queue.#closing,
        });
      } catch (error) {
        await queue.close({ deadline: 0 });
        throw error;
      }
    }
    queue.#startPolling();
    return queue;
  }

  /** Tasks waiting in the channel for a worker. */
  get depth(): number {
    return this.#channel.depth;
  }

  /** The channel's capacity. */
  get capacity(): number {
    return this.#channel.capacity;
  }

  /**
   * Store transactions committed so far. Group commit makes this far
   * smaller than the number of state changes under load.
   */
  get commitCount(): number {
    return this.#committer.commits;
  }

  /** Port of the `/metrics` endpoint, when one is served. */
  get metricsPort(): number | undefined {
    return this.#server?.port;
  }

  /** `true` once `close` has been called. */
  get closed(): boolean {
    return this.#closing;
  }

  /** `true` while `close` waits for work to finish. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Statistics of the bounded channel (depth, high-water mark, rejections, blocked time). */
  channelStats(): ReturnType<Channel<TaskRecord>["stats"]> {
    return this.#channel.stats();
  }

  /** Busy time ÷ (wall time × workers) since the pool started; 0 without a pool. */
  utilization(): number {
    return this.#pool?.utilization() ?? 0;
  }

  /**
   * One task's record, by id.
   *
   * @param id The task's id.
   * @returns The record, or `undefined`.
   */
  getTask(id: string): Promise<TaskRecord | undefined> {
    return this.store.get(id);
  }

  /**
   * The dead-letter queue: tasks that failed permanently or ran out of
   * attempts, oldest first, with their last error, class and attempts.
   *
   * @param options Paging.
   * @returns Dead tasks.
   */
  deadLetters(
    options: { limit?: number; offset?: number } = {},
  ): Promise<TaskRecord[]> {
    return this.store.list({ ...options, status: "dead" });
  }

  /**
   * Moves dead tasks back to the queue with fresh attempts.
   *
   * @param ids Task ids, or `"all"`.
   * @returns How many were requeued.
   */
  async requeue(ids: string[] | "all"): Promise<number> {
    const count = await this.store.requeue(ids, Date.now());
    if (count > 0) {
      this.#wantDue = true;
      this.#schedulePump();
    }
    return count;
  }

  /**
   * Submits one task. Resolves once the task is accepted, which for a
   * durable store means its row is committed.
   *
   * @param task The task.
   * @param options A signal that cancels a wait for room.
   * @returns The task's handle.
   * @throws {QueueClosedError} When the queue is closing or closed.
   * @throws {QueueFullError} When the channel is full and `overflow` is `"reject"`.
   * @throws {TypeError} When the task is malformed or its payload cannot be stored.
   */
  async submit<T = unknown>(
    task: TaskInput,
    options: SubmitOptions = {},
  ): Promise<TaskHandle<T>> {
    if (this.#closing) {
      throw new QueueClosedError("Cannot submit task: queue is closed");
    }
    const prepared = this.#prepare(task, "task");
    return await this.#accept(prepared, options.signal) as TaskHandle<T>;
  }

  /**
   * Submits several tasks. Every task is checked first; if one is
   * malformed, none is submitted. Under `overflow: "reject"` the batch is
   * accepted whole or refused whole with a `QueueFullError`; under
   * `"block"` it waits for room task by task.
   *
   * @param tasks The tasks.
   * @param options A signal that cancels waits for room.
   * @returns One handle per task, in order.
   * @throws {QueueClosedError} When the queue is closing or closed.
   * @throws {TypeError} Naming the index of the first malformed task.
   * @throws {QueueFullError} Under `"reject"`, when the batch does not fit.
   */
  async submitMany<T = unknown>(
    tasks: readonly TaskInput[],
    options: SubmitOptions = {},
  ): Promise<TaskHandle<T>[]> {
    if (this.#closing) {
      throw new QueueClosedError("Cannot submit tasks: queue is closed");
    }
    if (!Array.isArray(tasks)) {
      throw new TypeError("Cannot submit tasks: tasks must be an array");
    }
    const prepared = tasks.map((task, i) => this.#prepare(task, `tasks[${i}]`));
    if (this.#channel.overflow === "reject") {
      // All or nothing: a batch that does not fit is refused whole, so the
      // caller never holds a half-accepted batch without its handles.
      let held = 0;
      while (held < prepared.length && this.#channel.trySlot()) held++;
      if (held < prepared.length) {
        for (let i = 0; i < held; i++) this.#channel.releaseSlot();
        this.metrics.inc("rejected", prepared.length);
        throw new QueueFullError(prepared, this.#channel.capacity);
      }
    }
    const reserved = this.#channel.overflow === "reject";
    return await Promise.all(
      prepared.map((p) => this.#accept(p, options.signal, reserved)),
    ) as TaskHandle<T>[];
  }

  /**
   * Resolves once every task submitted through this queue has finished
   * (succeeded or dead-lettered), retries included.
   *
   * @param signal Cancels the wait.
   * @returns Nothing.
   */
  drain(signal?: AbortSignal): Promise<void> {
    return this.#waitUntil(() => this.#outstanding === 0, signal);
  }

  #waitUntil(check: () => boolean, signal?: AbortSignal): Promise<void> {
    if (check()) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const waiter = {
        check,
        resolve: (): void => {
          signal?.removeEventListener("abort", abort);
          resolve();
        },
      };
      const abort = (): void => {
        const i = this.#idleWaiters.indexOf(waiter);
        if (i >= 0) this.#idleWaiters.splice(i, 1);
        reject(signal!.reason);
      };
      this.#idleWaiters.push(waiter);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }

  /** Called whenever `#outstanding` or `#active` drops. */
  #wakeIdle(): void {
    if (this.#idleWaiters.length === 0) return;
    const ready = this.#idleWaiters.filter((w) => w.check());
    if (ready.length === 0) return;
    this.#idleWaiters = this.#idleWaiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.resolve();
  }

  /**
   * Graceful shutdown: refuses new submissions, lets queued and running
   * tasks finish within `deadline`, then stops the workers and closes the
   * store. Past the deadline, every running handler's `ctx.signal` aborts
   * with a `TaskCancelledError` and has `graceMs` to stop before its worker
   * is terminated. Tasks left unfinished are not charged an attempt: they
   * stay in a durable store and run on the next start; their handles
   * reject with {@linkcode QueueClosedError}.
   *
   * @param options The deadline.
   * @returns What finished and what did not.
   */
  async close(options: CloseOptions = {}): Promise<CloseReport> {
    const deadline = options.deadline ?? 30_000;
    nonNegative("deadline", deadline);
    if (this.#closing) {
      return {
        drained: this.#outstanding === 0,
        unfinished: 0,
        unfinishedIds: [],
      };
    }
    this.#closing = true;
    this.#draining = true;
    // Finish what was submitted here and what is running (including tasks
    // claimed from the store); claim nothing new beyond that.
    let drained = this.#outstanding === 0 && this.#active === 0;
    if (!drained && this.#pool !== null) {
      try {
        await this.#waitUntil(
          () => this.#outstanding === 0 && this.#active === 0,
          AbortSignal.timeout(deadline),
        );
        drained = true;
      } catch {
        drained = false;
      }
    }
    this.#stopPolling();
    if (this.#pool !== null) {
      // Stop feeding the pool. Past the deadline, cancel what is left: every
      // handler's signal aborts and it has graceMs to clean up before the
      // workers stop. Cancelled work is not settled: it keeps its lease in
      // the store and runs again after recovery, on the next start.
      this.#window = 0;
      if (!drained) {
        this.#cancelling = true;
        this.#pool.cancel("Cannot finish task: the queue is shutting down");
        await this.#pool.close({ signal: AbortSignal.timeout(this.#graceMs) })
          .catch(() => {});
      }
      await this.#pool.terminate();
    }
    this.#channel.close();
    // Settles still pending (a store that is down) get a last chance; what
    // cannot be written stays running in the store and is recovered later.
    await this.#committer.flushed(
      AbortSignal.timeout(Math.max(deadline, 1000)),
    );
    const unfinishedIds: string[] = [];
    for (const [id, waiter] of this.#waiters) {
      if (!waiter.local) continue;
      unfinishedIds.push(id);
      waiter.reject(
        new QueueClosedError(`Cannot finish task ${id}: queue closed first`),
      );
    }
    this.#waiters.clear();
    this.#liveKeys.clear();
    this.#held.clear();
    this.#lost.clear();
    this.#outstanding = 0;
    this.#active = 0;
    this.#wakeIdle();
    if (unfinishedIds.length > 0) {
      this.logger.warn("closed_unfinished", { tasks: unfinishedIds.length });
    }
    if (this.#ownsStore) await this.store.close();
    this.metrics.setWorkersAlive(0);
    this.metrics.setInFlight(0);
    await this.#server?.shutdown();
    if (this.#metricsFile !== undefined) {
      const snapshot = this.metrics.snapshot();
      const text = this.#metricsFile.endsWith(".csv")
        ? `${this.metrics.toCsvHeader()}\n${this.metrics.toCsvRow(snapshot)}\n`
        : JSON.stringify(snapshot, null, 2) + "\n";
      await Deno.writeTextFile(this.#metricsFile, text);
    }
    this.logger.info("queue_closed", {
      drained,
      unfinished: unfinishedIds.length,
    });
    this.#draining = false;
    this.#closed = true;
    return { drained, unfinished: unfinishedIds.length, unfinishedIds };
  }

  /** Closes the queue with the default deadline. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed) await this.close();
  }

  // -- intake ---------------------------------------------------------------

  #prepare(task: TaskInput, where: string): NewTask {
    if (typeof task !== "object" || task === null) {
      throw new TypeError(
        `Cannot submit ${where}: expected an object, got ${String(task)}`,
      );
    }
    const { type, payload = null, idempotencyKey, maxAttempts, runAt } = task;
    if (typeof type !== "string" || type.length === 0) {
      throw new TypeError(
        `Cannot submit ${where}: type must be a non-empty string`,
      );
    }
    if (
      idempotencyKey !== undefined &&
      (typeof idempotencyKey !== "string" || idempotencyKey === "")
    ) {
      throw new TypeError(
        `Cannot submit ${where}: idempotencyKey must be a non-empty string`,
      );
    }
    if (
      maxAttempts !== undefined &&
      (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    ) {
      throw new RangeError(
        `Cannot submit ${where}: maxAttempts must be an integer >= 1, got ${maxAttempts}`,
      );
    }
    const runAtMs = runAt instanceof Date ? runAt.getTime() : runAt;
    if (runAtMs !== undefined && !Number.isFinite(runAtMs)) {
      throw new TypeError(
        `Cannot submit ${where}: runAt must be a finite time`,
      );
    }
    try {
      this.store.checkValue(payload, "payload");
    } catch (error) {
      const reason = (error as Error).message.replace(/^Cannot [^:]*: /, "");
      throw new TypeError(`Cannot submit ${where}: ${reason}`, {
        cause: error,
      });
    }
    return {
      id: uuidv7(),
      type,
      idempotencyKey: idempotencyKey ?? defaultIdempotencyKey(type, payload),
      payload,
      maxAttempts: maxAttempts ?? this.retry.maxAttempts,
      runAt: Math.floor(runAtMs ?? Date.now()),
      // A task this process will run now is inserted already claimed: no
      // separate claim write, and no other claimer can take it meanwhile.
      claim: this.#pool !== null &&
        (runAtMs === undefined || runAtMs <= Date.now()),
    };
  }

  /**
   * Accepts one prepared task. `reserved` means the caller already holds a
   * channel slot for it (an all-or-nothing batch); it is given back when
   * the task turns out to be a duplicate.
   */
  async #accept(
    task: NewTask,
    signal: AbortSignal | undefined,
    reserved = false,
  ): Promise<TaskHandle> {
    const submittedAt = performance.now();
    const key = task.idempotencyKey;
    if (key !== null) {
      const existing = await this.#findDuplicate(key);
      if (existing !== undefined) {
        if (reserved) this.#channel.releaseSlot();
        return existing;
      }
    }
    if (!reserved) await this.#reserveSlot(task, signal);
    return await this.#insert(task, submittedAt);
  }

  async #reserveSlot(
    task: NewTask,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    try {
      await this.#channel.acquireSlot(signal === undefined ? {} : { signal });
    } catch (error) {
      if (error instanceof QueueFullError) {
        this.metrics.inc("rejected");
        throw new QueueFullError(task, this.#channel.capacity, {
          cause: error,
        });
      }
      throw error;
    }
  }

  /** Inserts a task whose channel slot is held; the slot goes with the task. */
  async #insert(task: NewTask, submittedAt: number): Promise<TaskHandle> {
    const key = task.idempotencyKey;
    let outcome;
    try {
      outcome = await this.#committer.insert(task);
    } catch (error) {
      this.#channel.releaseSlot();
      throw error;
    }
    const record = outcome.record;
    if (!outcome.inserted) {
      this.#channel.releaseSlot();
      return this.#duplicateHandle(record);
    }
    // Without workers here, another process runs the task: its handle is
    // answered by polling, and `drain` does not wait for it.
    const consuming = this.#pool !== null;
    const waiter = this.#addWaiter(
      record.id,
      consuming ? submittedAt : NaN,
      consuming,
    );
    if (consuming) this.#outstanding++;
    if (key !== null) this.#liveKeys.set(key, record.id);
    if (this.#closed || record.status !== "running") {
      // Scheduled for later (or closing): the store hands it out when due.
      this.#channel.releaseSlot();
      if (!this.#closed) this.#scheduleRetry(record.runAt);
    } else {
      this.#channel.sendReserved(record);
      this.#held.set(record.id, record);
      this.#schedulePump();
    }
    this.metrics.recordEnqueue(this.#channel.depth);
    return {
      id: record.id,
      idempotencyKey: key,
      deduplicated: false,
      result: waiter.promise,
    };
  }

  async #findDuplicate(key: string): Promise<TaskHandle | undefined> {
    const liveId = this.#liveKeys.get(key);
    if (liveId !== undefined) {
      const waiter = this.#waiters.get(liveId);
      if (waiter !== undefined) {
        this.metrics.inc("deduplicated");
        return {
          id: liveId,
          idempotencyKey: key,
          deduplicated: true,
          result: waiter.promise,
        };
      }
    }
    const record = await this.store.getByKey(key);
    return record === undefined ? undefined : this.#duplicateHandle(record);
  }

  #duplicateHandle(record: TaskRecord): TaskHandle {
    this.metrics.inc("deduplicated");
    let result: Promise<unknown>;
    if (record.status === "succeeded" || record.status === "dead") {
      result = settledPromise(record);
    } else {
      // Unfinished: wait for it here, whoever runs it (this process or another).
      result =
        (this.#waiters.get(record.id) ?? this.#addWaiter(record.id, NaN, false))
          .promise;
      this.#wantDue = true;
    }
    return {
      id: record.id,
      idempotencyKey: record.idempotencyKey,
      deduplicated: true,
      result,
    };
  }

  #addWaiter(id: string, acceptedAt: number, local: boolean): Waiter {
    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that never reads `result` must not see an unhandled rejection.
    promise.catch(() => {});
    const waiter: Waiter = { resolve, reject, promise, acceptedAt, local };
    this.#waiters.set(id, waiter);
    return waiter;
  }

  // -- dispatch -------------------------------------------------------------

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /** Moves work from the channel (and due work from the store) into the pool. */
  #pump(): void {
    if (this.#pool === null) return;
    const now = this.store.durable ? Date.now() : 0;
    while (this.#active < this.#window) {
      const record = this.#channel.tryReceive();
      if (record === undefined) break;
      this.#held.delete(record.id);
      if (this.#lost.delete(record.id)) {
        this.#whoeverRunsIt(record);
        continue;
      }
      // A claim that waited so long its lease cannot cover a full run gets
      // a fresh lease first (fenced by version, in the next commit), so it
      // never runs past its lease; if the lease was lost meanwhile, the
      // task belongs to whoever holds it now and is dropped here.
      if (this.store.durable && record.leaseUntil! - now < this.#runBudgetMs) {
        this.#renewThenDispatch(record, now);
        continue;
      }
      this.#dispatch(record);
    }
    if (
      this.#wantDue && this.#channel.depth === 0 &&
      this.#active < this.#window && (!this.#closing || this.#outstanding > 0)
    ) {
      const due = this.#window - this.#active;
      this.#active += due;
      this.#wantDue = false;
      this.#committer.claimDue(due);
    }
  }

  #renewThenDispatch(record: TaskRecord, now: number): void {
    this.#active++; // holds the task's slot while the renewal commits
    const leaseUntil = now + this.#leaseMs;
    this.#committer.renew({
      id: record.id,
      version: record.version,
      leaseUntil,
    }).then(
      (renewed) => {
        this.#active--;
        if (renewed && this.#window > 0) {
          this.#dispatch({ ...record, leaseUntil });
        } else {
          if (!renewed) this.#whoeverRunsIt(record);
          this.#wakeIdle();
          this.#schedulePump();
        }
      },
      (error) => {
        this.#active--;
        this.logger.error("renew_failed", {
          ...this.#fields(record),
          error: String(error),
        });
        this.#wakeIdle();
        this.#schedulePump();
      },
    );
  }

  /**
   * A task whose lease this process lost before running it belongs to
   * whoever claimed it since; its handle is answered by polling the store.
   */
  #whoeverRunsIt(record: TaskRecord): void {
    this.logger.warn("lease_lost_in_channel", this.#fields(record));
    const waiter = this.#waiters.get(record.id);
    if (waiter !== undefined) waiter.acceptedAt = NaN;
    this.#wantDue = true;
  }

  /** Hands a claimed task to the pool; `#active` counts it until its result. */
  #dispatch(record: TaskRecord): void {
    this.#active++;
    this.metrics.recordDequeue(this.#channel.depth);
    this.metrics.setInFlight(this.#active);
    this.#pool!.dispatch({
      id: record.id,
      type: record.type,
      payload: record.payload,
      attempt: record.attempts,
      idempotencyKey: record.idempotencyKey,
    }, (result) => this.#onResult(record, result));
  }

  #onClaimed(claimed: TaskRecord[], requested: number, error?: unknown): void {
    if (error !== undefined) {
      this.logger.error("claim_failed", { error: String(error) });
    }
    // The slots reserved for the claim are given back; #dispatch re-counts
    // the tasks actually claimed.
    this.#active -= requested;
    this.#wakeIdle();
    if (claimed.length >= requested) this.#wantDue = true; // maybe more is due
    if (this.#pool === null || this.#window === 0) {
      // Closing: these claims run out their lease and are recovered later.
      return;
    }
    for (const record of claimed) this.#dispatch(record);
    this.metrics.setInFlight(this.#active);
    this.#schedulePump();
  }

  // -- settle ---------------------------------------------------------------

  #onResult(record: TaskRecord, result: PoolResult): void {
    this.#active--;
    this.#wakeIdle();
    this.metrics.setInFlight(this.#active);
    this.#schedulePump();
    if (
      this.#cancelling && !result.ok &&
      (result.error.name === "TaskCancelledError" ||
        result.error.name === "WorkerCrashedError")
    ) {
      // Stopped by the shutdown, not failed: no attempt is charged here.
      this.logger.info("task_cancelled", this.#fields(record));
      return;
    }
    const waiter = this.#waiters.get(record.id);
    const runMs = result.endedAt - result.startedAt;
    const waitMs = waiter !== undefined && !Number.isNaN(waiter.acceptedAt) &&
        record.attempts === 1
      ? Math.max(0, result.startedAt - waiter.acceptedAt)
      : Math.max(0, Date.now() - runMs - record.runAt);
    if (result.ok) {
      this.#settle(
        record,
        {
          kind: "succeeded",
          result: result.value,
          outputKey: outputKeyOf(result.value),
        },
        waitMs,
        runMs,
      );
      return;
    }
    this.#onFailure(record, result.error, waitMs, runMs);
  }

  #onFailure(
    record: TaskRecord,
    error: SerializedError,
    waitMs: number,
    runMs: number,
  ): void {
    if (error.errorClass === "transient") this.metrics.inc("failed_transient");
    else this.metrics.inc("failed_permanent");
    if (error.name === "TaskTimeoutError") this.metrics.inc("timed_out");
    const verdict = this.retry.decide(
      error,
      record.attempts,
      record.maxAttempts,
    );
    const message = `${error.name}: ${error.message}`;
    if (verdict.action === "retry") {
      this.#settle(
        record,
        {
          kind: "retry",
          runAt: Date.now() + verdict.delayMs,
          error: message,
          errorClass: error.errorClass,
        },
        waitMs,
        runMs,
      );
    } else {
      this.#settle(
        record,
        { kind: "dead", error: message, errorClass: error.errorClass },
        waitMs,
        runMs,
      );
    }
  }

  #settle(
    record: TaskRecord,
    outcome:
      | { kind: "succeeded"; result: unknown; outputKey: string | null }
      | { kind: "retry"; runAt: number; error: string; errorClass: ErrorClass }
      | { kind: "dead"; error: string; errorClass: ErrorClass },
    waitMs: number,
    runMs: number,
  ): void {
    if (outcome.kind === "succeeded") {
      try {
        this.store.checkValue(outcome.result, "result");
      } catch (error) {
        this.#settle(
          record,
          {
            kind: "dead",
            error: `PermanentError: Cannot store result: ${
              (error as Error).message
            }`,
            errorClass: "permanent",
          },
          waitMs,
          runMs,
        );
        return;
      }
    }
    this.#committer.settle({ id: record.id, version: record.version, outcome })
      .then(
        (applied) => {
          if (!applied) {
            this.metrics.inc("stale_settles");
            this.logger.warn("stale_settle", this.#fields(record));
            return;
          }
          this.#afterSettle(record, outcome, waitMs, runMs);
        },
        (error) => {
          this.logger.error("settle_failed", {
            ...this.#fields(record),
            error: String(error),
          });
        },
      );
  }

  #afterSettle(
    record: TaskRecord,
    outcome: { kind: "succeeded"; result: unknown } | {
      kind: "retry" | "dead";
      runAt?: number;
      error: string;
      errorClass: ErrorClass;
    },
    waitMs: number,
    runMs: number,
  ): void {
    this.metrics.recordLatency(waitMs, runMs);
    const waiter = this.#waiters.get(record.id);
    if (outcome.kind === "retry") {
      this.metrics.inc("retried");
      if (this.logger.enabled("info")) {
        this.logger.info("task_retry", {
          ...this.#fields(record),
          error_class: outcome.errorClass,
          error: outcome.error,
          duration_ms: runMs,
        });
      }
      this.#scheduleRetry(outcome.runAt!);
      return;
    }
    if (outcome.kind === "succeeded") {
      this.metrics.inc("succeeded");
      if (this.logger.enabled("debug")) {
        this.logger.debug("task_succeeded", {
          ...this.#fields(record),
          duration_ms: runMs,
        });
      }
      waiter?.resolve(outcome.result);
    } else {
      this.metrics.inc("dead_lettered");
      this.logger.error("task_dead", {
        ...this.#fields(record),
        error_class: outcome.errorClass,
        error: outcome.error,
        duration_ms: runMs,
      });
      waiter?.reject(
        failure({
          ...record,
          lastError: outcome.error,
          errorClass: outcome.errorClass,
        }),
      );
    }
    if (waiter !== undefined) this.#finish(record, waiter);
  }

  #finish(record: TaskRecord, waiter: Waiter): void {
    this.#waiters.delete(record.id);
    if (
      record.idempotencyKey !== null &&
      this.#liveKeys.get(record.idempotencyKey) === record.id
    ) {
      this.#liveKeys.delete(record.idempotencyKey);
    }
    if (waiter.local) {
      this.#outstanding--;
      this.#wakeIdle();
    }
  }

  #fields(record: TaskRecord): LogFields {
    return {
      task_id: record.id,
      idempotency_key: record.idempotencyKey,
      attempt: record.attempts,
      type: record.type,
    };
  }

  // -- timers ---------------------------------------------------------------

  #scheduleRetry(runAt: number): void {
    if (this.#closing) return;
    this.#retryTimes.push(runAt);
    if (runAt < this.#retryAt) this.#armRetryTimer(runAt);
  }

  /** Arms the one retry timer for `runAt`; when it fires, claims what is due and re-arms. */
  #armRetryTimer(runAt: number): void {
    clearTimeout(this.#retryTimer);
    this.#retryAt = runAt;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#retryAt = Infinity;
      const now = Date.now();
      // Forget the times that are due; the earliest of the rest re-arms.
      this.#retryTimes = this.#retryTimes.filter((t) => t > now);
      let next = Infinity;
      for (const t of this.#retryTimes) if (t < next) next = t;
      if (next < Infinity && !this.#closing) this.#armRetryTimer(next);
      this.#wantDue = true;
      this.#pump();
    }, Math.max(0, runAt - Date.now()));
  }

  #startPolling(): void {
    this.#schedulePump();
    if (this.#pool === null && !this.store.durable) return;
    if (this.#pool !== null && this.store.onNotify !== undefined) {
      this.#unsubscribe = this.store.onNotify(() => {
        this.#wantDue = true;
        this.#schedulePump();
      });
    }
    let sinceRecovery = 0;
    let sinceHeartbeat = 0;
    this.#pollTimer = setInterval(() => {
      // Look for work others submitted and retries due (a backstop for the
      // retry timer) and, now and then, expired leases of a process that died.
      sinceRecovery += this.#pollIntervalMs;
      sinceHeartbeat += this.#pollIntervalMs;
      if (this.store.durable && sinceHeartbeat >= this.#leaseMs / 4) {
        sinceHeartbeat = 0;
        this.#heartbeat();
      }
      // Only a durable store has other processes whose leases can expire.
      if (this.store.durable && sinceRecovery >= this.#leaseMs / 2) {
        sinceRecovery = 0;
        this.store.recoverExpired(Date.now()).catch((error) =>
          this.logger.error("recovery_failed", { error: String(error) })
        );
      }
      this.#wantDue = true;
      void this.#pollWaiters();
      this.#pump();
    }, this.#pollIntervalMs);
  }

  /** Renews the leases of claimed tasks that have waited half a lease in the channel. */
  #heartbeat(): void {
    const now = Date.now();
    for (const record of this.#held.values()) {
      if (record.leaseUntil! - now > this.#leaseMs / 2) continue;
      const leaseUntil = now + this.#leaseMs;
      this.#committer.renew({
        id: record.id,
        version: record.version,
        leaseUntil,
      })
        .then((renewed) => {
          // The channel holds this same object, so the new lease is seen
          // by the dispatcher when the record leaves the channel.
          if (renewed) record.leaseUntil = leaseUntil;
          else if (this.#held.has(record.id)) this.#lost.add(record.id);
        }, (error) => {
          this.logger.error("renew_failed", {
            ...this.#fields(record),
            error: String(error),
          });
        });
    }
  }

  /**
   * Answers handles of tasks another process runs, once they are final.
   * One sweep at a time, one read at a time: a producer holding thousands
   * of handles must not flood the store with reads every tick.
   */
  async #pollWaiters(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      for (const [id, waiter] of [...this.#waiters]) {
        if (!Number.isNaN(waiter.acceptedAt) || this.#closing) continue;
        const record = await this.store.get(id).catch(() => undefined);
        if (
          record === undefined || this.#waiters.get(id) !== waiter ||
          (record.status !== "succeeded" && record.status !== "dead")
        ) {
          continue;
        }
        if (record.status === "succeeded") waiter.resolve(record.result);
        else waiter.reject(failure(record));
        this.#finish(record, waiter);
      }
    } finally {
      this.#sweeping = false;
    }
  }

  #stopPolling(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearInterval(this.#pollTimer);
    clearTimeout(this.#retryTimer);
    this.#pollTimer = undefined;
    this.#retryTimer = undefined;
  }
}

function aliveWorkers(pool: WorkerPool): number {
  let alive = 0;
  for (const worker of pool.stats()) if (worker.alive) alive++;
  return alive;
}

function outputKeyOf(value: unknown): string | null {
  if (typeof value === "object" && value !== null) {
    const key = (value as { output_key?: unknown }).output_key;
    if (typeof key === "string") return key;
  }
  return null;
}
