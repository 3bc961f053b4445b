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

/** Batches inserts, claims and settles into one transaction per tick. */
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

  /**
   * @param store Where the batches go.
   * @param leaseMs Lease given to every claim.
   * @param onClaimed Called with the tasks each commit claimed.
   * @param now Epoch-ms clock.
   */
  constructor(
    store: TaskStore,
    leaseMs: number,
    onClaimed: ClaimListener,
    now: () => number = Date.now,
  ) {
    this.#store = store;
    this.#leaseMs = leaseMs;
    this.#onClaimed = onClaimed;
    this.#now = now;
  }

  /** Transactions committed so far. */
  get commits(): number {
    return this.#commits;
  }

  /** Whether anything is waiting to be committed or being committed. */
  get busy(): boolean {
    return this.#running !== null || this.#scheduled;
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

  /** Resolves once everything requested so far has been committed. */
  async flushed(): Promise<void> {
    while (this.#running !== null || this.#scheduled) {
      if (this.#running !== null) await this.#running;
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#running !== null) return;
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
      // The transaction rolled back: nothing in the batch happened.
      for (const callback of insertCallbacks) callback.reject(error);
      for (const callback of settleCallbacks) callback.reject(error);
      for (const callback of renewCallbacks) callback.reject(error);
      this.#onClaimed([], batch.claimDue, error);
      return;
    }
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
