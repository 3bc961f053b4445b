/**
 * The task table: every task this process knows about has exactly one
 * entry here, and the entry's `state` is the only record of where it
 * stands. States change only through {@linkcode TaskTable.move}, which
 * refuses moves the life cycle does not allow; the counts and the key
 * index are derived from the entries and kept by the same three methods
 * (`add`, `move`, `remove`), never by callers.
 *
 * @module
 */
import type { TaskEntry, TaskState } from "./types.ts";

/**
 * Whether the life cycle allows a move from one state to another. Leaving
 * the table is `remove`. (A switch, not a lookup table: this runs several
 * times per task, and comparing interned strings is cheaper than a keyed
 * load.)
 */
function allowed(from: TaskState, to: TaskState): boolean {
  switch (from) {
    // The insert committed: claimed → queued; scheduled or run elsewhere → remote.
    case "reserved":
      return to === "queued" || to === "remote";
    // Dispatched to a worker; handed back (settling a release); or the
    // lease was lost while it waited.
    case "queued":
      return to === "dispatched" || to === "settling" || to === "remote";
    // The handler started; or the task ended without starting.
    case "dispatched":
      return to === "running" || to === "settling";
    case "running":
      return to === "settling";
    // A retry or a release committed (the task waits in the store), or the
    // settle was stale.
    case "settling":
      return to === "remote";
    // Claimed by this process.
    case "remote":
      return to === "queued";
  }
}

/** States that hold a claim, whose leases the heartbeat renews. */
const HOLDING: readonly TaskState[] = [
  "queued",
  "dispatched",
  "running",
  "settling",
];

/** Entries per state, as plain fields so updates are named stores. */
class Counts {
  reserved = 0;
  queued = 0;
  dispatched = 0;
  running = 0;
  settling = 0;
  remote = 0;

  add(state: TaskState, n: number): void {
    switch (state) {
      case "reserved":
        this.reserved += n;
        break;
      case "queued":
        this.queued += n;
        break;
      case "dispatched":
        this.dispatched += n;
        break;
      case "running":
        this.running += n;
        break;
      case "settling":
        this.settling += n;
        break;
      case "remote":
        this.remote += n;
        break;
    }
  }
}

interface IdleWaiter {
  check: () => boolean;
  resolve: () => void;
}

/**
 * The task table of one queue. Owned by the queue's main thread.
 *
 * Its maps by id and by key are replaced by new ones whenever they become
 * empty. V8 allocates the hash table a `Map` grows or shrinks into in the
 * old generation once the map's table is there, and leaves the entries in
 * the table it outgrew; an old-generation table is a root for every young
 * object it points at until the next full collection. So a long-lived map
 * that takes and drops a few hundred entries per commit (a producer's
 * submissions) kept each of them alive through the scavenges that would
 * have freed it, and it was promoted: most of what a producer submitted
 * ended up in the old generation. A new map starts in the young
 * generation.
 */
export class TaskTable {
  #entries = new Map<string, TaskEntry>();
  /** Entries not remote, by queue, for the queues with a limit only. */
  #held = new Map<string, number>();
  #onFreed: ((queue: string) => void) | null = null;
  /** Live entries by idempotency key: the in-process deduplication index. */
  #byKey = new Map<string, TaskEntry>();
  #counts = new Counts();
  #local = 0;
  #waiters: IdleWaiter[] = [];

  /**
   * Counts, from now on, the entries of `queues` that are not remote (so
   * claimed here, or being inserted), for {@linkcode TaskTable.heldIn};
   * `onFreed` is called when one of them leaves.
   *
   * @param queues The queues with a concurrency limit.
   * @param onFreed Told the queue whose count went down.
   */
  countQueues(
    queues: Iterable<string>,
    onFreed: (queue: string) => void,
  ): void {
    for (const queue of queues) this.#held.set(queue, 0);
    this.#onFreed = onFreed;
  }

  /**
   * Entries of `queue` this process holds or is inserting (not remote);
   * 0 for a queue not counted.
   *
   * @param queue The queue.
   * @returns The count.
   */
  heldIn(queue: string): number {
    return this.#held.get(queue) ?? 0;
  }

  /** Counts `entry` in or out of its queue's held count. */
  #hold(entry: TaskEntry, delta: 1 | -1): void {
    const held = this.#held.get(entry.queue);
    if (held === undefined) return;
    this.#held.set(entry.queue, held + delta);
    if (delta < 0) this.#onFreed?.(entry.queue);
  }

  /** Entries in the table. */
  get size(): number {
    return this.#entries.size;
  }

  /** Entries submitted here that have not left the table: what `drain` waits for. */
  get localOutstanding(): number {
    return this.#local;
  }

  /** Entries holding a claim (queued, dispatched, running or settling). */
  get holding(): number {
    const c = this.#counts;
    return c.queued + c.dispatched + c.running + c.settling;
  }

  /**
   * Entries in `state`.
   *
   * @param state The state.
   * @returns How many.
   */
  count(state: TaskState): number {
    const c = this.#counts;
    switch (state) {
      case "reserved":
        return c.reserved;
      case "queued":
        return c.queued;
      case "dispatched":
        return c.dispatched;
      case "running":
        return c.running;
      case "settling":
        return c.settling;
      case "remote":
        return c.remote;
    }
  }

  /**
   * The entry for a task id.
   *
   * @param id The task's id.
   * @returns The entry, or `undefined`.
   */
  get(id: string): TaskEntry | undefined {
    return this.#entries.get(id);
  }

  /**
   * The live entry with an idempotency key.
   *
   * @param key The key.
   * @returns The entry, or `undefined`.
   */
  byKey(key: string): TaskEntry | undefined {
    return this.#byKey.get(key);
  }

  /**
   * Adds a new entry in its first state.
   *
   * @param entry The entry.
   * @throws {Error} When the id is already in the table, or the state is
   * not a first state (`reserved`, `queued` or `remote`).
   */
  add(entry: TaskEntry): void {
    if (this.#entries.has(entry.id)) {
      throw new Error(
        `Cannot add task ${entry.id}: it is already in the table`,
      );
    }
    const state = entry.state;
    if (state !== "reserved" && state !== "queued" && state !== "remote") {
      throw new Error(
        `Cannot add task ${entry.id}: ${state} is not a first state`,
      );
    }
    this.#entries.set(entry.id, entry);
    if (
      entry.idempotencyKey !== null && !this.#byKey.has(entry.idempotencyKey)
    ) {
      this.#byKey.set(entry.idempotencyKey, entry);
    }
    this.#counts.add(state, 1);
    if (entry.local) this.#local++;
    if (this.#held.size > 0 && state !== "remote") this.#hold(entry, 1);
  }

  /**
   * Moves an entry to another state.
   *
   * @param entry The entry, which must be in the table.
   * @param to The new state.
   * @throws {Error} When the entry is not in the table or the move is not
   * allowed from its state.
   */
  move(entry: TaskEntry, to: TaskState): void {
    const from = entry.state;
    if (this.#entries.get(entry.id) !== entry) {
      throw new Error(
        `Cannot move task ${entry.id} to ${to}: it is not in the table`,
      );
    }
    if (!allowed(from, to)) {
      throw new Error(`Cannot move task ${entry.id} to ${to}: it is ${from}`);
    }
    this.#counts.add(from, -1);
    this.#counts.add(to, 1);
    entry.state = to;
    if (this.#held.size > 0 && (from === "remote") !== (to === "remote")) {
      this.#hold(entry, to === "remote" ? -1 : 1);
    }
    if (this.#waiters.length > 0) this.#wake();
  }

  /**
   * Stops finding `entry` by its idempotency key: its window ended, and a
   * new task with the key is on its way in.
   *
   * @param entry The entry.
   */
  releaseKey(entry: TaskEntry): void {
    const key = entry.idempotencyKey;
    if (key !== null && this.#byKey.get(key) === entry) this.#dropKey(key);
  }

  #dropKey(key: string): void {
    this.#byKey.delete(key);
    if (this.#byKey.size === 0) this.#byKey = new Map();
  }

  /**
   * Removes an entry: its task is finished here (its handle answered), or
   * the queue is closing.
   *
   * @param entry The entry.
   * @returns `true` when it was in the table.
   */
  remove(entry: TaskEntry): boolean {
    if (this.#entries.get(entry.id) !== entry) return false;
    this.#entries.delete(entry.id);
    if (this.#entries.size === 0) this.#entries = new Map();
    const key = entry.idempotencyKey;
    if (key !== null && this.#byKey.get(key) === entry) this.#dropKey(key);
    this.#counts.add(entry.state, -1);
    if (entry.local) this.#local--;
    if (this.#held.size > 0 && entry.state !== "remote") this.#hold(entry, -1);
    if (this.#waiters.length > 0) this.#wake();
    return true;
  }

  /**
   * Every entry, or those in the given states. Safe to use while entries
   * move or leave: it iterates a snapshot.
   *
   * @param states Only these states.
   * @returns The entries.
   */
  entries(states?: readonly TaskState[]): TaskEntry[] {
    const out: TaskEntry[] = [];
    for (const entry of this.#entries.values()) {
      if (states === undefined || states.includes(entry.state)) out.push(entry);
    }
    return out;
  }

  /**
   * The entries that hold a claim.
   *
   * @returns A snapshot of them.
   */
  holders(): TaskEntry[] {
    return this.entries(HOLDING);
  }

  /**
   * Resolves once `check` holds, re-checked after every change of the
   * table.
   *
   * @param check The condition.
   * @param signal Rejects the wait with its reason.
   * @returns A promise that resolves when `check()` is true.
   */
  until(check: () => boolean, signal?: AbortSignal): Promise<void> {
    if (check()) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const waiter: IdleWaiter = {
        check,
        resolve: (): void => {
          signal?.removeEventListener("abort", abort);
          resolve();
        },
      };
      const abort = (): void => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal!.reason);
      };
      this.#waiters.push(waiter);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const ready = this.#waiters.filter((w) => w.check());
    if (ready.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.resolve();
  }
}
