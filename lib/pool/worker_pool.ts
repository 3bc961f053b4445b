/**
 * A pool of module workers that run task handlers.
 *
 * @module
 */
import {
  deserializeError,
  type SerializedError,
  serializeError,
  TaskTimeoutError,
  WorkerCrashedError,
} from "../errors.ts";
import { isCloneable } from "../_clone.ts";
import { LOG_LEVELS, type LogFormat, type LogLevel } from "../log.ts";
import { turnNow } from "../_clock.ts";
import {
  checkWorkerPermissions,
  missingGrant,
  UNSTABLE_FLAG,
  unstableWorkerOptions,
  type WorkerPermissionOptions,
} from "./worker_permissions.ts";
import {
  type CheckpointedMessage,
  collectTransfers,
  type FromWorker,
  type InitMessage,
  type ResultsMessage,
  type RunMessage,
} from "./_protocol.ts";

const WORKER_URL = new URL("./worker.ts", import.meta.url);

export type {
  WorkerPermission,
  WorkerPermissionOptions,
  WorkerPermissions,
} from "./worker_permissions.ts";

/** One task as the pool runs it. */
export interface PoolTask {
  /** The task's id, passed to the handler as `ctx.taskId`. */
  id: string;
  /** The handler's export name. */
  type: string;
  /** The handler's first argument; must be structured-cloneable. */
  payload: unknown;
  /** 1 for the first run, 2 for the first retry, and so on. */
  attempt: number;
  /** The task's idempotency key, or `null`. */
  idempotencyKey: string | null;
  /** This task's timeout in milliseconds, overriding the pool's; 0 = none. */
  timeoutMs?: number;
  /**
   * What the task's previous attempt checkpointed, passed to the handler
   * as `ctx.checkpointed`; `undefined` or `null` for none.
   */
  checkpoint?: unknown;
}

/** A task that returned a value. Times are `performance.now()` on the main thread. */
export interface PoolSuccess {
  /** Always `true`. */
  ok: true;
  /** What the handler returned (resolved). */
  value: unknown;
  /** The worker that ran the task. */
  workerId: number;
  /** Always `true`: the handler ran. */
  started: boolean;
  /** When the task was handed to its worker. */
  dispatchedAt: number;
  /** How long the handler ran, measured in the worker. */
  runMs: number;
  /** When the result arrived. */
  endedAt: number;
}

/** A task that failed: it threw, timed out, was cancelled, or its worker died. */
export interface PoolFailure {
  /** Always `false`. */
  ok: false;
  /** What went wrong; `errorClass` says whether a retry may help. */
  error: SerializedError;
  /** The worker that ran the task, or -1 when no worker took it. */
  workerId: number;
  /**
   * Whether the worker reported calling the handler. `false` means the
   * handler never ran (its worker died first, or the type is unknown).
   */
  started: boolean;
  /** When the task was handed to its worker. */
  dispatchedAt: number;
  /** How long the handler ran before the failure was known (0 if it never started). */
  runMs: number;
  /** When the failure was known. */
  endedAt: number;
}

/** How one task ended. */
export type PoolResult = PoolSuccess | PoolFailure;

/**
 * Hears of one task's progress through the pool. One object may serve
 * every task: each call names its task.
 */
export interface PoolListener {
  /**
   * The task's handler started and is still running `startReportMs` after
   * the task was sent. Not called for a task that settles sooner (its
   * result says it started), whose worker died before it started, or whose
   * type is unknown.
   */
  started?(task: PoolTask, workerId: number): void;
  /** Called exactly once with the task's result, never synchronously from `dispatch`. */
  settled(task: PoolTask, result: PoolResult): void;
  /**
   * The handler reported progress (`ctx.progress`): `json` is the JSON
   * text of its last value this turn, already checked. Not called once
   * the task has settled. Without it, progress is dropped.
   */
  progress?(task: PoolTask, json: string): void;
  /**
   * The handler asked to checkpoint `json` (checked JSON text). `done`
   * must be called once, with `null` when the state is saved or with why
   * not; the handler's `ctx.checkpoint` promise settles then. Without
   * it, checkpoints are refused.
   */
  checkpoint?(
    task: PoolTask,
    json: string,
    done: (error: string | null) => void,
  ): void;
}

/** Why a worker was replaced. */
export type WorkerReplacedReason = "crashed" | "exited" | "timed-out";

/**
 * Something the pool did on its own, reported through `onEvent`.
 *
 * @example Seeing a timeout
 * ```ts
 * import { type PoolEvent, WorkerPool } from "@sluice/sluice/pool";
 * import assert from "node:assert/strict";
 *
 * const events: PoolEvent[] = [];
 * await using pool = await WorkerPool.start({
 *   handlers: "data:text/javascript,export const wait = (_, ctx) => " +
 *     "new Promise((_, reject) => ctx.signal.onabort = () => reject(ctx.signal.reason));",
 *   workers: 1,
 *   onEvent: (event) => events.push(event),
 * });
 * const result = await pool.run({
 *   id: "w", type: "wait", payload: null, attempt: 1, idempotencyKey: null, timeoutMs: 10,
 * });
 * assert.equal(!result.ok && result.error.name, "TaskTimeoutError");
 * assert.equal(events[0]?.type, "task-timed-out");
 * ```
 */
export type PoolEvent =
  | {
    /** A worker died or was terminated and another took its place. */
    type: "worker-replaced";
    /** The worker that is gone. */
    workerId: number;
    /** The worker started in its place. */
    replacementId: number;
    /** Why it is gone. */
    reason: WorkerReplacedReason;
    /** Details, e.g. the uncaught error's message. */
    message: string;
  }
  | {
    /** A task passed its deadline; its signal was aborted. */
    type: "task-timed-out";
    /** The task's id. */
    taskId: string;
    /** The worker running it. */
    workerId: number;
    /** The timeout that passed. */
    timeoutMs: number;
  }
  | {
    /**
     * A replacement worker could not load the handler module; another is
     * tried in its place after `retryInMs`.
     */
    type: "worker-init-failed";
    /** The worker that failed. */
    workerId: number;
    /** The import error. */
    error: SerializedError;
    /** When the position is tried again, ms. */
    retryInMs: number;
  };

/**
 * Options for {@linkcode WorkerPool.start}.
 *
 * @example Options for I/O-bound handlers with a short timeout
 * ```ts
 * import { type WorkerPoolOptions, WorkerPool } from "@sluice/sluice/pool";
 * import assert from "node:assert/strict";
 *
 * const options: WorkerPoolOptions = {
 *   handlers: "data:text/javascript,export const noop = () => {};",
 *   workers: 1,
 *   concurrency: 8,
 *   timeoutMs: 5_000,
 *   graceMs: 500,
 *   logLevel: "error",
 * };
 * await using pool = await WorkerPool.start(options);
 * assert.equal(pool.capacity, 8);
 * ```
 */
export interface WorkerPoolOptions {
  /**
   * Absolute URL of the handler module, whose named function exports are
   * the task types. Relative strings are refused because they would resolve
   * against the worker's URL, not the caller's.
   *
   * @default {undefined} required
   */
  handlers: string | URL;
  /**
   * Number of workers.
   *
   * @default {navigator.hardwareConcurrency}
   */
  workers?: number;
  /**
   * Tasks each worker runs at once; above 1 serves I/O-bound handlers.
   *
   * @default {1}
   */
  concurrency?: number;
  /**
   * Per-task timeout in milliseconds; 0 means none.
   *
   * @default {30000}
   */
  timeoutMs?: number;
  /**
   * How long a timed-out handler may keep running before its worker is
   * terminated and replaced, in milliseconds.
   *
   * @default {1000}
   */
  graceMs?: number;
  /**
   * How long after a task is sent the pool looks whether its handler has
   * started, and reports it through {@linkcode PoolListener.started}, in
   * milliseconds. A handler that finishes sooner is reported by its result
   * (`result.started`) instead, so short tasks cost no report at all.
   *
   * @default {5}
   */
  startReportMs?: number;
  /**
   * Root directory of the object store handlers get as `ctx.objects`.
   *
   * @default {Deno.cwd()} the working directory
   */
  objectsRoot?: string;
  /**
   * Chunk size of object-store reads, in bytes.
   *
   * @default {65536} (the object store's default)
   */
  chunkSize?: number;
  /**
   * Lowest level of handler log lines written to stderr.
   *
   * @default {"warn"}
   */
  logLevel?: LogLevel;
  /**
   * How handler log lines are written: JSON objects or `key=value` text.
   *
   * @default {"json"}
   */
  logFormat?: LogFormat;
  /**
   * Deno permissions of the workers, narrower than the process's: handlers
   * get only what is granted here (a kind left out of the object is
   * denied). The handler module and its static imports load before these
   * apply, so they need no grant; what a handler imports dynamically does.
   * A handler that oversteps fails its task with Deno's `NotCapable`
   * error, which is permanent (never retried).
   *
   * Anything but `"inherit"` needs Deno's `--unstable-worker-options` flag:
   * {@linkcode WorkerPool.start} refuses to start without it, when it can
   * tell (see the README, "Least-privilege handlers").
   *
   * @default {"inherit"} the process's own permissions
   */
  permissions?: WorkerPermissionOptions;
  /**
   * Called when the pool replaces a worker or times out a task. Errors it
   * throws are ignored.
   *
   * @default {undefined} no listener
   */
  onEvent?: (event: PoolEvent) => void;
}

/** Options for {@linkcode WorkerPool.start} that concern the start itself. */
export interface WorkerPoolStartOptions {
  /**
   * Aborts the start: spawned workers are terminated and `start` rejects
   * with the signal's reason.
   *
   * @default {undefined} no signal
   */
  signal?: AbortSignal;
}

/** Options for {@linkcode WorkerPool.close}. */
export interface PoolCloseOptions {
  /**
   * Stops waiting for the drain: the pool is terminated at once and `close`
   * rejects with the signal's reason.
   *
   * @default {undefined} no signal
   */
  signal?: AbortSignal;
}

/** A snapshot of one worker. */
export interface PoolWorkerStats {
  /** The worker's id (replacements get new ids). */
  id: number;
  /** Whether the worker has loaded its module and takes tasks. */
  alive: boolean;
  /** Tasks sent to it whose handlers have not returned. */
  inFlight: number;
  /** Tasks it has finished. */
  tasks: number;
  /** Run messages posted to it; each carries every task assigned in one turn. */
  batches: number;
  /** Time with at least one task in flight, in milliseconds. */
  busyMs: number;
  /** When it was spawned (`performance.now()`). */
  startedAt: number;
}

/**
 * Thrown when a task is given to a pool that is closing or closed.
 *
 * @example Running on a closed pool
 * ```ts
 * import { PoolClosedError, WorkerPool } from "@sluice/sluice/pool";
 * import assert from "node:assert/strict";
 *
 * const pool = await WorkerPool.start({
 *   handlers: "data:text/javascript,export const noop = () => {};",
 *   workers: 1,
 * });
 * await pool.close();
 * await assert.rejects(
 *   pool.run({ id: "1", type: "noop", payload: null, attempt: 1, idempotencyKey: null }),
 *   PoolClosedError,
 * );
 * ```
 */
export class PoolClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was refused, "Cannot <action>: pool is closed".
   * @param options Standard error options; `cause` is kept.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PoolClosedError";
  }
}

/** A task from dispatch until its slot is free. Owned by the pool. */
class Entry {
  readonly task: PoolTask;
  readonly listener: PoolListener;
  readonly timeoutMs: number;
  readonly handle: Handle;
  readonly seq: number;
  /** Its slot on the worker: the start-flag cell the worker sets. */
  readonly slot: number;
  readonly dispatchedAt: number;
  deadline = Infinity;
  /** Set when the worker reported calling the handler. */
  started = false;
  /** When the pool heard of the start. */
  startedAt = 0;
  /** Set when the listener has its result; the slot may still be busy. */
  settled = false;
  /** For a timed-out task still running: when its worker is killed. */
  graceDeadline = Infinity;

  constructor(
    task: PoolTask,
    listener: PoolListener,
    timeoutMs: number,
    handle: Handle,
    seq: number,
    slot: number,
    dispatchedAt: number,
  ) {
    this.task = task;
    this.listener = listener;
    this.timeoutMs = timeoutMs;
    this.handle = handle;
    this.seq = seq;
    this.slot = slot;
    this.dispatchedAt = dispatchedAt;
  }

  /** Whether the worker has marked the handler started (its flag is set). */
  hasStarted(): boolean {
    if (
      !this.started &&
      Atomics.load(this.handle.flags, this.slot) === this.seq + 1
    ) {
      this.started = true;
    }
    return this.started;
  }
}

/** One worker and the pool's view of it. Fields are written by the pool only. */
class Handle {
  readonly id: number;
  readonly index: number;
  readonly worker: Worker;
  readonly startedAt: number;
  ready = false;
  dead = false;
  /** Tasks sent whose handlers have not returned: occupied slots. */
  inFlight = 0;
  tasks = 0;
  /** Run messages posted: one per turn of the event loop, however many tasks. */
  batches = 0;
  busyMs = 0;
  busySince = 0;
  nextSeq = 0;
  /** Occupied slots by seq, including timed-out tasks still running. */
  readonly running: Map<number, Entry> = new Map();
  /** Tasks assigned this turn, sent by the next flush. */
  outbox: RunMessage = emptyBatch();
  transfer: Transferable[] = [];
  /** Start flags shared with the worker, one cell per slot. */
  readonly flags: Int32Array;
  /** Slots not occupied by a task. */
  readonly freeSlots: number[];
  /** Checkpoint answers of this turn, sent by one message; null when none. */
  acks: CheckpointedMessage | null = null;

  constructor(
    id: number,
    index: number,
    worker: Worker,
    startedAt: number,
    concurrency: number,
  ) {
    this.id = id;
    this.index = index;
    this.worker = worker;
    this.startedAt = startedAt;
    this.flags = new Int32Array(new SharedArrayBuffer(4 * concurrency));
    this.freeSlots = Array.from({ length: concurrency }, (_, i) => i);
  }
}

interface SlotWaiter {
  resolve(): void;
  reject(reason: unknown): void;
}

type PoolState = "starting" | "running" | "closing" | "closed";

/**
 * W module workers, each running up to C tasks at once.
 *
 * The pool takes a task only into a free slot: {@linkcode WorkerPool.dispatch}
 * throws when none is free, and the caller keeps whatever waits (a queue's
 * dispatcher, or {@linkcode WorkerPool.run}, which waits for a slot first).
 * A task goes to the least-loaded ready worker. Tasks for one worker are sent
 * in one message per turn of the event loop; the worker reports which
 * handlers it is about to call, then their results, batched the same way. A
 * worker that dies is replaced and its tasks settle as
 * {@linkcode WorkerCrashedError}; a task past its deadline settles as
 * {@linkcode TaskTimeoutError}, and its worker is replaced if the handler
 * ignores the abort for longer than `graceMs`.
 *
 * @example Running a task
 * ```ts
 * import { WorkerPool } from "@sluice/sluice/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = await WorkerPool.start({
 *   handlers: "data:text/javascript,export const add = (p) => p.a + p.b;",
 *   workers: 2,
 * });
 * const result = await pool.run({
 *   id: "t1", type: "add", payload: { a: 2, b: 3 }, attempt: 1, idempotencyKey: null,
 * });
 * assert.equal(result.ok && result.value, 5);
 * ```
 */
export class WorkerPool implements AsyncDisposable {
  // Resolved options; fixed after construction.
  #handlersUrl: string;
  #workerCount: number;
  #concurrency: number;
  #timeoutMs: number;
  #graceMs: number;
  #startReportMs: number;
  #objectsRoot: string | undefined;
  #chunkSize: number | undefined;
  #logLevel: LogLevel;
  #logFormat: LogFormat;
  #onEvent: ((event: PoolEvent) => void) | undefined;
  /** What workers are created with; `undefined` inherits. */
  #denoPermissions: Deno.PermissionOptions | undefined;
  /**
   * For narrowed workers, the module they start from: it imports the
   * handler module and then the worker statically, so both module graphs
   * load under the process's permissions (a worker's dynamic imports, such
   * as its `import()` of the handler module, are checked against its own).
   * The worker's later `import()` finds the module already loaded.
   */
  #bootUrl: string | undefined;

  #state: PoolState = "starting";
  #startedAt = performance.now();
  #nextWorkerId = 0;
  /** Current worker in each of the W positions. */
  #handles: Handle[] = [];
  #inFlight = 0;
  /** Busy time of workers already replaced, so utilization keeps it. */
  #retiredBusyMs = 0;

  /** Workers with tasks in their outbox, and whether a flush is queued. */
  #dirty: Handle[] = [];
  #flushScheduled = false;

  // One timer for all deadlines, armed for the earliest and only while a
  // task is in flight, so an idle pool holds no timer.
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  /** Looks for handlers that started; armed while a sent task has not. */
  #startTimer: ReturnType<typeof setTimeout> | undefined;

  #slotWaiters: Set<SlotWaiter> = new Set();
  #idleWaiters: (() => void)[] = [];
  /** Consecutive failed loads, and the pending respawn, per worker position. */
  #initFailures: number[] = [];
  #types: readonly string[] = [];
  #respawnTimers: (ReturnType<typeof setTimeout> | undefined)[] = [];
  #closing: Promise<void> | null = null;
  #startFailed: ((error: unknown) => void) | null = null;
  #startReady: (() => void) | null = null;

  private constructor(options: WorkerPoolOptions) {
    const {
      handlers,
      workers = navigator.hardwareConcurrency,
      concurrency = 1,
      timeoutMs = 30_000,
      graceMs = 1_000,
      startReportMs = 5,
      objectsRoot,
      chunkSize,
      logLevel = "warn",
      logFormat = "json",
      onEvent,
      permissions = "inherit",
    } = options;
    this.#handlersUrl = absoluteUrl(handlers);
    if (!Number.isInteger(workers) || workers < 1) {
      throw new RangeError(
        `Cannot create worker pool: workers must be an integer >= 1, received ${workers}`,
      );
    }
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(
        `Cannot create worker pool: concurrency must be an integer >= 1, received ${concurrency}`,
      );
    }
    checkMs("timeoutMs", timeoutMs);
    checkMs("graceMs", graceMs);
    checkMs("startReportMs", startReportMs);
    if (objectsRoot !== undefined && typeof objectsRoot !== "string") {
      throw new TypeError(
        `Cannot create worker pool: objectsRoot must be a string, received ${
          String(objectsRoot)
        }`,
      );
    }
    if (
      chunkSize !== undefined && (!Number.isInteger(chunkSize) || chunkSize < 1)
    ) {
      throw new RangeError(
        `Cannot create worker pool: chunkSize must be an integer >= 1, received ${chunkSize}`,
      );
    }
    if (!LOG_LEVELS.includes(logLevel)) {
      throw new RangeError(
        `Cannot create worker pool: logLevel must be one of ${
          LOG_LEVELS.join(", ")
        }, received ${String(logLevel)}`,
      );
    }
    if (logFormat !== "json" && logFormat !== "pretty") {
      throw new RangeError(
        `Cannot create worker pool: logFormat must be "json" or "pretty", received ${
          String(logFormat)
        }`,
      );
    }
    if (onEvent !== undefined && typeof onEvent !== "function") {
      throw new TypeError(
        `Cannot create worker pool: onEvent must be a function, received ${typeof onEvent}`,
      );
    }
    checkWorkerPermissions(permissions, "create worker pool");
    if (permissions !== "inherit") {
      this.#denoPermissions = permissions;
      this.#bootUrl = `data:text/javascript,${
        encodeURIComponent(
          `import ${JSON.stringify(this.#handlersUrl)};\nimport ${
            JSON.stringify(WORKER_URL.href)
          };\n`,
        )
      }`;
    }
    this.#workerCount = workers;
    this.#concurrency = concurrency;
    this.#timeoutMs = timeoutMs;
    this.#graceMs = graceMs;
    this.#startReportMs = startReportMs;
    this.#objectsRoot = objectsRoot;
    this.#chunkSize = chunkSize;
    this.#logLevel = logLevel;
    this.#logFormat = logFormat;
    this.#onEvent = onEvent;
  }

  /**
   * Spawns the workers and waits until every one has loaded the handler
   * module.
   *
   * @param options Handler module, sizes, timeouts and listener.
   * @param startOptions A signal to abort the start.
   * @returns The running pool.
   * @throws {TypeError} If `handlers` is not an absolute URL, or another
   * option has the wrong type (`permissions` names its bad field).
   * @throws {RangeError} If `workers` or `concurrency` is not an integer
   * >= 1, or `timeoutMs` or `graceMs` is negative.
   * @throws {Error} "Cannot start worker pool: <reason>" when the module
   * fails to load or a worker dies during start; `cause` holds the module's
   * error. No worker is left running.
   * @throws {Error} "Cannot start worker pool: ..." when `permissions`
   * narrows the workers but Deno's `--unstable-worker-options` flag is
   * known to be missing, or `permissions` grants what the process lacks.
   *
   * @example Starting and closing a pool
   * ```ts
   * import { WorkerPool } from "@sluice/sluice/pool";
   * import assert from "node:assert/strict";
   *
   * const pool = await WorkerPool.start({
   *   handlers: "data:text/javascript,export const noop = () => {};",
   *   workers: 2,
   *   concurrency: 4,
   * });
   * assert.equal(pool.capacity, 8);
   * await pool.close();
   * ```
   */
  static async start(
    options: WorkerPoolOptions,
    startOptions: WorkerPoolStartOptions = {},
  ): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    const { signal } = startOptions;
    signal?.throwIfAborted();
    if (pool.#denoPermissions !== undefined) checkCanNarrow(options);
    const started = Promise.withResolvers<void>();
    pool.#startReady = started.resolve;
    pool.#startFailed = started.reject;
    const onAbort = (): void => started.reject(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (let i = 0; i < pool.#workerCount; i++) {
        pool.#handles.push(pool.#spawn(i));
        pool.#initFailures.push(0);
        pool.#respawnTimers.push(undefined);
      }
      await started.promise;
    } catch (error) {
      pool.#shutdown(null);
      if (error instanceof Deno.errors.NotCapable) {
        throw new Error(
          `Cannot start worker pool: worker permissions exceed this process's: ${error.message}`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      pool.#startReady = null;
      pool.#startFailed = null;
    }
    pool.#state = "running";
    pool.#startedAt = performance.now();
    return pool;
  }

  /**
   * The task types the handler module exports (its function exports), as
   * the first worker to load it reported; empty until one has.
   */
  get types(): readonly string[] {
    return this.#types;
  }

  /** Total slots: workers × concurrency. */
  get capacity(): number {
    return this.#workerCount * this.#concurrency;
  }

  /**
   * Tasks sent to workers whose handlers have not returned yet (a
   * timed-out task counts until its handler returns or its worker is
   * replaced): the occupied slots.
   */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Slots free on ready workers right now: how many tasks `dispatch` takes. */
  get freeSlots(): number {
    if (this.#state !== "running") return 0;
    let free = 0;
    for (const handle of this.#handles) {
      if (handle.ready && !handle.dead) {
        free += this.#concurrency - handle.inFlight;
      }
    }
    return free;
  }

  /**
   * Hands a task to the least-loaded ready worker with a free slot. The
   * listener hears when the handler starts and, exactly once, how the task
   * ended; never synchronously from `dispatch` itself.
   *
   * @param task The task.
   * @param listener Receives the start and the result. The task's slot is
   * already free when `settled` is called, so it may dispatch again at once.
   * @throws {PoolClosedError} If the pool is not running.
   * @throws {RangeError} When no slot is free (check `freeSlots` first), or
   * `task.timeoutMs` is negative or not a number.
   * @throws {TypeError} "Cannot run task: payload is not structured-cloneable".
   *
   * @example Dispatching with a listener
   * ```ts
   * import { type PoolResult, WorkerPool } from "@sluice/sluice/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = await WorkerPool.start({
   *   handlers: "data:text/javascript,export const double = (n) => n * 2;",
   *   workers: 1,
   * });
   * const done = Promise.withResolvers<PoolResult>();
   * pool.dispatch(
   *   { id: "d", type: "double", payload: 21, attempt: 1, idempotencyKey: null },
   *   { settled: (_task, result) => done.resolve(result) },
   * );
   * assert.equal(pool.freeSlots, 0);
   * const result = await done.promise;
   * assert.equal(result.ok && result.value, 42);
   * ```
   */
  dispatch(task: PoolTask, listener: PoolListener): void {
    if (this.#state !== "running") {
      throw new PoolClosedError(`Cannot run task: pool is ${this.#state}`);
    }
    let timeoutMs = this.#timeoutMs;
    if (task.timeoutMs !== undefined) {
      checkMs("task.timeoutMs", task.timeoutMs);
      timeoutMs = task.timeoutMs;
    }
    checkCloneable(task.payload);
    const handle = this.#pickWorker();
    if (handle === null) {
      throw new RangeError(
        `Cannot run task ${task.id}: no free slot (${this.#inFlight} of ${this.capacity} busy)`,
      );
    }
    this.#assign(task, listener, timeoutMs, handle);
  }

  /**
   * Waits for a free slot, then runs a task and resolves with its result.
   * Handler failures, timeouts and crashes resolve as `{ ok: false }`; this
   * never rejects for them.
   *
   * @param task The task.
   * @param signal Stops waiting for a slot.
   * @returns The task's result.
   * @throws {PoolClosedError} If the pool is closing or closed.
   * @throws {TypeError} "Cannot run task: payload is not structured-cloneable".
   *
   * @example A handler failure is a result, not a rejection
   * ```ts
   * import { WorkerPool } from "@sluice/sluice/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = await WorkerPool.start({
   *   handlers: "data:text/javascript,export function bad() { throw new TypeError('no'); }",
   *   workers: 1,
   * });
   * const result = await pool.run({
   *   id: "x", type: "bad", payload: null, attempt: 1, idempotencyKey: null,
   * });
   * assert.equal(result.ok, false);
   * assert.equal(!result.ok && result.error.errorClass, "permanent");
   * ```
   */
  async run(task: PoolTask, signal?: AbortSignal): Promise<PoolResult> {
    checkCloneable(task.payload);
    while (this.freeSlots === 0) await this.waitForSlot(signal);
    const done = Promise.withResolvers<PoolResult>();
    this.dispatch(task, { settled: (_task, result) => done.resolve(result) });
    return await done.promise;
  }

  /**
   * Resolves when a slot is free on a ready worker, so a dispatcher can
   * wait without polling. Several waiters may wake for the same slot; each
   * checks `freeSlots` again before it dispatches.
   *
   * @param signal Stops waiting; the promise rejects with its reason.
   * @returns A promise that resolves when `freeSlots > 0`.
   * @throws {PoolClosedError} If the pool is closing or closed (also when
   * it starts closing while waiting).
   */
  waitForSlot(signal?: AbortSignal): Promise<void> {
    if (this.#state !== "running") {
      return Promise.reject(
        new PoolClosedError(`Cannot wait for a slot: pool is ${this.#state}`),
      );
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.freeSlots > 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#slotWaiters.delete(waiter);
        reject(signal!.reason);
      };
      const waiter: SlotWaiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (reason) => {
          signal?.removeEventListener("abort", onAbort);
          reject(reason);
        },
      };
      this.#slotWaiters.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** A snapshot of every current worker, one entry per worker position. */
  stats(): PoolWorkerStats[] {
    const now = performance.now();
    return this.#handles.map((handle) => ({
      id: handle.id,
      alive: handle.ready && !handle.dead,
      inFlight: handle.inFlight,
      tasks: handle.tasks,
      batches: handle.batches,
      busyMs: busyOf(handle, now),
      startedAt: handle.startedAt,
    }));
  }

  /**
   * Share of worker time spent busy since the pool started: total busy
   * time ÷ (wall time × workers). A worker is busy while at least one task
   * is in flight on it.
   *
   * @returns A number from 0 to 1.
   */
  utilization(): number {
    const now = performance.now();
    const wall = now - this.#startedAt;
    if (wall <= 0) return 0;
    let busy = this.#retiredBusyMs;
    for (const handle of this.#handles) busy += busyOf(handle, now);
    return Math.min(1, busy / (wall * this.#workerCount));
  }

  /**
   * Refuses new tasks, waits for in-flight tasks to finish, then terminates
   * the workers. Calling it again returns the same promise.
   *
   * @param options A signal that ends the wait early.
   * @returns A promise that resolves once every worker is terminated.
   * @throws {unknown} The signal's reason when it aborts; the pool is then
   * terminated and unfinished tasks settle as {@linkcode WorkerCrashedError}.
   */
  close(options: PoolCloseOptions = {}): Promise<void> {
    if (this.#state === "closed") return Promise.resolve();
    if (this.#closing !== null) return this.#closing;
    this.#state = "closing";
    this.#rejectSlotWaiters();
    const { signal } = options;
    this.#closing = new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#shutdown(
          new WorkerCrashedError("Cannot finish task: pool was terminated"),
        );
        reject(signal!.reason);
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#idleWaiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        this.#shutdown(null);
        resolve();
      });
      this.#checkIdle();
    });
    return this.#closing;
  }

  /**
   * Aborts the `ctx.signal` of running tasks with a `TaskCancelledError`
   * carrying `message`: every task, or those `which` selects. Each settles
   * when its handler returns (a handler that finishes anyway succeeds).
   *
   * @param message The cancellation's message.
   * @param which Selects the tasks to cancel; all when omitted.
   * @returns How many tasks were told.
   *
   * @example Cancelling a running task
   * ```ts
   * import { WorkerPool } from "@sluice/sluice/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = await WorkerPool.start({
   *   handlers: "data:text/javascript,export const wait = (_, ctx) => " +
   *     "new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));",
   *   workers: 1,
   * });
   * const run = pool.run({ id: "a", type: "wait", payload: null, attempt: 1, idempotencyKey: null });
   * while (pool.inFlight === 0) await new Promise((resolve) => setTimeout(resolve, 1));
   * pool.cancel("Cannot finish task: shutting down");
   * const result = await run;
   * assert.equal(!result.ok && result.error.name, "TaskCancelledError");
   * ```
   */
  cancel(message: string, which?: (task: PoolTask) => boolean): number {
    // Post what was assigned this turn first, so the aborts below find it.
    this.#flush();
    let told = 0;
    for (const handle of this.#handles) {
      if (handle.dead) continue;
      const seqs: number[] = [];
      const messages: string[] = [];
      for (const entry of handle.running.values()) {
        if (entry.settled || (which !== undefined && !which(entry.task))) {
          continue;
        }
        seqs.push(entry.seq);
        messages.push(message);
      }
      if (seqs.length > 0) {
        handle.worker.postMessage({
          kind: "abort",
          seqs,
          messages,
          reason: "cancel",
        });
        told += seqs.length;
      }
    }
    return told;
  }

  /**
   * Stops at once: in-flight tasks settle as {@linkcode WorkerCrashedError}
   * and every worker is terminated.
   *
   * @returns A promise that resolves when the workers are terminated.
   */
  terminate(): Promise<void> {
    this.#shutdown(
      new WorkerCrashedError("Cannot finish task: pool was terminated"),
    );
    return Promise.resolve();
  }

  /**
   * Terminates the pool unless it is already closed, for `await using`.
   *
   * @returns A promise that resolves when the workers are terminated.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.terminate();
  }

  #spawn(index: number): Handle {
    const id = ++this.#nextWorkerId;
    const workerOptions: WorkerOptions & {
      deno?: { permissions: Deno.PermissionOptions };
    } = { type: "module", name: `sluice-worker-${id}` };
    if (this.#denoPermissions !== undefined) {
      workerOptions.deno = { permissions: this.#denoPermissions };
    }
    const worker = new Worker(
      this.#bootUrl ?? WORKER_URL,
      workerOptions,
    );
    const handle = new Handle(
      id,
      index,
      worker,
      performance.now(),
      this.#concurrency,
    );
    worker.onmessage = (event: MessageEvent<FromWorker>): void =>
      this.#onMessage(handle, event.data);
    worker.onerror = (event: ErrorEvent): void => {
      // Keeps the uncaught error from ending the whole process; the worker
      // is gone either way.
      event.preventDefault();
      // A narrowed worker imports the handler module statically (see
      // #bootUrl): failing to load it is an error event before "ready",
      // retried with the same backoff as an init-error.
      if (this.#bootUrl !== undefined && !handle.ready) {
        const message = event.message.replace(
          /^Uncaught (\(in promise\) )?/,
          "",
        );
        this.#onInitError(handle, serializeError(new Error(message)));
        return;
      }
      this.#onWorkerGone(handle, "crashed", event.message);
    };
    worker.onmessageerror = (): void => {
      this.#onWorkerGone(handle, "crashed", "a message could not be read");
    };
    const init: InitMessage = {
      kind: "init",
      workerId: id,
      handlers: this.#handlersUrl,
      logLevel: this.#logLevel,
      logFormat: this.#logFormat,
      startFlags: handle.flags.buffer as SharedArrayBuffer,
    };
    if (this.#objectsRoot !== undefined) init.objectsRoot = this.#objectsRoot;
    if (this.#denoPermissions !== undefined) init.narrowed = true;
    if (this.#chunkSize !== undefined) init.chunkSize = this.#chunkSize;
    worker.postMessage(init);
    return handle;
  }

  #onMessage(handle: Handle, message: FromWorker): void {
    if (handle.dead) return;
    switch (message.kind) {
      case "results":
        this.#onResults(handle, message);
        break;
      case "ready":
        handle.ready = true;
        if (this.#types.length === 0) this.#types = message.types;
        this.#initFailures[handle.index] = 0;
        if (this.#startReady !== null) {
          if (this.#handles.every((h) => h.ready)) this.#startReady();
        } else {
          this.#wakeSlotWaiters();
        }
        break;
      case "init-error":
        this.#onInitError(handle, message.error);
        break;
      case "exit":
        this.#onWorkerGone(handle, "exited", "the worker closed itself");
        break;
    }
  }

  /** A worker could not load the handler module. */
  #onInitError(handle: Handle, error: SerializedError): void {
    if (this.#startFailed !== null) {
      this.#startFailed(
        new Error(`Cannot start worker pool: ${error.message}`, {
          cause: deserializeError(error),
        }),
      );
      return;
    }
    // The module loaded at start but not now (a file changed or went
    // away): the position is tried again with a growing backoff, so
    // the pool recovers once the module loads again.
    this.#retire(handle);
    const failures = ++this.#initFailures[handle.index]!;
    const retryInMs = Math.min(30_000, 500 * 2 ** (failures - 1));
    this.#respawnTimers[handle.index] = setTimeout(() => {
      this.#respawnTimers[handle.index] = undefined;
      if (this.#state === "closed") return;
      this.#handles[handle.index] = this.#spawn(handle.index);
    }, retryInMs);
    this.#emit({
      type: "worker-init-failed",
      workerId: handle.id,
      error,
      retryInMs,
    });
  }

  /**
   * Reports the handlers that started since the last look and are still
   * running; re-arms while a sent task has not started.
   */
  #sweepStarts = (): void => {
    this.#startTimer = undefined;
    let waiting = false;
    for (const handle of this.#handles) {
      if (handle.dead) continue;
      for (const entry of handle.running.values()) {
        if (entry.settled || entry.started) continue;
        if (!entry.hasStarted()) {
          waiting = true;
          continue;
        }
        entry.startedAt = performance.now();
        if (entry.listener.started === undefined) continue;
        try {
          entry.listener.started(entry.task, handle.id);
        } catch (error) {
          rethrowLater(error);
        }
      }
    }
    if (waiting) this.#armStartTimer();
  };

  #armStartTimer(): void {
    if (this.#startTimer !== undefined || this.#state === "closed") return;
    this.#startTimer = setTimeout(this.#sweepStarts, this.#startReportMs);
  }

  #onResults(handle: Handle, results: ResultsMessage): void {
    if (results.progressSeqs !== undefined) this.#onProgress(handle, results);
    if (results.checkpointSeqs !== undefined) {
      this.#onCheckpoints(handle, results);
    }
    const endedAt = performance.now();
    const { seqs, values, failures, runMs } = results;
    let f = 0;
    for (let i = 0; i < seqs.length; i++) {
      const failed = failures[f] === i;
      if (failed) f++;
      const seq = seqs[i]!;
      const entry = handle.running.get(seq);
      if (entry === undefined) continue;
      handle.running.delete(seq);
      const started = entry.hasStarted();
      // The slot is released before the listener hears of the result, so a
      // listener that dispatches again from `settled` finds it free.
      this.#release(handle, entry, endedAt);
      if (entry.settled) continue;
      entry.settled = true;
      const ran = runMs[i] ?? 0;
      const settled: PoolResult = failed
        ? {
          ok: false,
          error: values[i] as SerializedError,
          workerId: handle.id,
          started,
          dispatchedAt: entry.dispatchedAt,
          runMs: ran,
          endedAt,
        }
        : {
          ok: true,
          value: values[i],
          workerId: handle.id,
          started: true,
          dispatchedAt: entry.dispatchedAt,
          runMs: ran,
          endedAt,
        };
      callSettled(entry, settled);
    }
    this.#afterRelease();
  }

  #onProgress(handle: Handle, results: ResultsMessage): void {
    const seqs = results.progressSeqs!;
    for (let i = 0; i < seqs.length; i++) {
      const entry = handle.running.get(seqs[i]!);
      if (entry === undefined || entry.settled) continue;
      if (entry.listener.progress === undefined) continue;
      try {
        entry.listener.progress(entry.task, results.progress![i]!);
      } catch (error) {
        rethrowLater(error);
      }
    }
  }

  #onCheckpoints(handle: Handle, results: ResultsMessage): void {
    const seqs = results.checkpointSeqs!;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      const entry = handle.running.get(seq);
      let answered = false;
      const done = (error: string | null): void => {
        if (answered) return;
        answered = true;
        this.#ack(handle, seq, error);
      };
      if (entry === undefined || entry.settled) {
        done(
          `Cannot checkpoint task: it has already ended (timed out or cancelled)`,
        );
        continue;
      }
      const listener = entry.listener;
      if (listener.checkpoint === undefined) {
        done(
          `Cannot checkpoint task ${entry.task.id}: nothing keeps checkpoints for this pool's caller`,
        );
        continue;
      }
      try {
        listener.checkpoint(entry.task, results.checkpoints![i]!, done);
      } catch (error) {
        done(`Cannot checkpoint task ${entry.task.id}: ${String(error)}`);
        rethrowLater(error);
      }
    }
  }

  /** Answers one checkpoint; the answers of a turn go in one message. */
  #ack(handle: Handle, seq: number, error: string | null): void {
    if (handle.dead) return;
    if (handle.acks === null) {
      handle.acks = { kind: "checkpointed", seqs: [], errors: [] };
      queueMicrotask(() => {
        const acks = handle.acks;
        handle.acks = null;
        if (acks !== null && !handle.dead) handle.worker.postMessage(acks);
      });
    }
    handle.acks.seqs.push(seq);
    handle.acks.errors.push(error);
  }

  #onWorkerGone(
    handle: Handle,
    reason: WorkerReplacedReason,
    message: string,
  ): void {
    if (handle.dead) return;
    if (this.#startFailed !== null) {
      this.#startFailed(
        new Error(`Cannot start worker pool: worker ${reason}: ${message}`),
      );
      return;
    }
    const entries = [...handle.running.values()];
    // What the worker marked started stays readable after it is gone.
    for (const entry of entries) entry.hasStarted();
    this.#retire(handle);
    let replacementId = -1;
    if (this.#state !== "closed") {
      const replacement = this.#spawn(handle.index);
      this.#handles[handle.index] = replacement;
      replacementId = replacement.id;
    }
    const error = reason === "timed-out"
      ? new WorkerCrashedError(
        `Cannot finish task: worker ${handle.id} was replaced after a task ignored its timeout`,
      )
      : new WorkerCrashedError(
        `Cannot finish task: worker ${handle.id} ${reason}: ${message}`,
      );
    for (const entry of entries) {
      if (!entry.settled) this.#settleFailure(entry, error);
    }
    this.#emit({
      type: "worker-replaced",
      workerId: handle.id,
      replacementId,
      reason,
      message,
    });
    this.#afterRelease();
  }

  /** Marks a worker dead, terminates it and frees its slots. */
  #retire(handle: Handle): void {
    handle.dead = true;
    handle.worker.onmessage = null;
    handle.worker.onerror = null;
    handle.worker.onmessageerror = null;
    handle.worker.terminate();
    const now = performance.now();
    if (handle.inFlight > 0) handle.busyMs += now - handle.busySince;
    this.#retiredBusyMs += handle.busyMs;
    handle.busyMs = 0;
    this.#inFlight -= handle.inFlight;
    handle.inFlight = 0;
    handle.running.clear();
    handle.outbox = emptyBatch();
    handle.transfer = [];
  }

  #pickWorker(): Handle | null {
    let best: Handle | null = null;
    for (const handle of this.#handles) {
      if (
        handle.ready && !handle.dead && handle.inFlight < this.#concurrency &&
        (best === null || handle.inFlight < best.inFlight)
      ) {
        best = handle;
      }
    }
    return best;
  }

  #assign(
    task: PoolTask,
    listener: PoolListener,
    timeoutMs: number,
    handle: Handle,
  ): void {
    const now = turnNow();
    const seq = handle.nextSeq++;
    const slot = handle.freeSlots.pop()!;
    const entry = new Entry(task, listener, timeoutMs, handle, seq, slot, now);
    handle.running.set(seq, entry);
    if (handle.inFlight++ === 0) handle.busySince = now;
    this.#inFlight++;
    const batch = handle.outbox;
    batch.seqs.push(seq);
    batch.slots.push(slot);
    batch.ids.push(task.id);
    batch.types.push(task.type);
    batch.payloads.push(task.payload);
    batch.attempts.push(task.attempt);
    batch.keys.push(task.idempotencyKey);
    const checkpoint = task.checkpoint;
    if (checkpoint !== undefined && checkpoint !== null) {
      (batch.checkpointAt ??= []).push(batch.seqs.length - 1);
      (batch.checkpoints ??= []).push(checkpoint);
    }
    collectTransfers(task.payload, handle.transfer);
    if (batch.seqs.length === 1) this.#dirty.push(handle);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flush);
    }
    if (timeoutMs > 0) {
      entry.deadline = now + timeoutMs;
      if (entry.deadline < this.#timerAt) this.#armTimer(entry.deadline);
    }
    if (listener.started !== undefined) this.#armStartTimer();
  }

  // Tasks are sent by a microtask queued by the first dispatch of a turn.
  // Callers that dispatch from `settled`, or right after awaiting `run`,
  // run in the same microtask checkpoint as the result message that freed
  // their slots, before this flush, so one message carries all of them.
  // Measured with 2 workers x 64 slots and 100 producers (the dispatch
  // group of bench/pool_bench.ts): about 185k tasks/s with this microtask,
  // about 37k tasks/s with setTimeout(0), whose timer round per batch costs
  // more than the larger batches save. I/O is not starved: the flush only
  // posts messages and never re-queues itself.
  #flush = (): void => {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const handle of dirty) {
      if (handle.dead || handle.outbox.seqs.length === 0) continue;
      const batch = handle.outbox;
      const transfer = handle.transfer;
      handle.outbox = emptyBatch();
      handle.transfer = [];
      try {
        handle.worker.postMessage(batch, transfer);
        handle.batches++;
      } catch {
        this.#postEach(handle, batch);
      }
    }
  };

  /** Sends tasks one by one after a batch failed to clone; fails only those that cannot be sent. */
  #postEach(handle: Handle, batch: RunMessage): void {
    for (let i = 0; i < batch.seqs.length; i++) {
      const seq = batch.seqs[i]!;
      const transfer: Transferable[] = [];
      collectTransfers(batch.payloads[i], transfer);
      const single: RunMessage = {
        kind: "run",
        seqs: [seq],
        slots: [batch.slots[i]!],
        ids: [batch.ids[i]!],
        types: [batch.types[i]!],
        payloads: [batch.payloads[i]],
        attempts: [batch.attempts[i]!],
        keys: [batch.keys[i] ?? null],
      };
      const c = batch.checkpointAt?.indexOf(i) ?? -1;
      if (c >= 0) {
        single.checkpointAt = [0];
        single.checkpoints = [batch.checkpoints![c]];
      }
      try {
        handle.worker.postMessage(single, transfer);
        handle.batches++;
      } catch {
        const entry = handle.running.get(seq);
        if (entry === undefined) continue;
        handle.running.delete(seq);
        this.#release(handle, entry, performance.now());
        this.#settleFailure(
          entry,
          new TypeError(
            "Cannot run task: payload is not structured-cloneable",
          ),
        );
      }
    }
    this.#afterRelease();
  }

  #release(handle: Handle, entry: Entry, now: number): void {
    handle.freeSlots.push(entry.slot);
    handle.tasks++;
    this.#inFlight--;
    if (--handle.inFlight === 0) handle.busyMs += now - handle.busySince;
  }

  /** Bookkeeping once a batch of slots was released. */
  #afterRelease(): void {
    if (this.#inFlight === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
    this.#wakeSlotWaiters();
    this.#checkIdle();
  }

  #wakeSlotWaiters(): void {
    if (this.#slotWaiters.size === 0) return;
    let free = this.freeSlots;
    for (const waiter of this.#slotWaiters) {
      if (free-- <= 0) return;
      this.#slotWaiters.delete(waiter);
      waiter.resolve();
    }
  }

  #rejectSlotWaiters(): void {
    const waiters = [...this.#slotWaiters];
    this.#slotWaiters.clear();
    for (const waiter of waiters) {
      waiter.reject(
        new PoolClosedError(`Cannot wait for a slot: pool is ${this.#state}`),
      );
    }
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0 || this.#inFlight > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const waiter of waiters) waiter();
  }

  #armTimer(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      this.#onTimer,
      Math.max(0, Math.ceil(at - performance.now())),
    );
  }

  // Sweeps every in-flight task: times out those past their deadline,
  // replaces workers whose timed-out handler outlived the grace period, and
  // re-arms for the earliest deadline left.
  #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    const overdue: Handle[] = [];
    for (const handle of this.#handles) {
      if (handle.dead) continue;
      let seqs: number[] | null = null;
      let messages: string[] | null = null;
      let kill = false;
      for (const entry of handle.running.values()) {
        if (!entry.settled) {
          if (entry.deadline > now) {
            if (entry.deadline < next) next = entry.deadline;
            continue;
          }
          const message =
            `Cannot finish task: timed out after ${entry.timeoutMs} ms`;
          (seqs ??= []).push(entry.seq);
          (messages ??= []).push(message);
          entry.graceDeadline = now + this.#graceMs;
          this.#settleFailure(entry, new TaskTimeoutError(message));
          this.#emit({
            type: "task-timed-out",
            taskId: entry.task.id,
            workerId: handle.id,
            timeoutMs: entry.timeoutMs,
          });
        }
        if (entry.graceDeadline <= now) kill = true;
        else if (entry.graceDeadline < next) next = entry.graceDeadline;
      }
      if (seqs !== null) {
        handle.worker.postMessage({
          kind: "abort",
          seqs,
          messages,
          reason: "timeout",
        });
      }
      if (kill) overdue.push(handle);
    }
    for (const handle of overdue) {
      this.#onWorkerGone(
        handle,
        "timed-out",
        "a timed-out task ignored its abort signal",
      );
    }
    if (next < Infinity && this.#inFlight > 0 && next < this.#timerAt) {
      this.#armTimer(next);
    }
  };

  #settleFailure(entry: Entry, error: unknown): void {
    entry.settled = true;
    const endedAt = performance.now();
    const started = entry.hasStarted();
    if (started && entry.startedAt === 0) entry.startedAt = entry.dispatchedAt;
    callSettled(entry, {
      ok: false,
      error: serializeError(error),
      workerId: entry.handle.id,
      started,
      dispatchedAt: entry.dispatchedAt,
      runMs: entry.started ? endedAt - entry.startedAt : 0,
      endedAt,
    });
  }

  /** Terminates everything; `error` settles unfinished tasks (null when none can exist). */
  #shutdown(error: WorkerCrashedError | null): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    for (const timer of this.#respawnTimers) clearTimeout(timer);
    clearTimeout(this.#startTimer);
    this.#startTimer = undefined;
    const unfinished: Entry[] = [];
    for (const handle of this.#handles) {
      if (handle.dead) continue;
      for (const entry of handle.running.values()) {
        entry.hasStarted();
        unfinished.push(entry);
      }
      this.#retire(handle);
    }
    this.#dirty = [];
    this.#rejectSlotWaiters();
    if (error !== null) {
      for (const entry of unfinished) {
        if (!entry.settled) this.#settleFailure(entry, error);
      }
    }
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const waiter of waiters) waiter();
  }

  #emit(event: PoolEvent): void {
    if (this.#onEvent === undefined) return;
    try {
      this.#onEvent(event);
    } catch {
      // A listener's failure must not corrupt the pool's bookkeeping.
    }
  }
}

function emptyBatch(): RunMessage {
  return {
    kind: "run",
    seqs: [],
    slots: [],
    ids: [],
    types: [],
    payloads: [],
    attempts: [],
    keys: [],
  };
}

function callSettled(entry: Entry, result: PoolResult): void {
  try {
    entry.listener.settled(entry.task, result);
  } catch (error) {
    rethrowLater(error);
  }
}

/**
 * The pool's state is consistent when a listener runs; a listener's own
 * bug surfaces as an uncaught error instead of being swallowed.
 */
function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

function busyOf(handle: Handle, now: number): number {
  return handle.inFlight > 0
    ? handle.busyMs + (now - handle.busySince)
    : handle.busyMs;
}

function absoluteUrl(handlers: unknown): string {
  if (handlers instanceof URL) return handlers.href;
  if (typeof handlers !== "string") {
    throw new TypeError(
      `Cannot create worker pool: handlers must be an absolute URL string or a URL, received ${typeof handlers}`,
    );
  }
  if (!URL.canParse(handlers)) {
    throw new TypeError(
      `Cannot create worker pool: handlers must be an absolute URL, received "${handlers}"`,
    );
  }
  return new URL(handlers).href;
}

/**
 * Refuses, before any worker exists, to narrow worker permissions when
 * Deno would end the process for it (no `--unstable-worker-options`) or
 * refuse it (more than the process has).
 */
function checkCanNarrow(options: WorkerPoolOptions): void {
  if (unstableWorkerOptions() === "missing") {
    throw new Error(
      `Cannot start worker pool: narrowing worker permissions needs Deno's ${UNSTABLE_FLAG} flag (run deno with ${UNSTABLE_FLAG}, or add "worker-options" to "unstable" in deno.json)`,
    );
  }
  const missing = missingGrant(options.permissions ?? "inherit");
  if (missing !== null) {
    throw new Error(`Cannot start worker pool: ${missing}`);
  }
}

function checkMs(name: string, value: unknown): void {
  if (typeof value !== "number" || !(value >= 0) || value === Infinity) {
    throw new RangeError(
      `Cannot create worker pool: ${name} must be a number >= 0, received ${
        String(value)
      }`,
    );
  }
}

/**
 * Throws the TypeError `run` promises when `payload` cannot cross to a
 * worker.
 */
function checkCloneable(payload: unknown): void {
  if (!isCloneable(payload)) {
    throw new TypeError("Cannot run task: payload is not structured-cloneable");
  }
}
