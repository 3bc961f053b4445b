/**
 * The dispatcher: the one path into the worker pool. Local submissions
 * (claimed at insert) and work claimed from the store (retries that came
 * due, other producers' tasks, expired leases) wait in the same bounded
 * channel, and leave it only for a free worker slot. The dispatcher claims
 * from the store only what can start soon: the free slots plus a small,
 * bounded prefetch, each claim holding a channel slot before it is asked
 * for.
 *
 * Transitions it owns: queued → dispatched (a worker slot), dispatched →
 * running (the worker reports the start; the attempt is charged), and
 * remote → queued (a claim returned a task whose handle waits here).
 *
 * @module
 */
import type { Channel, ChannelSlot } from "../channel.ts";
import type {
  PoolListener,
  PoolResult,
  WorkerPool,
} from "../pool/worker_pool.ts";
import type { TaskRecord } from "../store/store.ts";
import type { TaskEvents } from "./events.ts";
import type { CheckpointDone } from "./group_commit.ts";
import type { Reports } from "./reports.ts";
import type { TaskTable } from "./task_table.ts";
import {
  type DueSink,
  entryOf,
  type ResultSink,
  type TaskEntry,
} from "./types.ts";

/** What the dispatcher asks of the group commit. */
export interface DispatchCommits {
  /** Claims up to `count` due tasks in the next batch. */
  claim(count: number): void;
  /** Charges `entry`'s attempt (soon, unless its settle takes it). */
  start(entry: TaskEntry): void;
}

/** Options of the {@linkcode Dispatcher}. */
export interface DispatcherOptions {
  /** Tasks claimed beyond the free worker slots. */
  prefetch: number;
  /** Epoch-ms clock. */
  now: () => number;
  /** Where handlers' progress and checkpoints go. */
  reports: Reports;
}

/** Moves tasks from the channel into free worker slots. Owned by the queue. */
export class Dispatcher implements PoolListener, DueSink {
  #table: TaskTable;
  #channel: Channel<TaskEntry>;
  #pool: WorkerPool;
  #commits: DispatchCommits;
  #events: TaskEvents;
  #sink: ResultSink;
  #options: DispatcherOptions;

  /** Slots held for the claim in flight, one per task asked for. */
  #claimSlots: ChannelSlot<TaskEntry>[] = [];
  /** Look in the store for due work at the next pump. */
  #wantDue = true;
  /** Claim only for the local tasks still outstanding (the queue is draining). */
  #draining = false;
  #stopped = false;
  #pumpScheduled = false;
  #waitingForSlot = false;
  /** Due times of work scheduled here, a min-heap; one timer for the earliest. */
  #due: number[] = [];
  #dueTimer: ReturnType<typeof setTimeout> | undefined;
  #dueTimerAt = Infinity;

  /**
   * @param table The task table.
   * @param channel The bounded channel of queued entries.
   * @param pool The worker pool.
   * @param commits The group commit.
   * @param events Where transitions are reported.
   * @param sink The settler.
   * @param options Prefetch and clock.
   */
  constructor(
    table: TaskTable,
    channel: Channel<TaskEntry>,
    pool: WorkerPool,
    commits: DispatchCommits,
    events: TaskEvents,
    sink: ResultSink,
    options: DispatcherOptions,
  ) {
    this.#table = table;
    this.#channel = channel;
    this.#pool = pool;
    this.#commits = commits;
    this.#events = events;
    this.#sink = sink;
    this.#options = options;
  }

  /**
   * Takes a task claimed at insert: it goes into the slot intake reserved
   * for it.
   *
   * @param slot The channel slot intake holds.
   * @param entry The entry, now `queued`.
   */
  admit(slot: ChannelSlot<TaskEntry>, entry: TaskEntry): void {
    if (this.#stopped) {
      slot[Symbol.dispose]();
      this.#sink.release(entry, "shutdown");
      return;
    }
    slot.send(entry);
    this.schedulePump();
  }

  /** Work may be due now (a poll tick, a notification, a requeue). */
  wake(): void {
    this.#wantDue = true;
    this.schedulePump();
  }

  /** Work scheduled here becomes claimable at `runAt`: look then. */
  dueAt(runAt: number): void {
    if (this.#stopped) return;
    heapPush(this.#due, runAt);
    if (runAt < this.#dueTimerAt) this.#armDueTimer(runAt);
  }

  /** Claims only what local tasks still need: the queue is closing. */
  drain(): void {
    this.#draining = true;
  }

  /**
   * Stops dispatching and claiming, and hands back the slots held for a
   * claim in flight.
   *
   * @returns The entries still queued in the channel, never dispatched.
   */
  stop(): TaskEntry[] {
    this.#stopped = true;
    clearTimeout(this.#dueTimer);
    this.#dueTimer = undefined;
    this.#dueTimerAt = Infinity;
    const queued: TaskEntry[] = [];
    for (;;) {
      const entry = this.#channel.tryReceive();
      if (entry === undefined) break;
      if (entry.state === "queued") queued.push(entry);
    }
    return queued;
  }

  /** Pumps once the current microtasks have run, coalescing callers. */
  schedulePump(): void {
    if (this.#pumpScheduled || this.#stopped) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.pump();
    });
  }

  /** Fills free worker slots from the channel, then claims what is missing. */
  pump(): void {
    if (this.#stopped) return;
    const pool = this.#pool;
    let free = pool.freeSlots;
    while (free > 0) {
      const entry = this.#channel.tryReceive();
      if (entry === undefined) break;
      // An entry whose lease was lost (or that was handed back) while it
      // waited is no longer this process's to run.
      if (entry.state !== "queued") continue;
      this.#dispatch(entry);
      free--;
    }
    if (free === 0 && this.#channel.depth > 0 && !this.#waitingForSlot) {
      // A replacement worker that becomes ready frees slots without a
      // result to announce it.
      this.#waitingForSlot = true;
      pool.waitForSlot().then(
        () => {
          this.#waitingForSlot = false;
          this.schedulePump();
        },
        () => (this.#waitingForSlot = false),
      );
    }
    this.#claimMore(free);
  }

  #dispatch(entry: TaskEntry): void {
    this.#table.move(entry, "dispatched");
    try {
      this.#pool.dispatch(entry, this);
    } catch (error) {
      this.#sink.onResult(entry, {
        ok: false,
        error: {
          name: error instanceof Error ? error.name : "Error",
          message: error instanceof Error ? error.message : String(error),
          errorClass: "permanent",
        },
        workerId: -1,
        started: false,
        dispatchedAt: performance.now(),
        runMs: 0,
        endedAt: performance.now(),
      });
      return;
    }
    if (this.#events.wants("dispatched")) {
      this.#events.emit("dispatched", {
        id: entry.id,
        type: entry.type,
        queue: entry.queue,
        idempotencyKey: entry.idempotencyKey,
        depth: this.#channel.depth,
        inFlight: this.#pool.inFlight,
      });
    }
  }

  /**
   * Claims due work into the window: no more than the free slots plus the
   * prefetch, less what already waits, and only with a channel slot held
   * for each task asked for. One claim is in flight at a time.
   */
  #claimMore(free: number): void {
    if (!this.#wantDue || this.#claimSlots.length > 0) return;
    if (this.#draining && this.#table.localOutstanding === 0) return;
    const want = free + this.#options.prefetch - this.#channel.depth;
    for (let i = 0; i < want; i++) {
      const slot = this.#channel.tryReserve();
      if (slot === undefined) break;
      this.#claimSlots.push(slot);
    }
    if (this.#claimSlots.length === 0) return;
    this.#wantDue = false;
    this.#commits.claim(this.#claimSlots.length);
  }

  /** The claim in flight came back: queue what it took, give back the rest. */
  claimed(records: TaskRecord[], requested: number, error?: unknown): void {
    const slots = this.#claimSlots;
    this.#claimSlots = [];
    if (error !== undefined) {
      this.#events.emit("store_error", {
        operation: "claim",
        error: String(error),
      });
    }
    const now = this.#options.now();
    let i = 0;
    for (; i < records.length; i++) {
      const record = records[i]!;
      const slot = slots[i]!;
      const entry = this.#claimedEntry(record, now);
      if (entry === null || this.#stopped) {
        slot[Symbol.dispose]();
        if (entry !== null) this.#sink.release(entry, "shutdown");
        continue;
      }
      slot.send(entry);
    }
    for (; i < slots.length; i++) slots[i]![Symbol.dispose]();
    // A full claim suggests more is due.
    if (records.length >= requested) this.#wantDue = true;
    if (records.length > 0) {
      this.#events.emit("claimed", { count: records.length });
    }
    this.schedulePump();
  }

  /**
   * The entry a claimed record runs as: the waiting handle's entry, or a
   * new one for work submitted elsewhere. `null` when this process still
   * holds an older claim of the same task (its lease was lost while it
   * ran): the new claim is handed back rather than run twice here.
   */
  #claimedEntry(record: TaskRecord, now: number): TaskEntry | null {
    const entry = this.#table.get(record.id);
    if (entry === undefined) {
      const fresh = entryOf(record, "queued", false, now);
      this.#table.add(fresh);
      return fresh;
    }
    if (entry.state !== "remote") {
      const stray = entryOf(record, "queued", false, now);
      this.#sink.release(stray, "not-started");
      return null;
    }
    entry.version = record.version;
    entry.leaseUntil = record.leaseUntil ?? 0;
    entry.attempt = record.attempts + 1;
    entry.maxAttempts = record.maxAttempts;
    entry.charge = "none";
    entry.leaseLost = false;
    entry.runAt = record.runAt;
    entry.checkpoint = record.checkpoint ?? undefined;
    entry.acceptedAt = performance.now() - Math.max(0, now - record.runAt);
    this.#table.move(entry, "queued");
    return entry;
  }

  /**
   * The handler started and is still running: the attempt is charged in
   * the next commit, so that a crash from now on leaves the charge.
   */
  started(task: TaskEntry, workerId: number): void {
    if (task.state !== "dispatched") return;
    this.#run(task, workerId);
    task.charge = "pending";
    this.#commits.start(task);
  }

  #run(entry: TaskEntry, workerId: number): void {
    this.#table.move(entry, "running");
    if (this.#events.wants("started")) {
      this.#events.emit("started", {
        id: entry.id,
        type: entry.type,
        queue: entry.queue,
        idempotencyKey: entry.idempotencyKey,
        attempt: entry.attempt,
        workerId,
      });
    }
  }

  /**
   * The task's slot is free: settle it, and fill the slot. A handler that
   * finished before its start was reported is marked running first; its
   * settle charges the attempt.
   */
  settled(task: TaskEntry, result: PoolResult): void {
    if (task.state === "dispatched" && result.started) {
      this.#run(task, result.workerId);
    }
    this.#sink.onResult(task, result);
    this.schedulePump();
  }

  /** The handler reported progress: handed to the reports. */
  progress(task: TaskEntry, json: string): void {
    this.#options.reports.progress(task, json);
  }

  /** The handler asked to checkpoint: handed to the reports. */
  checkpoint(task: TaskEntry, json: string, done: CheckpointDone): void {
    this.#options.reports.checkpoint(task, json, done);
  }

  /** Starts written (`true`) or refused because the task was taken over. */
  startsCommitted(
    entries: TaskEntry[],
    applied: boolean[],
    lost: (entry: TaskEntry) => void,
  ): void {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (applied[i]) {
        if (entry.charge === "pending") entry.charge = "written";
      } else lost(entry);
    }
  }

  #armDueTimer(at: number): void {
    clearTimeout(this.#dueTimer);
    this.#dueTimerAt = at;
    this.#dueTimer = setTimeout(() => {
      this.#dueTimer = undefined;
      this.#dueTimerAt = Infinity;
      const now = this.#options.now();
      while (this.#due.length > 0 && this.#due[0]! <= now) heapPop(this.#due);
      if (this.#due.length > 0) this.#armDueTimer(this.#due[0]!);
      this.wake();
    }, Math.max(0, at - this.#options.now()));
  }
}

function heapPush(heap: number[], value: number): void {
  let i = heap.push(value) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]! <= value) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = value;
}

function heapPop(heap: number[]): void {
  const last = heap.pop()!;
  if (heap.length === 0) return;
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= heap.length) break;
    const right = left + 1;
    const child = right < heap.length && heap[right]! < heap[left]!
      ? right
      : left;
    if (heap[child]! >= last) break;
    heap[i] = heap[child]!;
    i = child;
  }
  heap[i] = last;
}
