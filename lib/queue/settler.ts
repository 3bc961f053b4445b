/**
 * The settler: turns each attempt's result into a store write (success,
 * a retry at `run_at`, or the dead-letter queue; a release for work handed
 * back uncharged), and answers handles once the write is committed. It
 * also answers the handles of tasks that run elsewhere, by polling the
 * store.
 *
 * Transitions it owns: dispatched/running/queued → settling, settling →
 * remote (a retry or release committed, or the settle was stale), remote
 * and settling → leaving the table (the handle has its answer).
 *
 * @module
 */
import type { PoolResult } from "../pool/worker_pool.ts";
import type { RetryPolicy } from "../retry.ts";
import type {
  Release,
  Settlement,
  SettleOutcome,
  TaskStore,
} from "../store/store.ts";
import type { TaskEvents } from "./events.ts";
import type { TaskTable } from "./task_table.ts";
import {
  cancelledError,
  type DueSink,
  failureOf,
  type PendingSettle,
  QueueClosedError,
  type ResultSink,
  type TaskEntry,
  TaskFailedError,
} from "./types.ts";
import { deserializeError } from "../errors.ts";

/** What the settler asks of the group commit. */
export interface SettleCommits {
  /** Settles an attempt in the next batch. */
  settle(entry: TaskEntry, settlement: Settlement): void;
  /** Hands a claim back in the next batch. */
  release(entry: TaskEntry, release: Release): void;
  /** Takes back a start not yet sent; `false` when it was sent. */
  takeStart(entry: TaskEntry): boolean;
}

/** Options of the {@linkcode Settler}. */
export interface SettlerOptions {
  /** Epoch-ms clock. */
  now: () => number;
  /** Whether handles of remote tasks are answered by polling the store. */
  poll: boolean;
}

/** Settles attempts and answers handles. Owned by the queue. */
export class Settler implements ResultSink {
  #table: TaskTable;
  #commits: SettleCommits;
  #events: TaskEvents;
  #retry: RetryPolicy;
  #store: TaskStore;
  #options: SettlerOptions;
  #due: DueSink | null = null;
  /** The queue passed its close deadline: stopped handlers are handed back. */
  #cancelling = false;
  #sweeping = false;
  #sweeps = 0;

  /**
   * @param table The task table.
   * @param commits The group commit.
   * @param events Where outcomes are reported.
   * @param retry The retry policy.
   * @param store The store, for polling remote tasks and checking results.
   * @param options Clock and polling.
   */
  constructor(
    table: TaskTable,
    commits: SettleCommits,
    events: TaskEvents,
    retry: RetryPolicy,
    store: TaskStore,
    options: SettlerOptions,
  ) {
    this.#table = table;
    this.#commits = commits;
    this.#events = events;
    this.#retry = retry;
    this.#store = store;
    this.#options = options;
  }

  /** Connects the dispatcher, told when retries come due. */
  connect(due: DueSink): void {
    this.#due = due;
  }

  /** From now on, handlers stopped by the shutdown are handed back, not failed. */
  cancelling(): void {
    this.#cancelling = true;
  }

  /** Settles one attempt's result. */
  onResult(entry: TaskEntry, result: PoolResult): void {
    if (entry.state !== "dispatched" && entry.state !== "running") return;
    if (!result.ok) {
      const name = result.error.name;
      const stopped = name === "TaskCancelledError" ||
        name === "WorkerCrashedError";
      if (this.#cancelling && stopped) {
        this.release(entry, "shutdown");
        return;
      }
      if (!result.started && name === "WorkerCrashedError") {
        // Its worker died before calling the handler: not this task's
        // fault, and not an attempt.
        this.release(entry, "not-started");
        return;
      }
    }
    // Every settle stands for an attempt: it charges it unless the start's
    // own write already did.
    const charge = this.#takeCharge(entry) !== "written";
    const startedAt = result.endedAt - result.runMs;
    const waitMs = Math.max(0, startedAt - entry.acceptedAt);
    const runMs = Math.max(0, result.runMs);
    const now = this.#options.now();
    let pending: PendingSettle;
    let outcome: SettleOutcome;
    if (result.ok) {
      const refusal = this.#unstorable(result.value);
      if (refusal === null) {
        pending = {
          kind: "succeeded",
          value: result.value,
          waitMs,
          runMs,
          workerId: result.workerId,
        };
        outcome = {
          kind: "succeeded",
          result: result.value,
          outputKey: outputKeyOf(result.value),
        };
      } else {
        pending = {
          kind: "dead",
          runAt: 0,
          error: `PermanentError: ${refusal}`,
          errorName: "PermanentError",
          errorClass: "permanent",
          waitMs,
          runMs,
          workerId: result.workerId,
        };
        outcome = {
          kind: "dead",
          error: pending.error,
          errorClass: "permanent",
        };
      }
    } else {
      const error = result.error;
      const verdict = this.#retry.decide(
        error,
        entry.attempt,
        entry.maxAttempts,
      );
      const text = `${error.name}: ${error.message}`;
      const runAt = verdict.action === "retry" ? now + verdict.delayMs : 0;
      pending = {
        kind: verdict.action === "retry" ? "retry" : "dead",
        runAt,
        error: text,
        errorName: error.name,
        errorClass: error.errorClass,
        waitMs,
        runMs,
        workerId: result.workerId,
      };
      outcome = verdict.action === "retry"
        ? { kind: "retry", runAt, error: text, errorClass: error.errorClass }
        : { kind: "dead", error: text, errorClass: error.errorClass };
    }
    this.#table.move(entry, "settling");
    entry.pending = pending;
    const settlement: Settlement = {
      id: entry.id,
      version: entry.version,
      outcome,
      queue: entry.queue,
    };
    if (charge) settlement.charge = true;
    this.#commits.settle(entry, settlement);
  }

  /**
   * Hands a held claim back to the store, due at once. An attempt charged
   * by its start is taken back when the shutdown stopped the handler.
   */
  release(entry: TaskEntry, reason: "shutdown" | "not-started"): void {
    const charge = this.#takeCharge(entry);
    const refund = reason === "shutdown" && charge === "written";
    entry.pending = { kind: "release", reason, refund };
    // A stray claim (one the table has no room for) is released without an entry.
    if (this.#table.get(entry.id) === entry) {
      this.#table.move(entry, "settling");
    }
    const release: Release = {
      id: entry.id,
      version: entry.version,
      queue: entry.queue,
    };
    if (refund) release.refund = true;
    this.#commits.release(entry, release);
  }

  /**
   * Whether the current attempt's start is charged: `"merge"` when its
   * start had not been sent (taken back here), `"written"` when it was
   * sent, `"none"` when none was asked for.
   */
  #takeCharge(entry: TaskEntry): "merge" | "written" | "none" {
    if (entry.charge === "pending") {
      entry.charge = "none";
      return this.#commits.takeStart(entry) ? "merge" : "written";
    }
    const charge = entry.charge;
    entry.charge = "none";
    return charge === "written" ? "written" : "none";
  }

  #unstorable(value: unknown): string | null {
    try {
      this.#store.checkValue(value, "result");
      return null;
    } catch (error) {
      return `Cannot store result: ${(error as Error).message}`;
    }
  }

  /** Settles committed (`true`) or refused as stale. */
  settled(
    entries: TaskEntry[],
    _settles: Settlement[],
    applied: boolean[],
  ): void {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const pending = entry.pending;
      entry.pending = null;
      if (pending === null || pending.kind === "release") continue;
      const base = {
        id: entry.id,
        type: entry.type,
        queue: entry.queue,
        idempotencyKey: entry.idempotencyKey,
        attempt: entry.attempt,
        waitMs: pending.waitMs,
        runMs: pending.runMs,
        workerId: pending.workerId,
      };
      if (!applied[i]) {
        if (entry.cancelled) {
          this.#answer(entry, false, cancelledError(entry.id));
          continue;
        }
        this.#events.emit("stale_settle", {
          id: entry.id,
          type: entry.type,
          queue: entry.queue,
          idempotencyKey: entry.idempotencyKey,
        });
        this.#wait(entry, this.#options.now());
        continue;
      }
      if (pending.kind === "succeeded") {
        this.#events.emit("succeeded", base);
        this.#answer(entry, true, pending.value);
        continue;
      }
      const failure = {
        ...base,
        error: pending.error,
        errorName: pending.errorName,
        errorClass: pending.errorClass,
      };
      if (pending.kind === "retry") {
        this.#events.emit("retry", { ...failure, runAt: pending.runAt });
        entry.attempt++;
        this.#wait(entry, pending.runAt);
        this.#due?.dueAt(pending.runAt);
        continue;
      }
      this.#events.emit("dead", failure);
      const colon = pending.error.indexOf(": ");
      const cause = deserializeError({
        name: pending.errorName,
        message: colon >= 0 ? pending.error.slice(colon + 2) : pending.error,
        errorClass: pending.errorClass,
      });
      this.#answer(
        entry,
        false,
        new TaskFailedError(entry.id, entry.attempt, pending.errorClass, {
          cause,
        }),
      );
    }
  }

  /** Releases committed (`true`) or refused as stale. */
  released(entries: TaskEntry[], applied: boolean[]): void {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const pending = entry.pending;
      entry.pending = null;
      if (pending?.kind !== "release") continue;
      if (applied[i]) {
        this.#events.emit("released", {
          id: entry.id,
          type: entry.type,
          queue: entry.queue,
          idempotencyKey: entry.idempotencyKey,
          reason: pending.reason,
          refunded: pending.refund,
        });
      } else {
        this.#events.emit("stale_settle", {
          id: entry.id,
          type: entry.type,
          queue: entry.queue,
          idempotencyKey: entry.idempotencyKey,
        });
      }
      if (this.#table.get(entry.id) !== entry) continue;
      if (entry.cancelled) {
        this.#answer(entry, false, cancelledError(entry.id));
        continue;
      }
      this.#wait(entry, this.#options.now());
      if (pending.reason === "not-started") this.#due?.wake();
    }
  }

  /** Settles and releases the store never took: their handles wait on the store. */
  abandoned(entries: TaskEntry[], error: unknown): void {
    this.#events.emit("store_error", {
      operation: "settle",
      error: String(error),
    });
    for (const entry of entries) {
      entry.pending = null;
      if (this.#table.get(entry.id) === entry && entry.state === "settling") {
        this.#wait(entry, this.#options.now());
      }
    }
  }

  /**
   * The store has cancelled the task of `entry`: a task waiting here (in
   * the channel, or remote) is answered now; a task whose handler runs is
   * answered once its settle, which the store refuses, comes back, and a
   * task being settled once its settle does.
   *
   * @param entry The entry.
   * @returns Whether its handler is running (or about to): the caller
   *   aborts it.
   */
  cancelled(entry: TaskEntry): boolean {
    if (this.#table.get(entry.id) !== entry) return false;
    entry.cancelled = true;
    switch (entry.state) {
      case "queued":
        // The dispatcher skips an entry that is no longer queued.
        this.#table.move(entry, "remote");
        this.#answer(entry, false, cancelledError(entry.id));
        return false;
      case "remote":
        this.#answer(entry, false, cancelledError(entry.id));
        return false;
      case "dispatched":
      case "running":
        return true;
      default:
        return false;
    }
  }

  /**
   * The task of a remote entry was deleted from the store: its handle
   * rejects now.
   *
   * @param entry The entry.
   */
  gone(entry: TaskEntry): void {
    this.#answer(
      entry,
      false,
      new Error(`Cannot finish task ${entry.id}: it is no longer stored`),
    );
  }

  /**
   * The task waits in the store from now on: its entry stays, as remote,
   * only while someone here waits for its result.
   */
  #wait(entry: TaskEntry, runAt: number): void {
    entry.runAt = runAt;
    entry.charge = "none";
    if (entry.handle === null && !entry.local) this.#table.remove(entry);
    else this.#table.move(entry, "remote");
  }

  /** Answers the handle and removes the entry: the end of its life here. */
  #answer(entry: TaskEntry, ok: boolean, value: unknown): void {
    this.#table.remove(entry);
    if (ok) entry.handle?.resolve(value);
    else entry.handle?.reject(value);
  }

  /**
   * Answers handles of tasks another process runs (or ran), once they are
   * final. One sweep at a time, one read at a time: a producer holding
   * thousands of handles must not flood the store with reads every tick.
   */
  async pollRemote(): Promise<void> {
    if (!this.#options.poll || this.#sweeping) return;
    this.#sweeping = true;
    try {
      const now = this.#options.now();
      // Tasks not yet due are read one sweep in ten: they can only have
      // finished by being cancelled (or removed) elsewhere.
      const all = ++this.#sweeps % 10 === 0;
      for (const entry of this.#table.entries(["remote"])) {
        if (entry.runAt > now && !all) continue;
        const record = await this.#store.get(entry.id).catch(() => null);
        if (this.#table.get(entry.id) !== entry || entry.state !== "remote") {
          continue;
        }
        if (record === undefined) {
          this.#answer(
            entry,
            false,
            new Error(`Cannot finish task ${entry.id}: it is no longer stored`),
          );
        } else if (record?.status === "succeeded") {
          this.#answer(entry, true, record.result);
        } else if (record?.status === "dead") {
          this.#answer(entry, false, failureOf(record));
        }
      }
    } finally {
      this.#sweeping = false;
    }
  }

  /**
   * Answers every handle still waiting with a {@linkcode QueueClosedError}
   * and empties the table: the queue is closed.
   *
   * @returns The ids of local tasks that had not finished.
   */
  closeAll(): string[] {
    const unfinished: string[] = [];
    for (const entry of this.#table.entries()) {
      if (entry.local) unfinished.push(entry.id);
      this.#table.remove(entry);
      entry.handle?.reject(
        new QueueClosedError(
          `Cannot finish task ${entry.id}: queue closed first`,
        ),
      );
    }
    return unfinished;
  }
}

function outputKeyOf(value: unknown): string | null {
  if (typeof value === "object" && value !== null) {
    const key = (value as { output_key?: unknown }).output_key;
    if (typeof key === "string") return key;
  }
  return null;
}
