/**
 * Submissions through a caller's PostgreSQL transaction: the task is
 * inserted by the caller's transaction, so it exists if and only if that
 * transaction commits. Its handle cannot be answered from the store until
 * then (before, the row is invisible; after a rollback, it never existed),
 * so each tracked handle first waits here for its transaction to end, then
 * is handed to intake like the handle of any stored task.
 *
 * Transitions it owns: a tracked submission → waiting on its transaction
 * → handed to intake (`follow`) once the transaction committed, or
 * answered with a rollback error once it aborted.
 *
 * @module
 */
import type {
  PostgresTaskStore,
  PostgresTransaction,
} from "../store/postgres/postgres_store.ts";
import type { NewTask, TaskRecord } from "../store/store.ts";
import { detachedHandle } from "./intake.ts";
import {
  type Deferred,
  deferred,
  QueueClosedError,
  type TaskHandle,
  type TaskInput,
} from "./types.ts";

/** Options for `TaskQueue.submitWith`. */
export interface SubmitWithOptions {
  /**
   * The caller will not wait for the result: the handle's `result`
   * rejects at once, saying so, and the queue keeps nothing for the task
   * (read its outcome with `getTask(id)`). Otherwise the queue asks the
   * store, at each poll, whether the transaction has ended yet.
   *
   * @default {false}
   */
  detached?: boolean;
}

/** What transactional submissions need of intake. */
export interface FollowSink {
  /** Checks a task as `submit` does, to be inserted unclaimed. */
  prepareUnclaimed(task: TaskInput): NewTask;
  /** The result of a stored task, whoever runs it. */
  follow(record: TaskRecord): Promise<unknown>;
}

/** A handle waiting for the transaction that inserted its task to end. */
interface Waiting {
  id: string;
  transactionId: string;
  handle: Deferred;
}

/** Takes submissions in through callers' transactions. Owned by the queue. */
export class TransactionalIntake {
  #store: PostgresTaskStore;
  #intake: FollowSink;
  #now: () => number;
  /** One record per tracked handle whose transaction has not ended. */
  #waiting = new Set<Waiting>();
  #sweep: Promise<void> | null = null;
  #closed = false;

  /**
   * @param store The queue's PostgreSQL store.
   * @param intake Checks tasks and follows committed ones.
   * @param now Epoch-ms clock.
   */
  constructor(
    store: PostgresTaskStore,
    intake: FollowSink,
    now: () => number,
  ) {
    this.#store = store;
    this.#intake = intake;
    this.#now = now;
  }

  /** Handles waiting for their transaction to end. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * Inserts `task` through `tx` and returns its handle. A `detached`
   * handle's result is not tracked; any other waits for the transaction
   * to end, then for the task.
   */
  async submit(
    tx: PostgresTransaction,
    task: TaskInput,
    detached: boolean,
  ): Promise<TaskHandle> {
    const prepared = this.#intake.prepareUnclaimed(task);
    const { inserted, transactionId } = await this.#store.insertWith(
      tx,
      [prepared],
      this.#now(),
    );
    const { record, inserted: isNew } = inserted[0]!;
    const { id, idempotencyKey } = record;
    if (detached) return detachedHandle(id, idempotencyKey, !isNew);
    const handle = deferred();
    if (this.#closed) {
      handle.reject(closedError(id));
    } else {
      // Even a duplicate waits: the task holding the key may be one this
      // same transaction inserted, visible to nobody else yet.
      this.#waiting.add({ id, transactionId, handle });
    }
    return {
      id,
      idempotencyKey,
      deduplicated: !isNew,
      result: handle.promise as Promise<never>,
    };
  }

  /**
   * Looks, in one read, whether the transactions of the waiting handles
   * have ended, and moves on those that have: a committed task is followed
   * like any stored task; a task not stored after its transaction aborted
   * was rolled back. One sweep at a time; a failed read is retried by the
   * next sweep.
   */
  check(): Promise<void> {
    if (this.#sweep !== null || this.#waiting.size === 0 || this.#closed) {
      return this.#sweep ?? Promise.resolve();
    }
    this.#sweep = this.#check().catch(() => {}).finally(() => {
      this.#sweep = null;
    });
    return this.#sweep;
  }

  async #check(): Promise<void> {
    const waiting = [...this.#waiting];
    const ids = [...new Set(waiting.map((w) => w.transactionId))];
    const states = await this.#store.transactionStates(ids);
    const ended = new Map(ids.map((id, i) => [id, states[i]!]));
    for (const wait of waiting) {
      const state = ended.get(wait.transactionId)!;
      if (state === "in progress") continue;
      const record = await this.#store.get(wait.id);
      // Close answered it meanwhile.
      if (!this.#waiting.delete(wait)) continue;
      if (record !== undefined) {
        this.#intake.follow(record).then(
          wait.handle.resolve,
          wait.handle.reject,
        );
      } else {
        wait.handle.reject(
          new Error(
            state === "aborted"
              ? `Cannot finish task ${wait.id}: the transaction that submitted it was rolled back`
              : `Cannot finish task ${wait.id}: it is no longer stored`,
          ),
        );
      }
    }
  }

  /**
   * Answers every handle still waiting for its transaction with a
   * {@linkcode QueueClosedError}, and waits for a sweep in flight.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wait of this.#waiting) wait.handle.reject(closedError(wait.id));
    this.#waiting.clear();
    await this.#sweep;
  }
}

function closedError(id: string): QueueClosedError {
  return new QueueClosedError(
    `Cannot finish task ${id}: queue closed first`,
  );
}
