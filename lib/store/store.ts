/**
 * The storage seam between the queue and its state. Only `lib/store/`
 * speaks SQL; the queue talks to a {@linkcode TaskStore}.
 *
 * The hot path goes through {@linkcode TaskStore.commit}: one call, one
 * transaction, per turn of the event loop (group commit). Everything else is
 * administration.
 *
 * @experimental The store interface is not yet a stable API.
 * @module
 */
import type { ErrorClass } from "../errors.ts";

/**
 * Life cycle of a task: `queued` → `running` → `succeeded`, or → `failed`
 * (an attempt failed and a retry is scheduled at `runAt`; claimable again
 * once due) → … → `dead` (permanent error or attempts exhausted: the
 * dead-letter queue).
 */
export type TaskStatus = "queued" | "running" | "succeeded" | "failed" | "dead";

/** A task as stored. Times are epoch milliseconds. */
export interface TaskRecord {
  /** Unique id (a UUID unless given). */
  id: string;
  /** Task type: the handler's export name. */
  type: string;
  /** The named queue the task belongs to (`"default"` unless given). */
  queue: string;
  /**
   * Claim priority: higher claims first; equal priorities in `runAt`,
   * then submission, order.
   */
  priority: number;
  /** Idempotency key; unique when not null. */
  idempotencyKey: string | null;
  /** The payload (JSON-serializable in a durable store). */
  payload: unknown;
  /** Current status. */
  status: TaskStatus;
  /**
   * Attempts charged so far. An attempt is charged when a handler starts
   * (a {@linkcode Start}, or a settle with `charge`), never by a claim, so
   * a task that was claimed but never started carries no charge.
   */
  attempts: number;
  /** Attempts allowed before the task is dead-lettered. */
  maxAttempts: number;
  /** Earliest time the task may be claimed. */
  runAt: number;
  /** When the current claim's lease ends; `null` unless running. */
  leaseUntil: number | null;
  /**
   * When the handler of the current claim was recorded as started: the
   * `now` of the batch that applied its {@linkcode Start}. `null` from a
   * claim (or a claimed insert) until its start is written, and again
   * after a release, a recovery or a requeue. A settle leaves it as it is,
   * so a finished task shows its last recorded start; a task settled with
   * `charge` (its start never written) takes the settle's
   * {@linkcode Settlement.startedAt}, or keeps `null` without one. A
   * running task with `startedAt` set counts in
   * {@linkcode StoreStatus.started}.
   */
  startedAt: number | null;
  /** When the task was accepted. */
  createdAt: number;
  /**
   * When the record last changed (for a finished task: when it finished,
   * the time retention measures its age from).
   */
  updatedAt: number;
  /**
   * The end of the idempotency key's window: from `dedupeUntil` on (an
   * insert whose batch `now` is past it), a new task with the same key
   * takes the key over. `null`: the key deduplicates for as long as the
   * task is kept.
   */
  dedupeUntil: number | null;
  /** Object key the handler reported writing, if any. */
  outputKey: string | null;
  /** The handler's result once succeeded. */
  result: unknown;
  /** Message of the last error. */
  lastError: string | null;
  /** Class of the last error. */
  errorClass: ErrorClass | null;
  /**
   * The last progress value a handler of this task reported
   * (`ctx.progress`), or `null`. Kept across retries and recoveries;
   * cleared by a requeue.
   */
  progress: unknown;
  /**
   * The last state a handler of this task checkpointed
   * (`ctx.checkpoint`), or `null`: what the next attempt receives as
   * `ctx.checkpointed`. Kept across retries, releases and recoveries;
   * cleared by a requeue, so a requeued task starts over.
   */
  checkpoint: unknown;
  /**
   * Incremented by every claim, settle, release and recovery (not by a
   * start or a renewal). The value returned by a claim is the fencing token
   * its starts, renewals, settles and releases must present.
   */
  version: number;
}

/** A task to insert. */
export interface NewTask {
  /** Unique id. */
  id: string;
  /** Task type. */
  type: string;
  /**
   * The named queue: a non-empty string of at most 128 characters.
   *
   * @default {"default"}
   */
  queue?: string;
  /**
   * Claim priority, a safe integer; higher claims first.
   *
   * @default {0}
   */
  priority?: number;
  /** Idempotency key, or `null`. */
  idempotencyKey: string | null;
  /** Payload. */
  payload: unknown;
  /** Attempt limit (≥ 1). */
  maxAttempts: number;
  /** Earliest run time. */
  runAt: number;
  /**
   * End of the idempotency key's window (epoch ms). While the task is kept
   * and `now < dedupeUntil` (or always, when `null`), an insert with the
   * same key is its duplicate. Once a batch's `now` is past it, the next
   * insert with the key takes the key over: the old task keeps its record
   * but its `idempotencyKey` becomes `null`, and the new task is inserted,
   * in the same transaction. Within one batch, the batch's own first
   * insert of a key holds it for the rest of the batch.
   *
   * @default {null}
   */
  dedupeUntil?: number | null;
  /**
   * Insert the task already claimed by the inserting process: `running`,
   * 0 attempts charged, version 1, leased until `now + leaseMs` of the
   * batch. The submitting process runs it without a separate claim write,
   * and no other claimer can take it while the lease holds. A task whose
   * queue is paused is inserted `queued` instead (its outcome's record
   * says so).
   */
  claim?: boolean;
}

/** Result of inserting one task. */
export interface InsertOutcome {
  /** `false` when the idempotency key already existed. */
  inserted: boolean;
  /**
   * The new record (as inserted), or the existing one for a duplicate key.
   */
  record: TaskRecord;
}

/** Options of {@linkcode TaskStore.insertAll}. */
export interface InsertAllOptions {
  /**
   * The time every insert is applied at (epoch ms), as a batch's `now`:
   * `createdAt`, and the time idempotency windows are judged at.
   */
  now: number;
  /**
   * Called with each batch's outcomes (one per task, in order) once the
   * batch is written inside the still open transaction: they are final
   * only if `insertAll` resolves. For a duplicate key, the outcome's record
   * is the task holding the key, possibly one inserted earlier in the
   * same call.
   */
  onInserted(outcomes: InsertOutcome[]): void;
}

/** How an attempt ended, as the store records it. */
export type SettleOutcome =
  | { kind: "succeeded"; result: unknown; outputKey: string | null }
  | {
    kind: "retry";
    runAt: number;
    error: string;
    errorClass: ErrorClass;
  }
  | { kind: "dead"; error: string; errorClass: ErrorClass };

/**
 * One attempt to settle, fenced by the claim's version. A settle moves the
 * task out of `running`.
 */
export interface Settlement {
  /** Task id. */
  id: string;
  /** The `version` its claim returned (fencing token). */
  version: number;
  /** What happened. */
  outcome: SettleOutcome;
  /**
   * Also charge the attempt that produced this outcome, because its
   * {@linkcode Start} was never written (a handler that finished before
   * its start reached the store is charged here instead, in one write).
   *
   * @default {false}
   */
  charge?: boolean;
  /**
   * When the attempt started (epoch ms, the caller's estimate), for a
   * settle with `charge`, whose start was never written: recorded as the
   * task's {@linkcode TaskRecord.startedAt} only when it has none
   * (`coalesce(started_at, startedAt)`), so a written start is never
   * replaced.
   *
   * @default {undefined}
   */
  startedAt?: number;
  /**
   * The task's queue, as its claim returned it: the write is then fenced
   * by it too (a wrong queue makes the settle stale, like a wrong
   * version), and a store can count the move without reading the queue
   * back. The queue sends it with every settle and release.
   *
   * @default {undefined}
   */
  queue?: string;
}

/**
 * A handler started: charges one attempt to the claimed task and sets its
 * `startedAt` to the batch's `now`. Fenced by version like a settle; it
 * does not change the version.
 */
export interface Start {
  /** Task id. */
  id: string;
  /** The `version` its claim returned. */
  version: number;
}

/**
 * Hands a claimed task back, due at once and claimable by anyone: the
 * process is closing, or gave up the task before it could run. The task
 * goes back to `queued` with a new version.
 */
export interface Release {
  /** Task id. */
  id: string;
  /** The `version` its claim returned. */
  version: number;
  /**
   * Take back the attempt this claim's {@linkcode Start} charged: the
   * handler was stopped by the shutdown, not by its own failure.
   *
   * @default {false}
   */
  refund?: boolean;
  /**
   * The task's queue, as its claim returned it; see
   * {@linkcode Settlement.queue}.
   *
   * @default {undefined}
   */
  queue?: string;
}

/**
 * An extension of a claimed task's lease to `now + leaseMs` of the batch,
 * fenced by version (the version does not change).
 */
export interface Renewal {
  /** Task id. */
  id: string;
  /** The `version` its claim returned; the lease is kept only if unchanged. */
  version: number;
}

/**
 * A progress value or checkpoint to record on a claimed task, fenced by
 * version like a renewal: applied only while the task is `running` under
 * the claim that returned `version` (the version does not change). `null`
 * clears the field.
 */
export interface StateWrite {
  /** Task id. */
  id: string;
  /** The `version` its claim returned. */
  version: number;
  /** Plain JSON data (what a payload may be), or `null`. */
  value: unknown;
}

/**
 * Work for one group-commit transaction, applied in this order: renewals,
 * starts, progress, checkpoints, settles, releases, recovery of expired
 * leases, inserts, claims.
 * Renewals come before recovery, so a process that renews what it holds
 * in the same batch never recovers its own tasks.
 */
export interface CommitBatch {
  /**
   * Leases to extend to `now + leaseMs`.
   *
   * @default {[]}
   */
  renewals?: Renewal[];
  /**
   * Handler starts to charge.
   *
   * @default {[]}
   */
  starts?: Start[];
  /**
   * Progress values to record; of several for one claim, the last wins.
   *
   * @default {[]}
   */
  progress?: StateWrite[];
  /**
   * Checkpoints to record, before the settles: a checkpoint and the
   * settle of the same attempt in one batch leave the checkpoint for the
   * next attempt. Of several for one claim, the last wins.
   *
   * @default {[]}
   */
  checkpoints?: StateWrite[];
  /**
   * Attempts to settle. Of several for one claim (one id and version),
   * only the first can apply; the others are refused, as stale.
   */
  settles: Settlement[];
  /**
   * Claimed tasks to hand back; of several for one claim, only the first
   * can apply.
   *
   * @default {[]}
   */
  releases?: Release[];
  /**
   * Recover expired leases (`lease_until < now`), as
   * {@linkcode TaskStore.recoverExpired} does, after the renewals.
   *
   * @default {false}
   */
  recover?: boolean;
  /** Tasks to insert. */
  inserts: NewTask[];
  /**
   * How many due tasks (queued, or failed and due) to claim at most, from
   * the queues of `claimQueues` that are not paused: the highest
   * `priority` first, then the oldest `runAt`, then submission order.
   */
  claimDue: number;
  /**
   * The queues to claim from, each with an optional cap on how many of
   * this claim it may take (a per-queue concurrency limit).
   *
   * @default {[{ queue: "default" }]}
   */
  claimQueues?: readonly QueueClaim[];
  /**
   * Claim only tasks of these types (the ones the claiming process can
   * run); the rest stay queued for others. `undefined`: any type.
   *
   * @default {undefined}
   */
  claimTypes?: readonly string[];
  /** Lease length for claims and renewals, in milliseconds. */
  leaseMs: number;
  /** The time the batch is applied at (epoch ms). */
  now: number;
}

/** One queue a claim takes from, in {@linkcode CommitBatch.claimQueues}. */
export interface QueueClaim {
  /** Queue name. */
  queue: string;
  /**
   * At most this many tasks of this queue in the claim.
   *
   * @default {Infinity}
   */
  limit?: number;
}

/** What one commit did. */
export interface CommitResult {
  /** `true` per renewal applied; `false` when its token was stale. */
  renewed: boolean[];
  /** `true` per start applied; `false` when its token was stale. */
  started: boolean[];
  /** `true` per progress write applied; `false` when its token was stale. */
  progressed: boolean[];
  /** `true` per checkpoint applied; `false` when its token was stale. */
  checkpointed: boolean[];
  /** `true` per settle applied; `false` when its token was stale. */
  settled: boolean[];
  /** `true` per release applied; `false` when its token was stale. */
  released: boolean[];
  /** Tasks recovered from expired leases (0 unless `recover` was set). */
  recovered: number;
  /** One outcome per insert, in order. */
  inserted: InsertOutcome[];
  /** The tasks claimed, now running with a lease; no attempt charged yet. */
  claimed: TaskRecord[];
}

/** Counts of tasks by status. */
export type StatusCounts = Record<TaskStatus, number>;

/** Filter for listing tasks. */
export interface ListOptions {
  /** Only this status. */
  status?: TaskStatus;
  /** Only this queue. */
  queue?: string;
  /** At most this many. */
  limit?: number;
  /** Skip this many. */
  offset?: number;
}

/**
 * Monotonic counts over the life of the store (a database: every process
 * using it): tasks inserted, and transitions into a finished status.
 * Pruning never lowers them: a monitor takes differences between two reads
 * to compute rates.
 */
export interface StatusTotals {
  /**
   * Tasks ever inserted (a duplicate key inserts nothing). A store
   * migrated from a version without this total starts from the rows it
   * held.
   */
  submitted: number;
  /**
   * Times a task reached `succeeded`. A store migrated from a version
   * without totals starts from the succeeded rows it held.
   */
  succeeded: number;
  /**
   * Times a task was dead-lettered; a task requeued and dead-lettered
   * again counts twice. Seeded like `succeeded`.
   */
  dead: number;
}

/**
 * A snapshot for `status` and `monitor`, read without disturbing writers
 * and without reading the tasks table: counts and totals are kept by the
 * store's own writes, the oldest due task is an index's first entry,
 * `dueFailed` reads the due entries of that index, and `started` reads the
 * running rows only.
 */
export interface StoreStatus {
  /**
   * Tasks by status, as the store holds them now. Kept by the store's own
   * statements: a status changed by other SQL is not counted until
   * {@linkcode TaskStore.recount}.
   */
  counts: StatusCounts;
  /** Age of the oldest due claimable task (queued, or failed and due) in ms, or `null`. */
  oldestQueuedAgeMs: number | null;
  /**
   * Failed tasks whose retry is due (`runAt <= now`): claimable now, like
   * the queued ones, so the depth of work waiting for a worker is
   * `counts.queued + dueFailed`. Read through the index of due work, so
   * it costs as many entries as there are due tasks, not failed ones.
   */
  dueFailed: number;
  /**
   * Of the tasks in `counts.running` (claimed by a worker process), those
   * whose handler is known to have started: a start was written for their
   * current claim ({@linkcode TaskRecord.startedAt} is set). The rest wait
   * for a worker slot, or started less than a few milliseconds ago.
   */
  started: number;
  /** Tasks ever inserted, succeeded and dead-lettered, for rates. */
  totals: StatusTotals;
  /**
   * The same counts and totals for each queue that ever held a task, by
   * name; they add up to `counts` and `totals`. Kept like `counts`.
   */
  queues: QueueStatus[];
}

/** One queue's share of {@linkcode StoreStatus}. */
export interface QueueStatus {
  /** Queue name. */
  queue: string;
  /** The queue's tasks by status. */
  counts: StatusCounts;
  /** The queue's tasks ever inserted, succeeded and dead-lettered. */
  totals: StatusTotals;
}

/**
 * How long to keep the finished tasks of one status, in each queue. A task
 * is kept while both limits keep it: pruning removes it once it is older
 * than `maxAgeMs` or no longer among the newest `maxCount` of its queue
 * (whichever keeps fewer).
 */
export interface RetentionRule {
  /**
   * Keep tasks finished (`updatedAt`) less than this long before `now`.
   *
   * @default {Infinity}
   */
  maxAgeMs?: number;
  /**
   * Keep at most this many tasks of each queue, the most recently
   * finished.
   *
   * @default {Infinity}
   */
  maxCount?: number;
}

/**
 * What {@linkcode TaskStore.prune} keeps of each finished status, applied
 * to each named queue separately: `maxCount` counts the tasks of one
 * queue, so two queues with `{ maxCount: 100 }` keep up to 100 each. A
 * status without a rule is kept entirely; queued, running and failed
 * tasks are never pruned.
 */
export interface RetentionPolicy {
  /**
   * Rule for succeeded tasks.
   *
   * @default {{}}
   */
  succeeded?: RetentionRule;
  /**
   * Rule for dead-lettered tasks.
   *
   * @default {{}}
   */
  dead?: RetentionRule;
  /**
   * Rules of particular queues, by queue name. A rule given here replaces
   * the one above for that queue's tasks of that status; a status it
   * leaves out follows the rule above.
   *
   * @default {{}}
   */
  queues?: Record<string, QueueRetention>;
}

/** The rules of one queue in {@linkcode RetentionPolicy.queues}. */
export interface QueueRetention {
  /**
   * Rule for the queue's succeeded tasks.
   *
   * @default {the policy's succeeded rule}
   */
  succeeded?: RetentionRule;
  /**
   * Rule for the queue's dead-lettered tasks.
   *
   * @default {the policy's dead rule}
   */
  dead?: RetentionRule;
}

/** What one {@linkcode TaskStore.prune} deleted, or `prunable` counted. */
export interface PruneResult {
  /** Succeeded tasks. */
  succeeded: number;
  /** Dead-lettered tasks. */
  dead: number;
  /**
   * `true` when another process was pruning the same store: nothing was
   * deleted, try again later.
   */
  skipped: boolean;
}

/** A named queue's stored state, from {@linkcode TaskStore.queueStates}. */
export interface QueueState {
  /** Queue name. */
  name: string;
  /** Whether claims skip the queue. */
  paused: boolean;
  /** When the state last changed (epoch ms). */
  updatedAt: number;
}

/**
 * What {@linkcode TaskStore.cancel} did to one task: `cancelled` (it was
 * queued, failed or running; it is now dead with the error
 * "Cannot run task: cancelled" and will not run, and a running attempt's claim is fenced off),
 * `finished` (it had already succeeded or been dead-lettered: unchanged),
 * `missing` (no such task).
 */
export interface CancelOutcome {
  /** Task id. */
  id: string;
  /** What happened. */
  outcome: "cancelled" | "finished" | "missing";
  /** The status the task had before (`null` when missing). */
  was: TaskStatus | null;
}

/**
 * What {@linkcode TaskStore.remove} did to one task: `removed`, `running`
 * (refused: cancel it first, or wait), or `missing`.
 */
export interface RemoveOutcome {
  /** Task id. */
  id: string;
  /** What happened. */
  outcome: "removed" | "running" | "missing";
}

/**
 * The task a schedule submits at each tick, as stored with the schedule
 * (JSON). `queue` and `priority` are kept and passed on to the task as
 * given; a store whose tasks have no such columns ignores them.
 */
export interface ScheduleTask {
  /** Task type. */
  type: string;
  /**
   * Payload (JSON data).
   *
   * @default {null}
   */
  payload?: unknown;
  /**
   * Attempt limit; without it, the queue's retry policy decides at each
   * tick.
   *
   * @default {undefined}
   */
  maxAttempts?: number;
  /**
   * The queue the task goes to.
   *
   * @default {undefined}
   */
  queue?: string;
  /**
   * The task's priority.
   *
   * @default {undefined}
   */
  priority?: number;
}

/** A schedule to store (insert, or replace the one of the same name). */
export interface NewSchedule {
  /** Unique name. */
  name: string;
  /** The cron expression, as given. */
  cron: string;
  /** IANA time zone the cron expression is read in. */
  tz: string;
  /** The task each tick submits. */
  task: ScheduleTask;
  /** The first tick to run (epoch ms), or `null` when the cron has none. */
  nextTick: number | null;
}

/** A schedule as stored. Times are epoch milliseconds. */
export interface ScheduleRecord extends NewSchedule {
  /** The last tick a task was inserted for, or `null` before the first. */
  lastTick: number | null;
  /** When the schedule was first stored. */
  createdAt: number;
  /** When it last changed (replaced, or a tick run). */
  updatedAt: number;
  /**
   * Incremented by every write of the schedule: the token a
   * {@linkcode ScheduleFire} presents.
   */
  version: number;
}

/**
 * Running one tick of a schedule: advance it from the version read, and
 * insert the tick's task, in one transaction.
 */
export interface ScheduleFire {
  /** The schedule's name. */
  name: string;
  /**
   * The version read: the fire applies only if the schedule is unchanged
   * since (compare-and-set), and only if `tick` is after its `lastTick`.
   */
  version: number;
  /** The tick run, recorded as `lastTick`. */
  tick: number;
  /** The tick after it, recorded as `nextTick`. */
  nextTick: number | null;
  /** The tick's task, inserted unclaimed (usually with a key per tick). */
  task: NewTask;
  /** The time the write is applied at (epoch ms). */
  now: number;
}

/** What {@linkcode TaskStore.fireSchedule} did. */
export interface ScheduleFireOutcome {
  /**
   * `false` when the schedule changed since it was read (another process
   * ran the tick, or it was replaced or removed): nothing was written.
   */
  fired: boolean;
  /** The insert's outcome when fired, else `null`. */
  inserted: InsertOutcome | null;
}

/**
 * Where task state lives. Implementations: SQLite (FFI or built-in driver),
 * PostgreSQL and memory.
 *
 * @experimental
 */
export interface TaskStore {
  /** A short name such as `"sqlite-ffi"`, `"sqlite-builtin"` or `"memory"`. */
  readonly kind: string;
  /** Whether accepted tasks survive a restart. */
  readonly durable: boolean;
  /**
   * Throws a `TypeError` when `value` cannot be stored as a payload or
   * result (not JSON-serializable, or refused by the backend), so that a
   * bad task is refused at submit instead of failing a whole batch.
   */
  checkValue(value: unknown, what: "payload" | "result"): void;
  /** Applies one batch in one transaction. */
  commit(batch: CommitBatch): Promise<CommitResult>;
  /**
   * Inserts every task of `batches` in one transaction: all of them, or,
   * when the source throws or a task cannot be stored, none. Reads one
   * batch at a time, so memory holds a batch and its outcomes, not the
   * whole source; claimers see none of the tasks until the end. The tasks
   * are inserted unclaimed (`queued`); idempotency keys behave as in one
   * {@linkcode TaskStore.commit} whose inserts are all the batches in
   * order. Other calls on the store wait until it ends. Stores that leave
   * it out are given the whole source as one commit.
   *
   * @throws {RangeError} When a task asks to be inserted claimed.
   */
  insertAll?(
    batches: AsyncIterable<readonly NewTask[]>,
    options: InsertAllOptions,
  ): Promise<void>;
  /** Returns running tasks whose lease ended before `now` to `queued`. */
  recoverExpired(now: number): Promise<number>;
  /** One task by id. */
  get(id: string): Promise<TaskRecord | undefined>;
  /** One task by idempotency key. */
  getByKey(key: string): Promise<TaskRecord | undefined>;
  /** Tasks, oldest first. */
  list(options?: ListOptions): Promise<TaskRecord[]>;
  /**
   * Moves dead tasks back to queued with fresh attempts, clearing their
   * progress and checkpoint; returns how many.
   */
  requeue(ids: string[] | "all", now: number): Promise<number>;
  /**
   * Counts, totals, the oldest due task's age, the due failed tasks and
   * the started count, for status displays. Reads no more rows than there
   * are running and due tasks.
   */
  status(now: number): Promise<StoreStatus>;
  /**
   * Deletes at most `limit` finished tasks (succeeded or dead, oldest
   * `updatedAt` first within each queue) that `policy` no longer keeps at
   * `now`,
   * in one short transaction, through indexes. Call it repeatedly to prune
   * in steps; the calls converge. A pruned task is gone: `get` returns
   * `undefined` and its idempotency key is free.
   */
  prune(
    policy: RetentionPolicy,
    now: number,
    limit: number,
  ): Promise<PruneResult>;
  /**
   * Counts what pruning to completion at `now` would delete, changing
   * nothing (works on a read-only store). `skipped` is always `false`.
   */
  prunable(policy: RetentionPolicy, now: number): Promise<PruneResult>;
  /**
   * Cancels tasks by id at `now`, each in the same transaction: a queued,
   * failed or running task becomes `dead` with `lastError`
   * "Cannot run task: cancelled", error class `permanent`, and a new version (so
   * a running attempt's renewals and settle are refused). Finished and
   * unknown ids are reported, not changed.
   */
  cancel(ids: readonly string[], now: number): Promise<CancelOutcome[]>;
  /**
   * Deletes tasks by id, unless running; their idempotency keys are free
   * again.
   */
  remove(ids: readonly string[]): Promise<RemoveOutcome[]>;
  /**
   * Pauses (`paused: true`) or resumes a queue: claims skip a paused
   * queue, and its claimed inserts are inserted `queued`. Tasks already
   * claimed are not affected.
   */
  setPaused(queue: string, paused: boolean, now: number): Promise<void>;
  /** The queues with a stored state (paused or resumed once), by name. */
  queueStates(): Promise<QueueState[]>;
  /**
   * Subscribes to "new work may be due" wake-ups from other processes
   * (PostgreSQL `LISTEN/NOTIFY`). Stores that cannot tell leave it out and
   * are polled. Returns the unsubscribe function.
   */
  onNotify?(listener: () => void): () => void;
  /**
   * Stores a schedule, replacing the one of the same name (whose
   * `createdAt` and `lastTick` are kept). Stores that leave the schedule
   * methods out cannot hold schedules.
   */
  putSchedule?(schedule: NewSchedule, now: number): Promise<ScheduleRecord>;
  /** Deletes a schedule; `false` when there was none of that name. */
  deleteSchedule?(name: string): Promise<boolean>;
  /** Every schedule, by name. */
  listSchedules?(): Promise<ScheduleRecord[]>;
  /**
   * Runs one tick: when the schedule still has `fire.version` and its
   * `lastTick` is before `fire.tick`, sets `lastTick` and `nextTick`,
   * bumps the version and inserts `fire.task`, in one transaction; else
   * writes nothing. Of any number of processes firing the same tick, one
   * inserts it, and a tick already recorded never inserts again (even
   * once its task is pruned and its key free).
   */
  fireSchedule?(fire: ScheduleFire): Promise<ScheduleFireOutcome>;
  /** Closes the store. Idempotent. */
  close(): Promise<void>;
}
