/**
 * Group commit: every store write the queue asks for during one turn of
 * the event loop (inserts, claims, renewals, starts, settles, releases,
 * recovery) is applied by ONE `TaskStore.commit` call, one transaction,
 * and answered by one call per kind to the {@linkcode CommitListener}, not
 * by a promise per task.
 *
 * Ownership: the queue owns the committer; the committer owns the only
 * write path to the store on the hot path. At most one commit runs at a
 * time; work asked for while it runs goes into the next batch, so batches
 * grow under load and shrink to one item when idle.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type {
  CommitBatch,
  CommitResult,
  InsertOutcome,
  NewTask,
  QueueClaim,
  Release,
  Settlement,
  StateWrite,
  TaskRecord,
  TaskStore,
} from "../store/store.ts";
import type { TaskEntry } from "./types.ts";

/** Receives what each commit did, one call per kind of work. */
export interface CommitListener {
  /** Inserts committed: one outcome per entry, in order. */
  inserted(entries: TaskEntry[], outcomes: InsertOutcome[]): void;
  /** Inserts refused with the whole batch: their tasks were not accepted. */
  insertFailed(entries: TaskEntry[], error: unknown): void;
  /** Claims of due work; `error` when the batch failed. */
  claimed(records: TaskRecord[], requested: number, error?: unknown): void;
  /** Entries whose lease to renew now (asked only for heartbeat batches). */
  renewals(now: number): TaskEntry[];
  /** Renewals applied (`true`) or stale; leases now end at `leaseUntil`. */
  renewed(entries: TaskEntry[], applied: boolean[], leaseUntil: number): void;
  /** Starts applied (`true`) or stale. */
  started(entries: TaskEntry[], applied: boolean[]): void;
  /** Progress values written (`true`) or stale, one per entry. */
  progressed(entries: TaskEntry[], values: unknown[], applied: boolean[]): void;
  /**
   * Checkpoints written (`true`) or stale, in the order asked for; `error`
   * instead when they were given up (the store stayed down, or the queue
   * closed). Each `done` must be answered.
   */
  checkpointed(
    entries: TaskEntry[],
    done: CheckpointDone[],
    applied: boolean[] | { error: unknown },
  ): void;
  /** Settles applied (`true`) or stale. */
  settled(
    entries: TaskEntry[],
    settles: Settlement[],
    applied: boolean[],
  ): void;
  /** Releases applied (`true`) or stale. */
  released(entries: TaskEntry[], applied: boolean[]): void;
  /** Expired leases recovered by a heartbeat batch. */
  recovered(count: number): void;
  /** Settles and releases given up after repeated failures, or at close. */
  abandoned(entries: TaskEntry[], error: unknown): void;
  /** A commit failed; its settles, releases and starts are retried later. */
  retrying(error: unknown, failures: number, delayMs: number): void;
}

/** Answers a handler's checkpoint: `null` once written, else why not. */
export type CheckpointDone = (error: string | null) => void;

/** Options of a {@linkcode GroupCommitter}. */
export interface GroupCommitterOptions {
  /** Lease given to claims and renewals, ms. */
  leaseMs: number;
  /** Epoch-ms clock for the batches. */
  now: () => number;
  /**
   * The queues a claim takes from (`CommitBatch.claimQueues`), asked when
   * a batch with a claim is built.
   */
  claimQueues?: () => readonly QueueClaim[];
  /** The task types claims take (`CommitBatch.claimTypes`). */
  claimTypes?: readonly string[];
}

/** Consecutive failed commits after which pending settles are given up. */
const MAX_FAILURES = 12;
/** Backoff after the first failure, doubled each time up to the cap. */
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 5000;

/**
 * The work asked for and not yet sent: what the next batch will carry.
 * Each write sits beside the entry it is for, at the same index.
 */
class Pending {
  inserts: TaskEntry[] = [];
  newTasks: NewTask[] = [];
  settleEntries: TaskEntry[] = [];
  settles: Settlement[] = [];
  releaseEntries: TaskEntry[] = [];
  releases: Release[] = [];
  /** Starts to charge; a settle or release may still take one back. */
  starts: Set<TaskEntry> = new Set();
  /** The last progress value of each entry; null while there is none. */
  progress: Map<TaskEntry, unknown> | null = null;
  /** Checkpoints in the order asked for, each with its answer. */
  checkpointEntries: TaskEntry[] = [];
  checkpoints: unknown[] = [];
  checkpointDone: CheckpointDone[] = [];
  claimDue = 0;
  /** Renew leases; with `recover`, also recover expired ones. */
  heartbeat: "none" | "renew" | "recover" = "none";

  get empty(): boolean {
    return this.inserts.length === 0 && this.settles.length === 0 &&
      this.releases.length === 0 && this.starts.size === 0 &&
      this.claimDue === 0 && this.heartbeat === "none" &&
      this.progress === null && this.checkpoints.length === 0;
  }

  /**
   * Puts a failed batch's starts, settles, releases and heartbeat back in
   * front of what was asked for since, so they are retried in order.
   */
  requeue(failed: Pending): void {
    this.settleEntries = [...failed.settleEntries, ...this.settleEntries];
    this.settles = [...failed.settles, ...this.settles];
    this.releaseEntries = [...failed.releaseEntries, ...this.releaseEntries];
    this.releases = [...failed.releases, ...this.releases];
    this.starts = new Set([...failed.starts, ...this.starts]);
    this.checkpointEntries = [
      ...failed.checkpointEntries,
      ...this.checkpointEntries,
    ];
    this.checkpoints = [...failed.checkpoints, ...this.checkpoints];
    this.checkpointDone = [...failed.checkpointDone, ...this.checkpointDone];
    // Progress asked for since is newer; the failed batch's fills the gaps.
    if (failed.progress !== null) {
      const newer = this.progress;
      this.progress = failed.progress;
      for (const [entry, value] of newer ?? []) {
        this.progress.set(entry, value);
      }
    }
    if (failed.heartbeat === "recover") this.heartbeat = "recover";
    else if (failed.heartbeat === "renew" && this.heartbeat === "none") {
      this.heartbeat = "renew";
    }
  }
}

/**
 * Batches the queue's store writes into one transaction per turn. When a
 * commit fails (the database is unreachable, a connection dropped), its
 * inserts are refused (those tasks were not accepted), and its starts,
 * settles and releases are kept and retried with exponential backoff and
 * jitter, so a brief outage does not make finished tasks run again.
 */
export class GroupCommitter {
  #store: TaskStore;
  #listener: CommitListener;
  #options: GroupCommitterOptions;
  #pending = new Pending();
  #scheduled = false;
  #running: Promise<void> | null = null;
  #commits = 0;
  #failures = 0;
  #backoff: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param store Where the batches go.
   * @param listener Hears what each commit did.
   * @param options Lease and clock.
   */
  constructor(
    store: TaskStore,
    listener: CommitListener,
    options: GroupCommitterOptions,
  ) {
    this.#store = store;
    this.#listener = listener;
    this.#options = options;
  }

  /** Transactions committed so far. */
  get commits(): number {
    return this.#commits;
  }

  /** Inserts `task` for `entry` in the next batch. */
  insert(entry: TaskEntry, task: NewTask): void {
    this.#pending.inserts.push(entry);
    this.#pending.newTasks.push(task);
    this.#schedule();
  }

  /** Asks the next batch to claim up to `count` due tasks. */
  claim(count: number): void {
    this.#pending.claimDue += count;
    this.#schedule();
  }

  /**
   * Charges the attempt `entry` started in the next batch, unless its
   * settle or release takes it back first.
   */
  start(entry: TaskEntry): void {
    this.#pending.starts.add(entry);
    this.#schedule();
  }

  /**
   * Takes back a start not yet sent to the store, so the caller charges it
   * in its settle instead.
   *
   * @returns `true` when the start was still waiting here; `false` when it
   * was already sent (it is applied before anything asked for later).
   */
  takeStart(entry: TaskEntry): boolean {
    return this.#pending.starts.delete(entry);
  }

  /**
   * Records `entry`'s progress in the next batch; a later value before
   * that batch replaces it.
   */
  progress(entry: TaskEntry, value: unknown): void {
    (this.#pending.progress ??= new Map()).set(entry, value);
    this.#schedule();
  }

  /**
   * Records `entry`'s checkpoint in the next batch, before any settle
   * asked for after it; `done` is answered once it is committed (or
   * refused, or given up).
   */
  checkpoint(entry: TaskEntry, value: unknown, done: CheckpointDone): void {
    const pending = this.#pending;
    pending.checkpointEntries.push(entry);
    pending.checkpoints.push(value);
    pending.checkpointDone.push(done);
    this.#schedule();
  }

  /** Settles `entry`'s attempt in the next batch. */
  settle(entry: TaskEntry, settlement: Settlement): void {
    this.#pending.settleEntries.push(entry);
    this.#pending.settles.push(settlement);
    this.#schedule();
  }

  /** Hands `entry`'s claim back in the next batch. */
  release(entry: TaskEntry, release: Release): void {
    this.#pending.releaseEntries.push(entry);
    this.#pending.releases.push(release);
    this.#schedule();
  }

  /** Makes the next batch renew the leases that need it, and recover expired ones. */
  heartbeat(recover: boolean): void {
    const pending = this.#pending;
    if (recover) pending.heartbeat = "recover";
    else if (pending.heartbeat === "none") pending.heartbeat = "renew";
    this.#schedule();
  }

  /**
   * Resolves once everything asked for so far has been committed, or, when
   * `signal` aborts first, gives up what is still pending (its entries are
   * reported abandoned).
   */
  async flushed(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const idle = this.#running === null && !this.#scheduled &&
        this.#backoff === undefined && this.#pending.empty;
      if (idle) return;
      if (signal?.aborted) {
        this.#abandon(signal.reason);
        return;
      }
      if (this.#running !== null) await this.#running;
      else await new Promise<void>((resolve) => setTimeout(resolve, 5));
    }
  }

  #abandon(reason: unknown): void {
    clearTimeout(this.#backoff);
    this.#backoff = undefined;
    const dropped = this.#pending;
    this.#pending = new Pending();
    const entries = [...dropped.settleEntries, ...dropped.releaseEntries];
    if (dropped.inserts.length > 0) {
      this.#listener.insertFailed(dropped.inserts, reason);
    }
    if (dropped.checkpoints.length > 0) {
      this.#listener.checkpointed(
        dropped.checkpointEntries,
        dropped.checkpointDone,
        { error: reason },
      );
    }
    if (entries.length > 0) this.#listener.abandoned(entries, reason);
  }

  #schedule(): void {
    if (
      this.#scheduled || this.#running !== null || this.#backoff !== undefined
    ) return;
    if (this.#pending.empty) return;
    this.#scheduled = true;
    // setImmediate, not setTimeout(0): chained zero timeouts are clamped to
    // milliseconds, which would cap the commit rate.
    setImmediate(() => {
      this.#scheduled = false;
      this.#running = this.#commit().finally(() => {
        this.#running = null;
        this.#schedule();
      });
    });
  }

  async #commit(): Promise<void> {
    const taken = this.#pending;
    if (taken.empty) return;
    this.#pending = new Pending();
    const now = this.#options.now();
    const renewEntries = taken.heartbeat === "none"
      ? []
      : this.#listener.renewals(now);
    const startEntries = [...taken.starts];
    const progressEntries = taken.progress === null
      ? []
      : [...taken.progress.keys()];
    const progressValues = taken.progress === null
      ? []
      : [...taken.progress.values()];
    const batch: CommitBatch = {
      renewals: renewEntries.map((e) => ({ id: e.id, version: e.version })),
      starts: startEntries.map((e) => ({ id: e.id, version: e.version })),
      settles: taken.settles,
      releases: taken.releases,
      recover: taken.heartbeat === "recover",
      inserts: taken.newTasks,
      claimDue: taken.claimDue,
      ...(taken.claimDue > 0 && this.#options.claimQueues !== undefined &&
        { claimQueues: this.#options.claimQueues() }),
      ...(taken.claimDue > 0 && this.#options.claimTypes !== undefined &&
        { claimTypes: this.#options.claimTypes }),
      leaseMs: this.#options.leaseMs,
      now,
    };
    // Present only when asked for, so the batches of queues whose handlers
    // report nothing stay as they were.
    if (progressEntries.length > 0) {
      batch.progress = progressEntries.map((e, i): StateWrite => ({
        id: e.id,
        version: e.version,
        value: progressValues[i],
      }));
    }
    if (taken.checkpoints.length > 0) {
      batch.checkpoints = taken.checkpointEntries.map((e, i): StateWrite => ({
        id: e.id,
        version: e.version,
        value: taken.checkpoints[i],
      }));
    }
    let result: CommitResult;
    try {
      result = await this.#store.commit(batch);
      this.#commits++;
    } catch (error) {
      this.#failed(error, taken);
      return;
    }
    this.#failures = 0;
    const l = this.#listener;
    if (renewEntries.length > 0) {
      l.renewed(renewEntries, result.renewed, now + this.#options.leaseMs);
    }
    if (startEntries.length > 0) l.started(startEntries, result.started);
    if (progressEntries.length > 0) {
      l.progressed(progressEntries, progressValues, result.progressed);
    }
    if (taken.checkpoints.length > 0) {
      l.checkpointed(
        taken.checkpointEntries,
        taken.checkpointDone,
        result.checkpointed,
      );
    }
    if (taken.settles.length > 0) {
      l.settled(taken.settleEntries, taken.settles, result.settled);
    }
    if (taken.releases.length > 0) {
      l.released(taken.releaseEntries, result.released);
    }
    if (result.recovered > 0) l.recovered(result.recovered);
    if (taken.inserts.length > 0) l.inserted(taken.inserts, result.inserted);
    if (taken.claimDue > 0) l.claimed(result.claimed, taken.claimDue);
  }

  /**
   * The transaction rolled back: nothing in the batch happened. Inserts are
   * refused; starts, settles and releases go back to the front of the line
   * and are retried after an exponential backoff with jitter.
   */
  #failed(error: unknown, taken: Pending): void {
    const l = this.#listener;
    if (taken.inserts.length > 0) l.insertFailed(taken.inserts, error);
    if (taken.claimDue > 0) l.claimed([], taken.claimDue, error);
    this.#failures++;
    if (this.#failures > MAX_FAILURES) {
      this.#failures = 0;
      const given = [...taken.settleEntries, ...taken.releaseEntries];
      if (given.length > 0) l.abandoned(given, error);
      if (taken.checkpoints.length > 0) {
        l.checkpointed(taken.checkpointEntries, taken.checkpointDone, {
          error,
        });
      }
      return;
    }
    this.#pending.requeue(taken);
    const cap = Math.min(
      BACKOFF_CAP_MS,
      BACKOFF_BASE_MS * 2 ** (this.#failures - 1),
    );
    const delayMs = Math.round(cap / 2 + Math.random() * cap / 2);
    l.retrying(error, this.#failures, delayMs);
    this.#backoff = setTimeout(() => {
      this.#backoff = undefined;
      this.#schedule();
    }, delayMs);
  }
}
