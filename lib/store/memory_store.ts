/**
 * The in-memory task store: the same semantics as the durable stores, in
 * maps, for tests and for queues that need no durability.
 *
 * @experimental The store interface is not yet a stable API.
 * @module
 */
import { isCloneable } from "../_clone.ts";
import { newRecord } from "./_record.ts";
import {
  emptyCounts,
  LEASE_EXPIRED_MESSAGE,
  validateBatch,
  validateList,
  validateWindow,
} from "./_shared.ts";
import type {
  CommitBatch,
  CommitResult,
  InsertOutcome,
  ListOptions,
  StatusCounts,
  StoreStatus,
  TaskRecord,
  TaskStatus,
  TaskStore,
} from "./store.ts";

/** A task and its place in the claim order. */
interface Slot {
  record: TaskRecord;
  /** Insertion order, the `rowid` twin: ties on `runAt` go to the older task. */
  order: number;
  /** Matches the live ready entry; 0 while not claimable. */
  token: number;
}

/** A claimable task's place in the ready structures. */
interface Entry {
  id: string;
  runAt: number;
  order: number;
  token: number;
}

function before(a: Entry, b: Entry): boolean {
  return a.runAt < b.runAt || (a.runAt === b.runAt && a.order < b.order);
}

/**
 * A {@linkcode TaskStore} in memory: nothing survives the process.
 *
 * Claimable tasks wait in two sorted sources merged at claim time: a FIFO
 * for tasks that arrive in `runAt` order (the common case, O(1) per claim)
 * and a min-heap for the rest (delayed or out-of-order tasks). Entries are
 * removed lazily: an entry whose token no longer matches its task is
 * skipped.
 *
 * Payloads and results are kept as given, not copied or serialized.
 *
 * @experimental
 *
 * @example Inserting and claiming
 * ```ts
 * import { MemoryTaskStore } from "@sluice/sluice/store";
 * import assert from "node:assert/strict";
 *
 * await using store = new MemoryTaskStore();
 * const { claimed } = await store.commit({
 *   settles: [],
 *   inserts: [{ id: "a", type: "t", idempotencyKey: "k", payload: { x: 1 }, maxAttempts: 2, runAt: 0 }],
 *   claimDue: 1,
 *   leaseMs: 100,
 *   now: 5,
 * });
 * assert.equal(claimed[0]?.id, "a");
 * assert.equal(store.durable, false);
 * ```
 */
export class MemoryTaskStore implements TaskStore, AsyncDisposable {
  /** Always `"memory"`. */
  readonly kind: string = "memory";
  /** Always `false`. */
  readonly durable: boolean = false;
  #tasks = new Map<string, Slot>();
  #byKey = new Map<string, string>();
  #running = new Set<string>();
  #counts: StatusCounts = emptyCounts();
  #fifo: Entry[] = [];
  #fifoHead = 0;
  #heap: Entry[] = [];
  #nextOrder = 1;
  #nextToken = 1;
  #staleSettles = 0;
  #closed = false;

  #check(action: string): void {
    if (this.#closed) throw new Error(`Cannot ${action}: task store is closed`);
  }

  #setStatus(record: TaskRecord, status: TaskStatus): void {
    this.#counts[record.status]--;
    this.#counts[status]++;
    record.status = status;
  }

  /** Makes a queued or failed task claimable from `record.runAt`. */
  #enqueue(slot: Slot): void {
    const entry: Entry = {
      id: slot.record.id,
      runAt: slot.record.runAt,
      order: slot.order,
      token: this.#nextToken++,
    };
    slot.token = entry.token;
    const tail = this.#fifo[this.#fifo.length - 1];
    if (this.#fifoHead >= this.#fifo.length || !before(entry, tail!)) {
      this.#fifo.push(entry);
    } else {
      this.#heapPush(entry);
    }
  }

  #live(entry: Entry): boolean {
    const slot = this.#tasks.get(entry.id);
    return slot !== undefined && slot.token === entry.token;
  }

  /** The earliest live entry, dropping dead ones on the way. */
  #peek(): Entry | undefined {
    while (this.#fifoHead < this.#fifo.length) {
      const head = this.#fifo[this.#fifoHead]!;
      if (this.#live(head)) break;
      this.#fifoHead++;
    }
    if (this.#fifoHead > 1024 && this.#fifoHead * 2 > this.#fifo.length) {
      this.#fifo = this.#fifo.slice(this.#fifoHead);
      this.#fifoHead = 0;
    }
    while (this.#heap.length > 0 && !this.#live(this.#heap[0]!)) {
      this.#heapPop();
    }
    const a = this.#fifoHead < this.#fifo.length
      ? this.#fifo[this.#fifoHead]
      : undefined;
    const b = this.#heap[0];
    if (a === undefined) return b;
    if (b === undefined) return a;
    return before(b, a) ? b : a;
  }

  #heapPush(entry: Entry): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = heap[parent]!;
      if (!before(entry, above)) break;
      heap[i] = above;
      i = parent;
    }
    heap[i] = entry;
  }

  #heapPop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && before(heap[left]!, heap[smallest]!)) {
        smallest = left;
      }
      if (right < heap.length && before(heap[right]!, heap[smallest]!)) {
        smallest = right;
      }
      if (smallest === i) return;
      const below = heap[smallest]!;
      heap[smallest] = heap[i]!;
      heap[i] = below;
      i = smallest;
    }
  }

  #claim(slot: Slot, now: number, leaseUntil: number): TaskRecord {
    const record = slot.record;
    slot.token = 0;
    this.#setStatus(record, "running");
    record.version++;
    record.leaseUntil = leaseUntil;
    record.startedAt = null;
    record.updatedAt = now;
    this.#running.add(record.id);
    return { ...record };
  }

  /** The record if it is running under `version` (the fencing check). */
  #held(id: string, version: number): Slot | undefined {
    const slot = this.#tasks.get(id);
    return slot !== undefined && slot.record.status === "running" &&
        slot.record.version === version
      ? slot
      : undefined;
  }

  /**
   * Throws when `value` cannot be kept: it must be structured-cloneable,
   * since it crosses to a worker. Unlike the durable stores, a `Map`, a
   * `Date` or a BigInt is kept as it is.
   *
   * @param value The payload or result.
   * @param what Which of the two it is.
   * @throws {TypeError} When it is not structured-cloneable.
   */
  checkValue(value: unknown, what: "payload" | "result"): void {
    if (!isCloneable(value)) {
      throw new TypeError(
        `Cannot store task: ${what} is not structured-cloneable`,
      );
    }
  }

  /**
   * Applies one batch atomically, in order: renewals, starts, settles,
   * releases, recovery of expired leases (when `recover` is set), inserts,
   * claims of due tasks. The batch is checked first, so a failure applies
   * nothing.
   *
   * @param batch The work to apply.
   * @returns What was renewed, started, settled, released, recovered,
   *   inserted and claimed.
   * @throws {RangeError} When a batch field is out of range.
   * @throws {TypeError} When an id, type or key holds U+0000 or a lone
   *   surrogate.
   * @throws {Error} When an inserted id already exists, or the store is closed.
   *
   * @example A duplicate idempotency key
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const store = new MemoryTaskStore();
   * const task = { type: "t", idempotencyKey: "same", payload: 1, maxAttempts: 1, runAt: 0 };
   * const { inserted } = await store.commit({
   *   settles: [],
   *   inserts: [{ ...task, id: "a" }, { ...task, id: "b" }],
   *   claimDue: 0,
   *   leaseMs: 0,
   *   now: 0,
   * });
   * assert.deepEqual(inserted.map((o) => [o.inserted, o.record.id]), [[true, "a"], [false, "a"]]);
   * await store.close();
   * ```
   *
   * @example Starting, then releasing with a refund
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * const task = { id: "a", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 3, runAt: 0 };
   * const { claimed } = await store.commit({ settles: [], inserts: [task], claimDue: 1, leaseMs: 100, now: 0 });
   * const { id, version } = claimed[0]!;
   * assert.equal(claimed[0]!.attempts, 0); // a claim charges nothing
   * const { started } = await store.commit({ starts: [{ id, version }], settles: [], inserts: [], claimDue: 0, leaseMs: 100, now: 1 });
   * assert.deepEqual(started, [true]);
   * const running = await store.get("a");
   * assert.deepEqual([running?.attempts, running?.startedAt], [1, 1]);
   * const { released } = await store.commit({ settles: [], releases: [{ id, version, refund: true }], inserts: [], claimDue: 0, leaseMs: 100, now: 2 });
   * assert.deepEqual(released, [true]);
   * const record = await store.get("a");
   * assert.deepEqual(
   *   [record?.status, record?.attempts, record?.startedAt, record?.version],
   *   ["queued", 0, null, version + 1],
   * );
   * ```
   */
  commit(batch: CommitBatch): Promise<CommitResult> {
    try {
      return Promise.resolve(this.#commit(batch));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #commit(batch: CommitBatch): CommitResult {
    this.#check("commit");
    validateBatch(batch);
    const { now } = batch;
    const leaseUntil = now + batch.leaseMs;
    // Dry-run the inserts so a conflicting id refuses the whole batch
    // before anything changes, as the SQLite transaction would.
    const newKeys = new Set<string>();
    const newIds = new Set<string>();
    for (const task of batch.inserts) {
      const key = task.idempotencyKey;
      if (key !== null && (this.#byKey.has(key) || newKeys.has(key))) continue;
      if (this.#tasks.has(task.id) || newIds.has(task.id)) {
        throw new Error(`Cannot store task ${task.id}: id already exists`);
      }
      newIds.add(task.id);
      if (key !== null) newKeys.add(key);
    }

    const renewed: boolean[] = [];
    for (const { id, version } of batch.renewals ?? []) {
      const slot = this.#held(id, version);
      if (slot !== undefined) slot.record.leaseUntil = leaseUntil;
      renewed.push(slot !== undefined);
    }

    const started: boolean[] = [];
    for (const { id, version } of batch.starts ?? []) {
      const slot = this.#held(id, version);
      if (slot !== undefined) {
        slot.record.attempts++;
        slot.record.startedAt = now;
      }
      started.push(slot !== undefined);
    }

    const settled: boolean[] = [];
    for (const { id, version, outcome, charge } of batch.settles) {
      const slot = this.#held(id, version);
      if (slot === undefined) {
        settled.push(false);
        this.#staleSettles++;
        continue;
      }
      const record = slot.record;
      // startedAt is kept: a finished task shows its last recorded start.
      if (charge === true) record.attempts++;
      record.version++;
      record.updatedAt = now;
      record.leaseUntil = null;
      this.#running.delete(id);
      switch (outcome.kind) {
        case "succeeded":
          this.#setStatus(record, "succeeded");
          record.result = outcome.result === undefined ? null : outcome.result;
          record.outputKey = outcome.outputKey;
          break;
        case "retry":
          this.#setStatus(record, "failed");
          record.runAt = outcome.runAt;
          record.lastError = outcome.error;
          record.errorClass = outcome.errorClass;
          this.#enqueue(slot);
          break;
        case "dead":
          this.#setStatus(record, "dead");
          record.lastError = outcome.error;
          record.errorClass = outcome.errorClass;
          break;
      }
      settled.push(true);
    }

    const released: boolean[] = [];
    for (const { id, version, refund } of batch.releases ?? []) {
      const slot = this.#held(id, version);
      if (slot === undefined) {
        released.push(false);
        continue;
      }
      const record = slot.record;
      if (refund === true && record.attempts > 0) record.attempts--;
      record.version++;
      record.updatedAt = now;
      record.leaseUntil = null;
      record.startedAt = null;
      this.#running.delete(id);
      this.#setStatus(record, "queued");
      this.#enqueue(slot);
      released.push(true);
    }

    const recovered = batch.recover === true ? this.#recover(now) : 0;

    const inserted: InsertOutcome[] = [];
    for (const task of batch.inserts) {
      const key = task.idempotencyKey;
      const existing = key === null ? undefined : this.#byKey.get(key);
      if (existing !== undefined) {
        inserted.push({
          inserted: false,
          record: { ...this.#tasks.get(existing)!.record },
        });
        continue;
      }
      const claim = task.claim === true;
      const record = newRecord(task, now, leaseUntil);
      const slot: Slot = { record, order: this.#nextOrder++, token: 0 };
      this.#tasks.set(task.id, slot);
      if (key !== null) this.#byKey.set(key, task.id);
      if (claim) {
        this.#counts.running++;
        this.#running.add(task.id);
      } else {
        this.#counts.queued++;
        this.#enqueue(slot);
      }
      inserted.push({ inserted: true, record: { ...record } });
    }

    const claimed: TaskRecord[] = [];
    let wanted = batch.claimDue;
    while (wanted > 0) {
      const entry = this.#peek();
      if (entry === undefined || entry.runAt > now) break;
      claimed.push(this.#claim(this.#tasks.get(entry.id)!, now, leaseUntil));
      wanted--;
    }
    return {
      renewed,
      started,
      settled,
      released,
      recovered,
      inserted,
      claimed,
    };
  }

  /** Recovers expired leases; the caller has checked the store is open. */
  #recover(now: number): number {
    let count = 0;
    for (const id of this.#running) {
      const slot = this.#tasks.get(id)!;
      const record = slot.record;
      if (record.leaseUntil === null || record.leaseUntil >= now) continue;
      this.#running.delete(id);
      record.leaseUntil = null;
      record.startedAt = null;
      record.updatedAt = now;
      record.version++;
      if (record.attempts >= record.maxAttempts) {
        this.#setStatus(record, "dead");
        record.lastError = LEASE_EXPIRED_MESSAGE;
        record.errorClass = "transient";
      } else {
        this.#setStatus(record, "queued");
        this.#enqueue(slot);
      }
      count++;
    }
    return count;
  }

  /**
   * Returns running tasks whose lease ended before `now` to `queued`, or to
   * `dead` when their charged attempts have reached `maxAttempts`. A task
   * that was claimed but never started carries no charge for that claim,
   * so it is requeued.
   *
   * @param now The current time (epoch ms).
   * @returns How many tasks were recovered.
   * @throws {Error} When the store is closed.
   *
   * @example Nothing to recover
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * assert.equal(await store.recoverExpired(Date.now()), 0);
   * ```
   */
  recoverExpired(now: number): Promise<number> {
    try {
      this.#check("recover expired leases");
      return Promise.resolve(this.#recover(now));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads one task by id.
   *
   * @param id The task id.
   * @returns A copy of the task, or `undefined`.
   * @throws {Error} When the store is closed.
   *
   * @example Missing task
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * assert.equal(await store.get("nope"), undefined);
   * ```
   */
  get(id: string): Promise<TaskRecord | undefined> {
    try {
      this.#check("get task");
      const slot = this.#tasks.get(id);
      return Promise.resolve(
        slot === undefined ? undefined : { ...slot.record },
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads one task by idempotency key.
   *
   * @param key The idempotency key.
   * @returns A copy of the task, or `undefined`.
   * @throws {Error} When the store is closed.
   *
   * @example Missing key
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * assert.equal(await store.getByKey("nope"), undefined);
   * ```
   */
  getByKey(key: string): Promise<TaskRecord | undefined> {
    try {
      this.#check("get task");
      const id = this.#byKey.get(key);
      return id === undefined ? Promise.resolve(undefined) : this.get(id);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Lists tasks, oldest `createdAt` first (insertion order within one
   * commit).
   *
   * @param options Status filter, limit and offset.
   * @returns Copies of the tasks.
   * @throws {RangeError} When `limit` or `offset` is not a non-negative integer.
   * @throws {Error} When the store is closed.
   *
   * @example An empty list
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * assert.deepEqual(await store.list({ status: "dead" }), []);
   * ```
   */
  list(options: ListOptions = {}): Promise<TaskRecord[]> {
    try {
      this.#check("list tasks");
      const { status, limit, offset } = validateList(options);
      const records: TaskRecord[] = [];
      // Map order is insertion order; the stable sort keeps it for ties.
      for (const slot of this.#tasks.values()) {
        if (status === undefined || slot.record.status === status) {
          records.push(slot.record);
        }
      }
      records.sort((a, b) => a.createdAt - b.createdAt);
      const end = limit === undefined ? undefined : offset + limit;
      return Promise.resolve(
        records.slice(offset, end).map((record) => ({ ...record })),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Moves dead tasks back to `queued`, due at `now`, with attempts reset to 0.
   *
   * @param ids The ids, or `"all"` for every dead task.
   * @param now The current time (epoch ms).
   * @returns How many tasks were requeued.
   * @throws {Error} When the store is closed.
   *
   * @example Requeueing nothing
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * assert.equal(await store.requeue(["x"], 0), 0);
   * ```
   */
  requeue(ids: string[] | "all", now: number): Promise<number> {
    try {
      this.#check("requeue tasks");
      const slots: Iterable<Slot | undefined> = ids === "all"
        ? this.#tasks.values()
        : ids.map((id) => this.#tasks.get(id));
      let count = 0;
      for (const slot of slots) {
        if (slot === undefined || slot.record.status !== "dead") continue;
        const record = slot.record;
        this.#setStatus(record, "queued");
        record.attempts = 0;
        record.runAt = now;
        record.leaseUntil = null;
        record.startedAt = null;
        record.updatedAt = now;
        record.version++;
        this.#enqueue(slot);
        count++;
      }
      return Promise.resolve(count);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads counts by status, the age of the oldest due claimable task, how
   * many running tasks have a recorded start, and how many succeeded
   * within `windowMs`.
   *
   * @param now The current time (epoch ms).
   * @param windowMs The window for `recentSucceeded`.
   * @returns The snapshot.
   * @throws {RangeError} When `windowMs` is negative or not finite.
   * @throws {Error} When the store is closed.
   *
   * @example An empty store
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * const status = await store.status(0, 1000);
   * assert.equal(status.started, 0);
   * assert.equal(status.recentSucceeded, 0);
   * assert.equal(status.windowMs, 1000);
   * ```
   *
   * @example Telling started tasks from claimed ones
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 3, runAt: 0 };
   * const { claimed } = await store.commit({
   *   settles: [],
   *   inserts: [{ ...task, id: "a" }, { ...task, id: "b" }],
   *   claimDue: 2,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * const { id, version } = claimed[0]!;
   * await store.commit({ starts: [{ id, version }], settles: [], inserts: [], claimDue: 0, leaseMs: 100, now: 7 });
   * const { counts, started } = await store.status(8);
   * assert.deepEqual([counts.running, started], [2, 1]);
   * assert.equal((await store.get("a"))?.startedAt, 7);
   * assert.equal((await store.get("b"))?.startedAt, null);
   * ```
   */
  status(now: number, windowMs: number = 60_000): Promise<StoreStatus> {
    try {
      this.#check("read status");
      validateWindow(windowMs);
      const oldest = this.#peek();
      // Only running tasks can count: walk the running set, not the table.
      let started = 0;
      for (const id of this.#running) {
        if (this.#tasks.get(id)!.record.startedAt !== null) started++;
      }
      let recentSucceeded = 0;
      const since = now - windowMs;
      for (const slot of this.#tasks.values()) {
        const record = slot.record;
        if (record.status === "succeeded" && record.updatedAt >= since) {
          recentSucceeded++;
        }
      }
      return Promise.resolve({
        counts: { ...this.#counts },
        oldestQueuedAgeMs: oldest === undefined || oldest.runAt > now
          ? null
          : now - oldest.runAt,
        started,
        recentSucceeded,
        windowMs,
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * How many settles were refused because their fencing token was stale.
   *
   * @returns The count.
   * @throws {Error} When the store is closed.
   *
   * @example A fresh store
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * assert.equal(await store.staleSettles(), 0);
   * ```
   */
  staleSettles(): Promise<number> {
    try {
      this.#check("read counters");
      return Promise.resolve(this.#staleSettles);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Drops every task. Idempotent.
   *
   * @returns A promise that settles once closed.
   *
   * @example Closing twice
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const store = new MemoryTaskStore();
   * await store.close();
   * await store.close();
   * await assert.rejects(store.list(), /closed/);
   * ```
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#tasks.clear();
    this.#byKey.clear();
    this.#running.clear();
    this.#fifo = [];
    this.#fifoHead = 0;
    this.#heap = [];
    return Promise.resolve();
  }

  /**
   * Closes the store, for `await using`.
   *
   * @returns A promise that settles once closed.
   *
   * @example Scoped store
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   *
   * await using _store = new MemoryTaskStore();
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
