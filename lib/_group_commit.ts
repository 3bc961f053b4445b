/**
 * Group commit: every state change requested during one turn of the event
 * loop is applied by ONE `TaskStore.commit` call (one transaction).
 *
 * Ownership: the queue owns the committer; the committer owns the only
 * write path to the store on the hot path. At most one commit runs at a
 * time; work requested while it runs goes into the next batch, so batches
 * grow under load and shrink to one item when idle.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type {
  CommitBatch,
  InsertOutcome,
  NewTask,
  Renewal,
  Settlement,
  TaskRecord,
  TaskStore,
} from "./store/store.ts";

/** Receives the outcome of one requested change. */
interface Callback<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** What the committer reports about claims; claims have no per-item caller. */
export type ClaimListener = (
  claimed: TaskRecord[],
  requested: number,
  error?: unknown,
) => void;

/** Reports a failed commit whose settles and renewals will be retried. */
export type RetryListener = (
  error: unknown,
  failures: number,
  delayMs: number,
) => void;

/** Consecutive failed commits after which pending settles are given up. */
const MAX_FAILURES = 12;
/** Backoff after the first failure, doubled each time up to the cap. */
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 5000;

/**
 * Batches inserts, claims, renewals and settles into one transaction per
 * tick. When a commit fails (the database is unreachable, a connection was
 * dropped), its inserts are rejected (those tasks were not accepted), and
 * its settles and renewals are kept and retried with exponential backoff
 * and jitter, so a brief outage does not make finished tasks run again.
 */
export class GroupCommitter {
  #store: TaskStore;
  #leaseMs: number;
  #onClaimed: ClaimListener;
  #now: () => number;

  #inserts: NewTask[] = [];
  #insertCallbacks: Callback<InsertOutcome>[] = [];
  #settles: Settlement[] = [];
  #settleCallbacks: Callback<boolean>[] = [];
  #renewals: Renewal[] = [];
  #renewCallbacks: Callback<boolean>[] = [];
  #claimDue = 0;

  #scheduled = false;
  #running: Promise<void> | null = null;
  #commits = 0;
  #failures = 0;
  #backoff: ReturnType<typeof setTimeout> | undefined;
  #onRetry: RetryListener | undefined;

  /**
   * @param store Where the batches go.
   * @param leaseMs Lease given to every claim.
   * @param onClaimed Called with the tasks each commit claimed.
   * @param onRetry Called when a failed commit's settles will be retried.
   * @param now Epoch-ms clock.
   */
  constructor(
    store: TaskStore,
    leaseMs: number,
    onClaimed: ClaimListener,
    onRetry?: RetryListener,
    now: () => number = Date.now,
  ) {
    this.#onRetry = onRetry;
    this.#store = store;
    this.#leaseMs = leaseMs;
    this.#onClaimed = onClaimed;
    this.#now = now;
  }

  /** Transactions committed so far. */
  get commits(): number {
    return this.#commits;
  }

  /** Inserts `task` in the next batch; resolves once it is committed. */
  insert(task: NewTask): Promise<InsertOutcome> {
    return new Promise((resolve, reject) => {
      this.#inserts.push(task);
      this.#insertCallbacks.push({ resolve, reject });
      this.#schedule();
    });
  }

  /** Settles an attempt in the next batch; resolves `false` when its token was stale. */
  settle(settlement: Settlement): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#settles.push(settlement);
      this.#settleCallbacks.push({ resolve, reject });
      this.#schedule();
    });
  }

  /** Extends a lease in the next batch; resolves `false` when its token was stale. */
  renew(renewal: Renewal): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#renewals.push(renewal);
      this.#renewCallbacks.push({ resolve, reject });
      this.#schedule();
    });
  }

  /** Asks the next batch to claim up to `count` due tasks. */
  claimDue(count: number): void {
    this.#claimDue += count;
    this.#schedule();
  }

  /**
   * Resolves once everything requested so far has been committed, or, when
   * `signal` aborts first, rejects what is still pending with its reason.
   */
  async flushed(signal?: AbortSignal): Promise<void> {
    while (
      this.#running !== null || this.#scheduled || this.#backoff !== undefined
    ) {
      if (signal?.aborted) {
        this.#abandon(signal.reason);
        return;
      }
      if (this.#running !== null) await this.#running;
      else await new Promise<void>((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Rejects every pending request and stops retrying. */
  #abandon(reason: unknown): void {
    clearTimeout(this.#backoff);
    this.#backoff = undefined;
    for (const callback of this.#insertCallbacks.splice(0)) {
      callback.reject(reason);
    }
    for (const callback of this.#settleCallbacks.splice(0)) {
      callback.reject(reason);
    }
    for (const callback of this.#renewCallbacks.splice(0)) {
      callback.reject(reason);
    }
    this.#inserts = [];
    this.#settles = [];
    this.#renewals = [];
    this.#claimDue = 0;
  }

  #schedule(): void {
    if (
      this.#scheduled || this.#running !== null || this.#backoff !== undefined
    ) return;
    this.#scheduled = true;
    // setImmediate, not setTimeout(0): chained zero timeouts are clamped to
    // milliseconds, which would cap the commit rate.
    setImmediate(() => {
      this.#scheduled = false;
      this.#running = this.#commit().finally(() => {
        this.#running = null;
        if (this.#hasWork()) this.#schedule();
      });
    });
  }

  #hasWork(): boolean {
    return this.#inserts.length > 0 || this.#settles.length > 0 ||
      this.#renewals.length > 0 || this.#claimDue > 0;
  }

  async #commit(): Promise<void> {
    if (!this.#hasWork()) return;
    const batch: CommitBatch = {
      settles: this.#settles,
      renewals: this.#renewals,
      inserts: this.#inserts,
      claimIds: [],
      claimDue: this.#claimDue,
      leaseMs: this.#leaseMs,
      now: this.#now(),
    };
    const insertCallbacks = this.#insertCallbacks;
    const settleCallbacks = this.#settleCallbacks;
    const renewCallbacks = this.#renewCallbacks;
    this.#renewals = [];
    this.#renewCallbacks = [];
    this.#settles = [];
    this.#settleCallbacks = [];
    this.#inserts = [];
    this.#insertCallbacks = [];
    this.#claimDue = 0;
    let result;
    try {
      result = await this.#store.commit(batch);
      this.#commits++;
    } catch (error) {
      // The transaction rolled back: nothing in the batch happened. The
      // tasks of failed inserts were not accepted; their callers are told.
      for (const callback of insertCallbacks) callback.reject(error);
      this.#onClaimed([], batch.claimDue, error);
      this.#failures++;
      if (this.#failures > MAX_FAILURES) {
        for (const callback of settleCallbacks) callback.reject(error);
        for (const callback of renewCallbacks) callback.reject(error);
        this.#failures = 0;
        return;
      }
      // Settles and renewals go back to the front of the queue and are
      // retried after an exponential backoff with jitter.
      this.#settles = [...batch.settles, ...this.#settles];
      this.#settleCallbacks = [...settleCallbacks, ...this.#settleCallbacks];
      this.#renewals = [...(batch.renewals ?? []), ...this.#renewals];
      this.#renewCallbacks = [...renewCallbacks, ...this.#renewCallbacks];
      const cap = Math.min(
        BACKOFF_CAP_MS,
        BACKOFF_BASE_MS * 2 ** (this.#failures - 1),
      );
      const delayMs = Math.round(cap / 2 + Math.random() * cap / 2);
      this.#onRetry?.(error, this.#failures, delayMs);
      this.#backoff = setTimeout(() => {
        this.#backoff = undefined;
        this.#schedule();
      }, delayMs);
      return;
    }
    this.#failures = 0;
    for (let i = 0; i < insertCallbacks.length; i++) {
      insertCallbacks[i]!.resolve(result.inserted[i]!);
    }
    for (let i = 0; i < settleCallbacks.length; i++) {
      settleCallbacks[i]!.resolve(result.settled[i]!);
    }
    for (let i = 0; i < renewCallbacks.length; i++) {
      renewCallbacks[i]!.resolve(result.renewed[i]!);
    }
    if (batch.claimDue > 0) this.#onClaimed(result.claimed, batch.claimDue);
  }
}
