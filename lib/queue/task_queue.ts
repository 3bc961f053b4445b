/**
 * `TaskQueue`, the facade: it opens the parts (store, worker pool, channel,
 * group commit), wires them together, and subscribes metrics and the log to
 * the queue's events. The work is done by the modules beside it: intake,
 * dispatcher, settler and leases, around one task table.
 *
 * @module
 */
import { Channel } from "../channel.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { type MetricsServer, serveMetrics } from "../metrics/server.ts";
import { type PoolEvent, WorkerPool } from "../pool/worker_pool.ts";
import type { RetryPolicy } from "../retry.ts";
import { MemoryTaskStore } from "../store/memory_store.ts";
import { openStore } from "../store/open_store.ts";
import {
  PostgresTaskStore,
  type PostgresTransaction,
} from "../store/postgres/postgres_store.ts";
import { CANCELLED_MESSAGE } from "../store/_shared.ts";
import type {
  CancelOutcome,
  QueueState,
  RemoveOutcome,
  ScheduleRecord,
  ScheduleTask,
  TaskRecord,
  TaskStore,
} from "../store/store.ts";
import { Dispatcher } from "./dispatcher.ts";
import {
  type TaskEventListener,
  type TaskEventName,
  TaskEvents,
} from "./events.ts";
import { GroupCommitter } from "./group_commit.ts";
import { Intake } from "./intake.ts";
import { Leases } from "./leases.ts";
import { QueueLimits } from "./queue_limits.ts";
import { Pruner } from "./pruner.ts";
import { Reports } from "./reports.ts";
import {
  checkDeadline,
  type ResolvedOptions,
  resolveOptions,
} from "./options.ts";
import { observeLog, observeMetrics } from "./observers.ts";
import {
  deleteSchedule,
  listSchedules,
  putSchedule,
  type ScheduleOptions,
  Scheduler,
  type SchedulerOptions,
  SYSTEM_CLOCK,
} from "./scheduler.ts";
import { Settler } from "./settler.ts";
import type { SubmittedIds } from "./submitted_ids.ts";
import { TaskTable } from "./task_table.ts";
import {
  type SubmitWithOptions,
  TransactionalIntake,
} from "./transactional.ts";
import { QueueClosedError } from "./types.ts";
import type {
  CloseOptions,
  CloseReport,
  ResultOf,
  SubmitManyOptions,
  SubmitOptions,
  TaskEntry,
  TaskHandle,
  TaskInput,
  TaskQueueOptions,
  TaskState,
  TaskTypeOf,
  TypedTaskInput,
} from "./types.ts";

const DEFAULT_HANDLERS = new URL("../handlers/builtin.ts", import.meta.url);

/** What {@linkcode TaskQueue.channelStats} reports. */
export type QueueChannelStats = ReturnType<Channel<unknown>["stats"]>;

/** The parts one queue is made of, built by `open`. */
interface Parts extends ResolvedOptions {
  store: TaskStore;
  ownsStore: boolean;
  pool: WorkerPool | null;
  prefetch: number;
  scheduler: SchedulerOptions;
}

/**
 * A bounded, durable task queue in front of a pool of Web Workers.
 *
 * Opened as `TaskQueue.open<typeof import("./handlers.ts")>(...)`, the
 * queue is typed by its handler module: `submit` accepts only the
 * module's handler names as `type`, each with its handler's payload, and
 * types `handle.result` by the handler's return. Without the type
 * argument it takes any task.
 *
 * @typeParam H The handler module's type; `unknown` (the default) for an
 *   untyped queue.
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
export class TaskQueue<H = unknown> implements AsyncDisposable {
  /** The store holding the state. */
  readonly store: TaskStore;
  /** Counters, gauges and latency histograms. */
  readonly metrics: Metrics;
  /** The structured logger. */
  readonly logger: Logger;
  /** The retry policy. */
  readonly retry: RetryPolicy;

  #parts: Parts;
  #events = new TaskEvents();
  #table = new TaskTable();
  #channel: Channel<TaskEntry>;
  #committer: GroupCommitter;
  #intake: Intake;
  #settler: Settler;
  #reports: Reports;
  #dispatcher: Dispatcher | null = null;
  #leases: Leases;
  #limits: QueueLimits;
  #pruner: Pruner | null = null;
  /** Submissions through callers' transactions: PostgreSQL stores only. */
  #transactional: TransactionalIntake | null = null;
  #scheduler: Scheduler | null = null;
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #unsubscribe: (() => void) | undefined;
  #server: MetricsServer | undefined;
  #metricsFile: string | undefined;
  #closing: Promise<CloseReport> | null = null;
  #draining = false;

  private constructor(parts: Parts) {
    this.#parts = parts;
    this.store = parts.store;
    this.metrics = parts.metrics;
    this.logger = parts.logger;
    this.retry = parts.retry;
    const now = Date.now;
    const { store, pool } = parts;
    this.#channel = new Channel<TaskEntry>({
      capacity: parts.capacity,
      overflow: parts.overflow,
    });
    // A limited queue with room again may have tasks waiting in the store.
    this.#limits = new QueueLimits(
      parts.queues,
      parts.queueConcurrency,
      this.#table,
      () => this.#dispatcher?.wake(),
    );
    this.#leases = new Leases(this.#table, this.#events, {
      leaseMs: parts.leaseMs,
      intervalMs: Math.max(1, Math.floor(parts.leaseMs / 4)),
    });
    // The committer answers each kind of write to the module that owns it;
    // the modules are created below, before any commit can run.
    this.#committer = new GroupCommitter(store, {
      inserted: (entries, outcomes) => this.#intake.inserted(entries, outcomes),
      insertFailed: (entries, error) =>
        this.#intake.insertFailed(entries, error),
      claimed: (records, requested, error) => {
        this.#dispatcher?.claimed(records, requested, error);
        this.#limits.claimed();
      },
      renewals: (at) => this.#leases.renewals(at),
      renewed: (entries, applied, leaseUntil) =>
        this.#leases.renewed(entries, applied, leaseUntil),
      started: (entries, applied) =>
        this.#dispatcher?.startsCommitted(
          entries,
          applied,
          (entry) => this.#leases.lost(entry),
        ),
      progressed: (entries, values, applied) =>
        this.#reports.progressed(entries, values, applied),
      checkpointed: (entries, done, applied) =>
        this.#reports.checkpointed(entries, done, applied),
      settled: (entries, settles, applied) =>
        this.#settler.settled(entries, settles, applied),
      released: (entries, applied) => this.#settler.released(entries, applied),
      recovered: (count) => this.#events.emit("recovered", { count }),
      abandoned: (entries, error) => this.#settler.abandoned(entries, error),
      retrying: (error, failures, retryInMs) =>
        this.#events.emit("store_unavailable", {
          error: String(error),
          failures,
          retryInMs,
        }),
    }, {
      leaseMs: parts.leaseMs,
      now,
      claimQueues: () => this.#limits.claimQueues(),
      ...(pool !== null && { claimTypes: pool.types }),
    });
    this.#reports = new Reports(this.#committer, this.#events);
    this.#settler = new Settler(
      this.#table,
      this.#committer,
      this.#events,
      parts.retry,
      store,
      { now, poll: store.durable || pool === null },
    );
    const runs = {
      queues: new Set(parts.queues),
      types: new Set(pool?.types ?? []),
    };
    this.#intake = new Intake(
      this.#table,
      this.#channel,
      this.#committer,
      this.#events,
      store,
      parts.retry,
      {
        consuming: pool !== null,
        now,
        runsHere: (queue, type) =>
          runs.queues.has(queue) && runs.types.has(type),
        hasRoom: (queue) => this.#limits.hasRoom(queue),
        onlyRunner: pool !== null && !store.durable && parts.ownsStore
          ? { types: pool.types, queues: parts.queues }
          : null,
      },
    );
    if (store instanceof PostgresTaskStore) {
      this.#transactional = new TransactionalIntake(store, this.#intake, now);
    }
    if (pool !== null) {
      const dispatcher = new Dispatcher(
        this.#table,
        this.#channel,
        pool,
        this.#committer,
        this.#events,
        this.#settler,
        { prefetch: parts.prefetch, now, reports: this.#reports },
      );
      this.#dispatcher = dispatcher;
      this.#settler.connect(dispatcher);
      this.#intake.connect(dispatcher);
      // Retention is the consumers' job: a producer-only process (a CLI
      // submit) never prunes.
      if (parts.retention !== null) {
        this.#pruner = new Pruner(store, this.#events, {
          ...parts.retention,
          now,
        });
      }
      // Every consuming queue runs the store's schedules; the store makes
      // each tick run once however many do.
      if (store.fireSchedule !== undefined) {
        this.#scheduler = new Scheduler(store, {
          maxAttempts: parts.retry.maxAttempts,
          fired: () => dispatcher.wake(),
          failed: (error) =>
            this.#events.emit("store_error", {
              operation: "schedule",
              error: String(error),
            }),
        }, parts.scheduler);
      }
    }
    this.#observe();
  }

  /**
   * Opens a queue: the store (recovering expired leases), then the worker
   * pool, which loads the handler module in every worker.
   *
   * @typeParam H The handler module's type, to check submissions against:
   *   `typeof import("./handlers.ts")`, or `typeof H` after
   *   `import type * as H from "./handlers.ts"`. It is not checked against
   *   `options.handlers`: pass the type of the module that option names.
   * @param options Pool, channel, store, retry and observability settings.
   * @returns The running queue.
   * @throws {RangeError} When a number is out of range.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {Error} When the handler module fails to load, with its error.
   */
  static async open<H = unknown>(
    options: TaskQueueOptions = {},
  ): Promise<TaskQueue<H>> {
    const resolved = resolveOptions(options);
    const { logger, timeoutMs, graceMs } = resolved;

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
        ...(options.postgres !== undefined && { postgres: options.postgres }),
      });
      logger.info("store_opened", { store: store.kind });
    } else {
      store = options.db;
      ownsStore = false;
    }

    let pool: WorkerPool | null = null;
    // Pool events reach the queue once it exists; none can come earlier.
    let target: TaskQueue | undefined;
    let queue: TaskQueue;
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
          ...(options.permissions !== undefined &&
            { permissions: options.permissions }),
          logLevel: logger.level,
          logFormat: logger.format,
          onEvent: (event) => {
            if (target !== undefined) target.#onPoolEvent(event);
          },
        });
      }
      queue = new TaskQueue({
        ...resolved,
        store,
        ownsStore,
        pool,
        prefetch: resolved.prefetch ?? pool?.capacity ?? 0,
        scheduler: options.scheduler ?? {},
      });
      target = queue;
    } catch (error) {
      await pool?.terminate();
      if (ownsStore) await store.close();
      throw error;
    }
    queue.#metricsFile = options.metricsFile;
    if (options.metricsPort !== undefined) {
      try {
        queue.#server = serveMetrics({
          port: options.metricsPort,
          metrics: () => resolved.metrics.toPrometheus(),
          healthy: () => queue.#closing === null,
        });
      } catch (error) {
        await queue.close({ deadline: 0 });
        throw error;
      }
    }
    queue.#start();
    // The handler module's type exists only for the type checker.
    return queue as TaskQueue<H>;
  }

  #start(): void {
    const { pool, store, pollIntervalMs } = this.#parts;
    const dispatcher = this.#dispatcher;
    dispatcher?.schedulePump();
    this.#pruner?.start();
    this.#scheduler?.start();
    if (store.durable) this.#leases.start(this.#committer);
    if (pool === null && !store.durable) return;
    if (dispatcher !== null && store.onNotify !== undefined) {
      // A notification also means a caller's transaction may have
      // committed.
      this.#unsubscribe = store.onNotify(() => {
        dispatcher.wake();
        void this.#transactional?.check();
      });
    }
    this.#pollTimer = setInterval(() => {
      // Work others submitted, and retries due (a backstop for the due
      // timer); handles of tasks that run elsewhere.
      dispatcher?.wake();
      void this.#settler.pollRemote();
      void this.#transactional?.check();
    }, pollIntervalMs);
  }

  #onPoolEvent(event: PoolEvent): void {
    if (event.type === "worker-replaced") {
      this.#events.emit("worker_replaced", {
        workerId: event.workerId,
        replacementId: event.replacementId,
        reason: event.reason,
        message: event.message,
        alive: aliveWorkers(this.#parts.pool),
      });
    } else if (event.type === "task-timed-out") {
      this.#events.emit("timed_out", {
        id: event.taskId,
        workerId: event.workerId,
        timeoutMs: event.timeoutMs,
      });
    }
  }

  /**
   * Subscribes to one kind of event; see {@linkcode TaskEventMap}.
   * Listeners run synchronously at the transition; one that throws is
   * reported as an uncaught error and does not disturb the queue.
   *
   * @param name The event.
   * @param listener Called with each event.
   * @returns A function that unsubscribes.
   *
   * @example Counting dead-lettered tasks
   * ```ts
   * import { TaskQueue } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using queue = await TaskQueue.open({ workers: 1 });
   * let dead = 0;
   * queue.on("dead", () => dead++);
   * const handle = await queue.submit({ type: "fail", payload: { error_message: "no" } });
   * await handle.result.catch(() => {});
   * assert.equal(dead, 1);
   * ```
   */
  on<K extends TaskEventName>(
    name: K,
    listener: TaskEventListener<K>,
  ): () => void {
    return this.#events.on(name, listener);
  }

  /** Metrics and the structured log follow the queue through its events. */
  #observe(): void {
    const { metrics, logger, pool } = this.#parts;
    observeMetrics(this.#events, metrics, () => pool?.inFlight ?? 0);
    observeLog(this.#events, logger);
    if (pool !== null) {
      metrics.setWorkerStatsProvider(() => pool.stats());
      metrics.setWorkersAlive(aliveWorkers(pool));
    }
    if (pool !== null) {
      // A task running here that another process cancelled: the store
      // refuses this claim's renewal, and its handler is told.
      this.#events.on("lease_lost", (event) => {
        if (event.state !== "running" && event.state !== "dispatched") return;
        const entry = this.#table.get(event.id);
        if (entry === undefined) return;
        this.#parts.store.get(event.id).then((record) => {
          if (record?.lastError === CANCELLED_MESSAGE) this.#abort(entry);
        }, () => {});
      });
    }
    const table = this.#table;
    metrics.setTaskStateProvider(() => ({
      running: table.count("running"),
      claimed: table.count("queued") + table.count("dispatched"),
    }));
  }

  /**
   * Cancels tasks, in any process: a queued, scheduled or retrying task
   * never runs; a running one has its `ctx.signal` aborted with a
   * `TaskCancelledError` (at once when it runs here, at its next lease
   * renewal when it runs in another process) and is not retried; its
   * handle rejects with a `TaskCancelledError`. A cancelled task is kept
   * as dead-lettered with the error "Cannot run task: cancelled" (so
   * `dlq requeue` can bring it back) until retention or
   * {@linkcode TaskQueue.remove} deletes it.
   *
   * @param ids The task ids.
   * @returns One outcome per id: `cancelled`, `finished` (it had already
   *   succeeded or been dead-lettered: unchanged) or `missing`.
   * @throws {TypeError} When an id is not a string.
   *
   * @example Cancelling a delayed task
   * ```ts
   * import { TaskQueue } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using queue = await TaskQueue.open({ workers: 1 });
   * const handle = await queue.submit({ type: "noop", runAt: Date.now() + 60_000 });
   * const [outcome] = await queue.cancel([handle.id]);
   * assert.equal(outcome?.outcome, "cancelled");
   * await assert.rejects(handle.result, { name: "TaskCancelledError" });
   * ```
   */
  async cancel(ids: readonly string[]): Promise<CancelOutcome[]> {
    checkIds(ids, "cancel tasks");
    const outcomes = await this.#parts.store.cancel(ids, Date.now());
    for (const outcome of outcomes) {
      if (outcome.outcome !== "cancelled") continue;
      const entry = this.#table.get(outcome.id);
      if (entry !== undefined) this.#abort(entry);
      this.#events.emit("cancelled", {
        id: outcome.id,
        type: entry?.type ?? "",
        queue: entry?.queue ?? "",
        idempotencyKey: entry?.idempotencyKey ?? null,
        reason: "cancelled",
      });
    }
    return outcomes;
  }

  /** Answers a cancelled entry's handle, aborting its handler if it runs. */
  #abort(entry: TaskEntry): void {
    if (this.#settler.cancelled(entry)) {
      this.#parts.pool?.cancel(
        `Cannot run task ${entry.id}: cancelled`,
        (task) => task === entry,
      );
    }
  }

  /**
   * Deletes tasks that are not running (finished, queued, scheduled or
   * retrying), in any process; their idempotency keys are free again.
   * Cancel a running task first. A handle waiting here for a removed task
   * rejects once it finds the task gone.
   *
   * @param ids The task ids.
   * @returns One outcome per id: `removed`, `running` (refused) or
   *   `missing`.
   * @throws {TypeError} When an id is not a string.
   *
   * @example Removing a cancelled task
   * ```ts
   * import { TaskQueue } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using queue = await TaskQueue.open({ workers: 1 });
   * const handle = await queue.submit({ type: "noop", runAt: Date.now() + 60_000 });
   * await queue.cancel([handle.id]);
   * await handle.result.catch(() => {});
   * assert.deepEqual(await queue.remove([handle.id]), [{ id: handle.id, outcome: "removed" }]);
   * assert.equal(await queue.getTask(handle.id), undefined);
   * ```
   */
  async remove(ids: readonly string[]): Promise<RemoveOutcome[]> {
    checkIds(ids, "remove tasks");
    const outcomes = await this.#parts.store.remove(ids);
    for (const outcome of outcomes) {
      if (outcome.outcome !== "removed") continue;
      const entry = this.#table.get(outcome.id);
      if (entry?.state === "remote") {
        this.#settler.gone(entry);
      }
    }
    return outcomes;
  }

  /**
   * Pauses a named queue, in every process using the store: claims skip
   * its tasks from their next commit on (within one poll interval), and
   * tasks submitted to it wait; running tasks finish.
   *
   * @param queue The queue name.
   * @returns Once stored.
   * @throws {RangeError} When the name is empty or longer than 128 characters.
   *
   * @example Pausing and resuming
   * ```ts
   * import { TaskQueue } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using queue = await TaskQueue.open({ workers: 1 });
   * await queue.pause("default");
   * const handle = await queue.submit({ type: "noop" });
   * assert.equal((await queue.getTask(handle.id))?.status, "queued");
   * await queue.resume("default");
   * await handle.result;
   * assert.equal((await queue.getTask(handle.id))?.status, "succeeded");
   * ```
   */
  async pause(queue: string): Promise<void> {
    await this.#parts.store.setPaused(queue, true, Date.now());
  }

  /**
   * Resumes a paused queue, in every process using the store.
   *
   * @param queue The queue name.
   * @returns Once stored.
   * @throws {RangeError} When the name is empty or longer than 128 characters.
   */
  async resume(queue: string): Promise<void> {
    await this.#parts.store.setPaused(queue, false, Date.now());
    this.#dispatcher?.wake();
  }

  /**
   * The queues paused or resumed at least once, with their state.
   *
   * @returns The states, by name.
   */
  queueStates(): Promise<QueueState[]> {
    return this.#parts.store.queueStates();
  }

  /**
   * The task types this queue runs: the function exports of its handler
   * module, as its workers reported them. Empty for a producer-only queue.
   */
  get taskTypes(): readonly string[] {
    return this.#parts.pool?.types ?? [];
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
    return this.#closing !== null;
  }

  /** `true` while `close` waits for work to finish. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * How many tasks this process holds in each state: `queued` (claimed,
   * waiting for a worker), `dispatched`, `running` (handler started),
   * `settling`, and `remote` (waited for here, held by nobody here).
   *
   * @returns Counts by state.
   */
  tasksByState(): Record<TaskState, number> {
    const t = this.#table;
    return {
      reserved: t.count("reserved"),
      queued: t.count("queued"),
      dispatched: t.count("dispatched"),
      running: t.count("running"),
      settling: t.count("settling"),
      remote: t.count("remote"),
    };
  }

  /** Statistics of the bounded channel (depth, high-water mark, rejections, blocked time). */
  channelStats(): QueueChannelStats {
    return this.#channel.stats();
  }

  /** Busy time ÷ (wall time × workers) since the pool started; 0 without a pool. */
  utilization(): number {
    return this.#parts.pool?.utilization() ?? 0;
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
    if (count > 0) this.#dispatcher?.wake();
    return count;
  }

  /**
   * Submits one task. Resolves once the task is accepted, which for a
   * durable store means its row is committed.
   *
   * @typeParam T The result's type on an untyped queue; a typed queue
   *   takes it from the handler.
   * @typeParam K The task's type, inferred from `task.type`.
   * @param task The task.
   * @param options A signal that cancels a wait for room.
   * @returns The task's handle.
   * @throws {QueueClosedError} When the queue is closing or closed.
   * @throws {QueueFullError} When the channel is full and `overflow` is `"reject"`.
   * @throws {TypeError} When the task is malformed or its payload cannot be stored.
   */
  submit<T = unknown, K extends TaskTypeOf<H> = TaskTypeOf<H>>(
    task: TypedTaskInput<H, K>,
    options: SubmitOptions = {},
  ): Promise<TaskHandle<ResultOf<H, K, T>>> {
    return this.#intake.submit(task as TaskInput, options.signal) as Promise<
      TaskHandle<ResultOf<H, K, T>>
    >;
  }

  /**
   * Submits one task through the caller's own PostgreSQL transaction `tx`
   * (the `tx` that `sql.begin(async (tx) => …)` of the `postgres` client
   * passes its callback), so the task is enqueued if and only if that
   * transaction commits: written with the caller's rows, invisible to
   * every consumer until the commit, which wakes them (the store's
   * `NOTIFY` is delivered then), and gone without a trace, counts
   * included, on a rollback.
   *
   * The task is checked as by `submit` before anything is sent (a bad
   * task throws and `tx` stays usable), and inserted unclaimed: any
   * consumer, this queue included, claims it once committed. An
   * idempotency key already held, by a committed task or by one inserted
   * earlier in the same transaction, answers with that task
   * (`deduplicated`), as `submit` does. The channel's bound does not
   * apply (the row is written by the caller, not queued here), and
   * `drain()` does not wait for the task.
   *
   * The handle's `result` settles after the transaction ends: once the
   * task has run, when it committed; with an error saying so, when it
   * rolled back. The queue learns that the transaction ended from the
   * store's notification or its next poll. `tx` must be a transaction on
   * the queue's database, of a client that does not transform columns or
   * values (see {@linkcode PostgresTransaction}).
   *
   * @typeParam T The result's type on an untyped queue; a typed queue
   *   takes it from the handler.
   * @typeParam K The task's type, inferred from `task.type`.
   * @param tx The caller's open transaction.
   * @param task The task.
   * @param options `detached`, when nobody will wait for the result.
   * @returns The task's handle, once the insert is done in `tx` (before
   *   the caller commits).
   * @throws {TypeError} When the queue's store is not PostgreSQL ("Cannot
   *   submit in a transaction: the queue's store is sqlite-ffi, not
   *   PostgreSQL"), `tx` is not a transaction, or the task is malformed
   *   or its payload cannot be stored.
   * @throws {RangeError} When a task field is out of range.
   * @throws {QueueClosedError} When the queue is closing or closed.
   * @throws {Error} When the server fails; the caller's transaction is
   *   then aborted.
   *
   * @example Enqueueing with an order, in one transaction
   * ```ts
   * import { TaskQueue } from "@sluice/sluice";
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import postgres from "npm:postgres@3.4.9";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const sql = postgres(url, { max: 1, onnotice: () => {} });
   *   try {
   *     await using queue = await TaskQueue.open({ db: url, postgres: { schema }, workers: 1 });
   *     const handle = await sql.begin(async (tx) => {
   *       await tx`SELECT 1`; // INSERT INTO orders …
   *       return await queue.submitWith(tx, {
   *         type: "compute",
   *         payload: { operation: "double", value: 21 },
   *       });
   *     });
   *     assert.deepEqual(await handle.result, { result: "42" });
   *   } finally {
   *     await sql.end();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  async submitWith<T = unknown, K extends TaskTypeOf<H> = TaskTypeOf<H>>(
    tx: PostgresTransaction,
    task: TypedTaskInput<H, K>,
    options: SubmitWithOptions = {},
  ): Promise<TaskHandle<ResultOf<H, K, T>>> {
    const transactional = this.#transactional;
    if (transactional === null) {
      throw new TypeError(
        `Cannot submit in a transaction: the queue's store is ${this.store.kind}, not PostgreSQL`,
      );
    }
    const detached = options.detached ?? false;
    if (typeof detached !== "boolean") {
      throw new TypeError(
        `Cannot submit in a transaction: detached must be a boolean, got ${typeof detached}`,
      );
    }
    return await transactional.submit(
      tx,
      task as TaskInput,
      detached,
    ) as TaskHandle<ResultOf<H, K, T>>;
  }

  /**
   * Submits several tasks. Every task is checked first; if one is
   * malformed, none is submitted. Under `overflow: "reject"` the batch is
   * accepted whole or refused whole with a `QueueFullError`; under
   * `"block"` it waits for room task by task. With `atomic`, the batch is
   * committed in one transaction: all of it or none.
   *
   * @typeParam T The results' type on an untyped queue; a typed queue
   *   takes it from the handlers.
   * @typeParam K The tasks' types, inferred from the tasks.
   * @param tasks The tasks.
   * @param options A signal that cancels waits for room; `atomic`;
   *   `detached`.
   * @returns One handle per task, in order.
   * @throws {QueueClosedError} When the queue is closing or closed.
   * @throws {TypeError} Naming the index of the first malformed task.
   * @throws {QueueFullError} Under `"reject"` or `atomic`, when the batch
   * does not fit.
   * @throws {RangeError} With `atomic`, when a consuming queue's channel
   * could never hold the batch.
   */
  async submitMany<T = unknown, K extends TaskTypeOf<H> = TaskTypeOf<H>>(
    tasks: readonly TypedTaskInput<H, K>[],
    options: SubmitManyOptions = {},
  ): Promise<TaskHandle<ResultOf<H, K, T>>[]> {
    return await this.#intake.submitMany(
      tasks as readonly TaskInput[],
      options.signal,
      options.atomic ?? false,
      options.detached ?? false,
    ) as TaskHandle<ResultOf<H, K, T>>[];
  }

  /**
   * Submits every task of `source` in one transaction while holding only
   * a batch at a time: for sources too large to hold (a task file of
   * millions). Every task is checked as by `submitMany`, named by its
   * index in the whole source; if one is malformed, the source throws, or
   * `signal` aborts, none is submitted. Idempotency keys deduplicate as
   * in `submitMany` (a key already stored answers with its task; a key
   * repeated in the source, with its first task).
   *
   * The tasks are inserted unclaimed: no handles, no channel slots and no
   * per-task events. Any consumer (this queue included) claims them once
   * the transaction commits; read their outcomes with `getTask(id)`.
   * Other writes to a SQLite store wait until it ends.
   *
   * @param source Batches of tasks, read one at a time.
   * @param options A signal that cancels the submission (then nothing is
   *   stored).
   * @returns The ids, in order, once committed.
   * @throws {QueueClosedError} When the queue is closing or closed.
   * @throws {TypeError} Naming the index of the first malformed task.
   * @throws {RangeError} Naming the index of a task with a value out of
   *   range.
   *
   * @example Submitting batches as one transaction
   * ```ts
   * import { TaskQueue } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using queue = await TaskQueue.open({ consume: false });
   * async function* batches() {
   *   yield [{ type: "noop" }, { type: "noop" }];
   *   yield [{ type: "noop", maxAttempts: 0 }];
   * }
   * await assert.rejects(queue.submitAll(batches()), /tasks\[2\]/);
   * assert.deepEqual(await queue.store.list(), []);
   * const ids = await queue.submitAll([[{ type: "noop" }], [{ type: "noop" }]]);
   * assert.equal(ids.submitted, 2);
   * assert.equal((await queue.getTask(ids.id(1)))?.status, "queued");
   * ```
   */
  async submitAll(
    source:
      | AsyncIterable<readonly TypedTaskInput<H>[]>
      | Iterable<readonly TypedTaskInput<H>[]>,
    options: SubmitOptions = {},
  ): Promise<SubmittedIds> {
    return await this.#intake.submitAll(
      source as
        | AsyncIterable<readonly TaskInput[]>
        | Iterable<readonly TaskInput[]>,
      options.signal,
    );
  }

  /**
   * Stores a schedule: at every tick of `cron` (read in `options.tz`), a
   * task made from `task` is submitted, with the idempotency key
   * `schedule:NAME:ISO-TICK`. The schedule lives in the store, so every
   * consuming queue and `cli.ts start` on it runs it, each tick once. A
   * schedule of the same name is replaced. When every process was down
   * (or late) through several ticks, only the most recent one runs, once.
   *
   * @param name The schedule's name.
   * @param cron 5 fields (minute, hour, day of month, month, day of week),
   *   or 6 with seconds first (`* * * * * *`: every second).
   * @param task The task each tick submits: `type`, `payload`,
   *   `maxAttempts`, `queue`, `priority`.
   * @param options The time zone.
   * @returns The stored schedule, with its first tick as `nextTick`.
   * @throws {QueueClosedError} When the queue is closing or closed.
   * @throws {RangeError} When the cron expression or time zone is invalid,
   *   or `maxAttempts` is out of range.
   * @throws {TypeError} When a field has the wrong type, or the payload
   *   cannot be stored.
   *
   * @example A task every five minutes, Berlin time
   * ```ts
   * import { TaskQueue } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using queue = await TaskQueue.open({ consume: false });
   * const schedule = await queue.schedule("report", "*\/5 * * * *", {
   *   type: "noop",
   *   payload: { kind: "daily" },
   * }, { tz: "Europe/Berlin" });
   * assert.equal(new Date(schedule.nextTick!).getUTCMinutes() % 5, 0);
   * assert.deepEqual((await queue.schedules()).map((s) => s.name), ["report"]);
   * await assert.rejects(queue.schedule("bad", "61 * * * *", { type: "noop" }), RangeError);
   * assert.equal(await queue.unschedule("report"), true);
   * ```
   */
  async schedule(
    name: string,
    cron: string,
    task: ScheduleTask,
    options: ScheduleOptions = {},
  ): Promise<ScheduleRecord> {
    this.#checkOpen(`schedule ${JSON.stringify(name)}`);
    const clock = this.#parts.scheduler.clock ?? SYSTEM_CLOCK;
    const record = await putSchedule(
      this.store,
      name,
      cron,
      task,
      options,
      clock.now(),
    );
    this.#scheduler?.wake();
    return record;
  }

  /**
   * Deletes a schedule; a tick already submitted still runs.
   *
   * @param name The schedule's name.
   * @returns `false` when there was no schedule of that name.
   * @throws {QueueClosedError} When the queue is closing or closed.
   */
  async unschedule(name: string): Promise<boolean> {
    this.#checkOpen(`unschedule ${JSON.stringify(name)}`);
    return await deleteSchedule(this.store, name);
  }

  /**
   * Every schedule of the store, by name.
   *
   * @returns The schedules, with their next and last ticks.
   */
  async schedules(): Promise<ScheduleRecord[]> {
    return await listSchedules(this.store);
  }

  #checkOpen(action: string): void {
    if (this.#closing !== null) {
      throw new QueueClosedError(`Cannot ${action}: queue is closed`);
    }
  }

  /**
   * Resolves once every task submitted through this queue has finished
   * (succeeded or dead-lettered), retries included.
   *
   * @param signal Cancels the wait.
   * @returns Nothing.
   */
  drain(signal?: AbortSignal): Promise<void> {
    return this.#table.until(() => this.#table.localOutstanding === 0, signal);
  }

  /**
   * Graceful shutdown: refuses new submissions, lets queued and running
   * tasks finish within `deadline`, then stops the workers and closes the
   * store. Past the deadline, tasks not yet started are handed back to the
   * store uncharged, and every running handler's `ctx.signal` aborts with a
   * `TaskCancelledError`, with `graceMs` to stop before its worker is
   * terminated; the attempts they were charged are taken back. In a durable
   * store they run again on the next start; their handles reject with
   * {@linkcode QueueClosedError}. Calling it again returns the same report.
   *
   * @param options The deadline.
   * @returns What finished and what did not.
   */
  close(options: CloseOptions = {}): Promise<CloseReport> {
    const deadline = options.deadline ?? 30_000;
    checkDeadline(deadline);
    this.#closing ??= this.#close(deadline);
    return this.#closing;
  }

  async #close(deadline: number): Promise<CloseReport> {
    const { pool, store, ownsStore, metrics, logger, graceMs } = this.#parts;
    const table = this.#table;
    this.#draining = true;
    this.#intake.close();
    // A closing queue fires no more ticks: the other processes run them.
    await this.#scheduler?.stop();
    const dispatcher = this.#dispatcher;
    dispatcher?.drain();
    // Finish what was submitted here and every claim held (tasks claimed
    // from the store included); claim nothing new beyond that.
    const idle = (): boolean =>
      table.localOutstanding === 0 && table.holding === 0 &&
      table.count("reserved") === 0;
    let drained = true;
    try {
      await table.until(
        pool === null ? () => table.count("reserved") === 0 : idle,
        AbortSignal.timeout(deadline),
      );
    } catch {
      drained = false;
    }
    clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
    await this.#pruner?.stop();
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    // The final snapshot is taken while the workers still exist, so their
    // utilization is in it.
    const snapshot = this.#metricsFile === undefined
      ? undefined
      : metrics.snapshot();
    if (dispatcher !== null && pool !== null) {
      // Nothing more goes to the workers. What never started goes back to
      // the store uncharged.
      for (const entry of dispatcher.stop()) {
        this.#settler.release(entry, "shutdown");
      }
      if (table.count("dispatched") + table.count("running") > 0) {
        // Past the deadline: every running handler is told to stop and has
        // graceMs to do so before the workers are terminated. What stops is
        // handed back, with the attempt its start was charged taken back.
        this.#settler.cancelling();
        for (const entry of table.entries(["dispatched", "running"])) {
          this.#events.emit("cancelled", {
            id: entry.id,
            type: entry.type,
            queue: entry.queue,
            idempotencyKey: entry.idempotencyKey,
            reason: "shutdown",
          });
        }
        pool.cancel("Cannot finish task: the queue is shutting down");
        await pool.close({ signal: AbortSignal.timeout(graceMs) }).catch(
          () => {},
        );
      }
      await pool.terminate();
    }
    // Settles and releases still pending (a store that is down) get a last
    // chance; what cannot be written keeps its lease in the store and is
    // recovered later.
    await this.#committer.flushed(
      AbortSignal.timeout(Math.max(deadline, 1000)),
    );
    this.#leases.stop();
    this.#channel.close();
    // Before the table is emptied: a sweep in flight adds nothing after.
    await this.#transactional?.close();
    const unfinishedIds = this.#settler.closeAll();
    if (unfinishedIds.length > 0) {
      logger.warn("closed_unfinished", { tasks: unfinishedIds.length });
    }
    if (ownsStore) await store.close();
    metrics.setWorkersAlive(0);
    metrics.setInFlight(0);
    await this.#server?.shutdown();
    if (this.#metricsFile !== undefined && snapshot !== undefined) {
      const text = this.#metricsFile.endsWith(".csv")
        ? `${metrics.toCsvHeader()}\n${metrics.toCsvRow(snapshot)}\n`
        : JSON.stringify(snapshot, null, 2) + "\n";
      await Deno.writeTextFile(this.#metricsFile, text);
    }
    logger.info("queue_closed", {
      drained: drained && unfinishedIds.length === 0,
      unfinished: unfinishedIds.length,
    });
    this.#draining = false;
    return {
      drained: drained && unfinishedIds.length === 0,
      unfinished: unfinishedIds.length,
      unfinishedIds,
    };
  }

  /** Closes the queue with the default deadline. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function aliveWorkers(pool: WorkerPool | null): number {
  let alive = 0;
  for (const worker of pool?.stats() ?? []) if (worker.alive) alive++;
  return alive;
}

function checkIds(ids: readonly string[], action: string): void {
  if (!Array.isArray(ids)) {
    throw new TypeError(
      `Cannot ${action}: ids must be an array of strings, got ${typeof ids}`,
    );
  }
  for (const id of ids) {
    if (typeof id !== "string") {
      throw new TypeError(
        `Cannot ${action}: every id must be a string, got ${typeof id}`,
      );
    }
  }
}
