/**
 * The arithmetic of the kept counts, in one place: every change of status
 * is a move from one status to another (from none: an insert; to none: a
 * delete), and a move changes the counts and totals the same way in every
 * store. PostgreSQL does the same sums in SQL (`postgresQueries().count`).
 *
 * @module
 */
import type {
  QueueStatus,
  StatusCounts,
  StatusTotals,
  TaskStatus,
} from "./store.ts";
import { emptyCounts, emptyTotals, TASK_STATUSES } from "./_shared.ts";

/**
 * Counts by status and monotonic totals, changed only by
 * {@linkcode StatusTally.move} (and set by {@linkcode StatusTally.recount}). The memory store keeps its counts in one;
 * the SQLite store gathers a transaction's net change in a fresh one and
 * adds it to the stored counts with one statement.
 */
export class StatusTally {
  /** Tasks by status (a net change, in a tally of one transaction). */
  readonly counts: StatusCounts = emptyCounts();
  /** Tasks inserted, and moves into `succeeded` and `dead`. */
  readonly totals: StatusTotals = emptyTotals();
  #moved = false;

  /**
   * Records `k` tasks moving from `was` to `now`.
   *
   * @param was The status they left, or `null` for tasks inserted.
   * @param now The status they entered, or `null` for tasks deleted.
   * @param k How many tasks.
   */
  move(was: TaskStatus | null, now: TaskStatus | null, k = 1): void {
    if (k === 0 || was === now) return;
    this.#moved = true;
    if (was === null) this.totals.submitted += k;
    else this.counts[was] -= k;
    if (now === null) return;
    this.counts[now] += k;
    if (now === "succeeded" || now === "dead") this.totals[now] += k;
  }

  /**
   * Sets the counts to the statuses given (one per task held); the totals,
   * which are history, stay.
   *
   * @param statuses The status of every task.
   */
  recount(statuses: Iterable<TaskStatus>): void {
    const counts = emptyCounts();
    for (const status of statuses) counts[status]++;
    Object.assign(this.counts, counts);
  }

  /** Whether any move was recorded. */
  get moved(): boolean {
    return this.#moved;
  }
}

/**
 * A {@linkcode StatusTally} per queue: every move names the queue of the
 * tasks it moves; {@linkcode QueueTallies.all} sums them.
 */
export class QueueTallies {
  #queues = new Map<string, StatusTally>();
  #lastQueue: string | null = null;
  #last: StatusTally | null = null;

  /**
   * Records `k` tasks of `queue` moving from `was` to `now`.
   *
   * @param queue The tasks' queue.
   * @param was The status they left, or `null` for tasks inserted.
   * @param now The status they entered, or `null` for tasks deleted.
   * @param k How many tasks.
   */
  move(
    queue: string,
    was: TaskStatus | null,
    now: TaskStatus | null,
    k = 1,
  ): void {
    if (k === 0 || was === now) return;
    this.of(queue).move(was, now, k);
  }

  /**
   * All queues' counts and totals added up: O(queues).
   *
   * @returns Fresh objects.
   */
  all(): { counts: StatusCounts; totals: StatusTotals } {
    const counts = emptyCounts();
    const totals = emptyTotals();
    for (const tally of this.#queues.values()) {
      for (const status of TASK_STATUSES) {
        counts[status] += tally.counts[status];
      }
      totals.submitted += tally.totals.submitted;
      totals.succeeded += tally.totals.succeeded;
      totals.dead += tally.totals.dead;
    }
    return { counts, totals };
  }

  /**
   * The tally of one queue, created empty when new.
   *
   * @param queue The queue.
   * @returns Its tally.
   */
  of(queue: string): StatusTally {
    // Most moves of a transaction are of one queue: skip the lookup.
    if (queue === this.#lastQueue) return this.#last!;
    let tally = this.#queues.get(queue);
    if (tally === undefined) {
      tally = new StatusTally();
      this.#queues.set(queue, tally);
    }
    this.#lastQueue = queue;
    this.#last = tally;
    return tally;
  }

  /**
   * Each queue's tally, in the order the queues were first moved.
   *
   * @returns `[queue, tally]` pairs.
   */
  entries(): IterableIterator<[string, StatusTally]> {
    return this.#queues.entries();
  }

  /**
   * Sets the counts to the tasks given (one `[queue, status]` per task
   * held); the totals, which are history, stay.
   *
   * @param tasks The queue and status of every task.
   */
  recount(tasks: Iterable<readonly [queue: string, status: TaskStatus]>): void {
    const byQueue = new Map<string, TaskStatus[]>();
    for (const [queue, status] of tasks) {
      let list = byQueue.get(queue);
      if (list === undefined) byQueue.set(queue, list = []);
      list.push(status);
    }
    for (const [queue, tally] of this.#queues) {
      tally.recount(byQueue.get(queue) ?? []);
    }
    for (const [queue, list] of byQueue) this.of(queue).recount(list);
  }

  /**
   * Each queue's counts and totals, copied, by name.
   *
   * @returns One entry per queue ever moved.
   */
  queues(): QueueStatus[] {
    return byQueueName(
      [...this.#queues].map(([queue, tally]) => ({
        queue,
        counts: { ...tally.counts },
        totals: { ...tally.totals },
      })),
    );
  }
}

/**
 * The counts and totals a durable store keeps as rows, per queue: per
 * status, the tasks in it (`n`) and the moves into it ever (`entered`,
 * read for the succeeded and dead totals), and a `submitted` row whose
 * `entered` totals the inserts.
 *
 * @param rows `[queue, key, n, entered]` per row (a pair seen twice adds
 *   up).
 * @returns The counts and totals of all queues and of each; keys not
 *   known are ignored.
 */
export function keptCounts(
  rows: Iterable<
    readonly [queue: string, key: string, n: number, entered: number]
  >,
): { counts: StatusCounts; totals: StatusTotals; queues: QueueStatus[] } {
  const all: QueueStatus = {
    queue: "",
    counts: emptyCounts(),
    totals: emptyTotals(),
  };
  const byQueue = new Map<string, QueueStatus>();
  for (const [queue, key, n, entered] of rows) {
    let one = byQueue.get(queue);
    if (one === undefined) {
      one = { queue, counts: emptyCounts(), totals: emptyTotals() };
      byQueue.set(queue, one);
    }
    for (const into of [all, one]) {
      if ((TASK_STATUSES as readonly string[]).includes(key)) {
        into.counts[key as TaskStatus] += n;
      }
      if (key === "submitted" || key === "succeeded" || key === "dead") {
        into.totals[key] += entered;
      }
    }
  }
  return {
    counts: all.counts,
    totals: all.totals,
    queues: byQueueName([...byQueue.values()]),
  };
}

/**
 * Orders names by UTF-16 code units, as every listing of queues does
 * (not by locale).
 *
 * @param a A name.
 * @param b Another.
 * @returns Negative, zero or positive, as `Array.prototype.sort` wants.
 */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Sorts queues' counts by queue name, in place. */
function byQueueName(queues: QueueStatus[]): QueueStatus[] {
  return queues.sort((a, b) => compareNames(a.queue, b.queue));
}
