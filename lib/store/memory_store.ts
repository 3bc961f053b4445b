/**
 * The in-memory task store: the same semantics as the durable stores, in
 * maps, for tests and for queues that need no durability.
 *
 * @experimental The store interface is not yet a stable API.
 * @module
 */
import { isCloneable } from "../_clone.ts";
import { QueueTallies } from "./_counts.ts";
import { type IndexEntry, OrderedIndex } from "./_ordered_index.ts";
import { newRecord } from "./_record.ts";
import {
  CANCELLED_MESSAGE,
  type CheckedRules,
  checkPruneLimit,
  checkQueueName,
  checkRetention,
  DEFAULT_QUEUE,
  FINISHED_STATUSES,
  FirstOfPair,
  insertOnlyBatch,
  LEASE_EXPIRED_MESSAGE,
  rulesOf,
  validateBatch,
  validateList,
} from "./_shared.ts";
import type {
  CancelOutcome,
  CommitBatch,
  CommitResult,
  InsertAllOptions,
  InsertOutcome,
  ListOptions,
  NewSchedule,
  NewTask,
  PruneResult,
  QueueState,
  RemoveOutcome,
  RetentionPolicy,
  ScheduleFire,
  ScheduleFireOutcome,
  ScheduleRecord,
  StateWrite,
  StatusCounts,
  StoreStatus,
  TaskRecord,
  TaskStatus,
  TaskStore,
} from "./store.ts";

/** A task, its place in the insertion order and in one index. */
interface Slot {
  record: TaskRecord;
  /** Insertion order, the `rowid` twin: ties on time go to the older task. */
  order: number;
  /**
   * The token of the task's live entry: in the ready index while queued or
   * failed, in its status's finished index while succeeded or dead; 0
   * while running (in no index).
   */
  token: number;
  /** The claim index it waits in while queued or failed. */
  claimIndex: ClaimIndex | null;
}

/**
 * The claimable tasks of one queue, priority and type, by `runAt`: a claim
 * merges the heads of the indexes it may take from.
 */
interface ClaimIndex {
  key: string;
  queue: string;
  priority: number;
  type: string;
  index: OrderedIndex;
  /** Live entries; the index is dropped when none is left. */
  live: number;
}

type Finished = "succeeded" | "dead";

/**
 * A {@linkcode TaskStore} in memory: nothing survives the process.
 *
 * Claimable tasks wait in an index by `runAt`, finished tasks in one index
 * per status by `updatedAt` (each a FIFO for in-order arrivals merged with a
 * min-heap for the rest, entries removed lazily), so claims and prunes take
 * the oldest first without a scan. Memory is O(tasks held): a pruned task
 * leaves every structure, and dead index entries are compacted away.
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
  // Counts and totals, of all queues and of each, move with every status
  // change (#setStatus, an insert, a delete), so they are exact by
  // construction.
  #tallies = new QueueTallies();
  #live = (entry: IndexEntry): boolean =>
    this.#tasks.get(entry.id)?.token === entry.token;
  #ready = new OrderedIndex(this.#live);
  #claimable = new Map<string, ClaimIndex>();
  #queues = new Map<string, QueueState>();
  // Each queue's finished tasks, per status, by updatedAt.
  #finished = new Map<string, Record<Finished, OrderedIndex>>();
  #nextOrder = 1;
  #nextToken = 1;
  #staleSettles = 0;
  #closed = false;
  #schedules = new Map<string, ScheduleRecord>();

  #check(action: string): void {
    if (this.#closed) throw new Error(`Cannot ${action}: task store is closed`);
  }

  /**
   * Enters a slot into its status's structure: the running set or an index
   * (by `runAt` when claimable, by `updatedAt` when finished, so both must
   * be set first).
   */
  #enter(slot: Slot): void {
    const record = slot.record;
    const status = record.status;
    switch (status) {
      case "running":
        slot.token = 0;
        this.#running.add(record.id);
        break;
      case "queued":
      case "failed": {
        this.#place(this.#ready, slot, record.runAt);
        const key = `${record.queue}\0${record.priority}\0${record.type}`;
        let claimIndex = this.#claimable.get(key);
        if (claimIndex === undefined) {
          claimIndex = {
            key,
            queue: record.queue,
            priority: record.priority,
            type: record.type,
            index: new OrderedIndex(this.#live),
            live: 0,
          };
          this.#claimable.set(key, claimIndex);
        }
        claimIndex.index.push({
          id: record.id,
          at: record.runAt,
          order: slot.order,
          token: slot.token,
        });
        claimIndex.live++;
        slot.claimIndex = claimIndex;
        break;
      }
      case "succeeded":
      case "dead":
        this.#place(
          this.#finishedOf(record.queue)[status],
          slot,
          record.updatedAt,
        );
        break;
    }
  }

  /** Takes a slot out of its status; its index entry dies with the token. */
  #leave(slot: Slot): void {
    const record = slot.record;
    if (record.status === "running") this.#running.delete(record.id);
    const claimIndex = slot.claimIndex;
    if (claimIndex !== null) {
      slot.claimIndex = null;
      if (--claimIndex.live === 0) {
        claimIndex.index.clear();
        this.#claimable.delete(claimIndex.key);
      }
    }
    slot.token = 0;
  }

  /**
   * The one way a held task changes status: every structure that depends
   * on the status moves with it. Set the record's times first.
   */
  #setStatus(slot: Slot, status: TaskStatus): void {
    this.#leave(slot);
    this.#tallies.move(slot.record.queue, slot.record.status, status);
    slot.record.status = status;
    this.#enter(slot);
  }

  /** The finished indexes of one queue, created empty when new. */
  #finishedOf(queue: string): Record<Finished, OrderedIndex> {
    let finished = this.#finished.get(queue);
    if (finished === undefined) {
      finished = {
        succeeded: new OrderedIndex(this.#live),
        dead: new OrderedIndex(this.#live),
      };
      this.#finished.set(queue, finished);
    }
    return finished;
  }

  #place(index: OrderedIndex, slot: Slot, at: number): void {
    slot.token = this.#nextToken++;
    index.push({
      id: slot.record.id,
      at,
      order: slot.order,
      token: slot.token,
    });
  }

  /** Drops a finished task from every structure. */
  #delete(slot: Slot): void {
    const record = slot.record;
    this.#leave(slot);
    this.#tallies.move(record.queue, record.status, null);
    this.#tasks.delete(record.id);
    const key = record.idempotencyKey;
    if (key !== null && this.#byKey.get(key) === record.id) {
      this.#byKey.delete(key);
    }
  }

  /** Drops dead index entries once they outnumber the live ones. */
  #compact(): void {
    const counts = this.#tallies.all().counts;
    this.#ready.compact(counts.queued + counts.failed);
    for (const claimIndex of this.#claimable.values()) {
      claimIndex.index.compact(claimIndex.live);
    }
    for (const [queue, finished] of this.#finished) {
      const held = this.#tallies.of(queue).counts;
      for (const status of FINISHED_STATUSES) {
        finished[status].compact(held[status]);
      }
    }
  }

  #claim(slot: Slot, now: number, leaseUntil: number): TaskRecord {
    const record = slot.record;
    record.version++;
    record.leaseUntil = leaseUntil;
    record.startedAt = null;
    record.updatedAt = now;
    this.#setStatus(slot, "running");
    return { ...record };
  }

  #paused(queue: string): boolean {
    return this.#queues.size > 0 && this.#queues.get(queue)?.paused === true;
  }

  /**
   * Claims up to `claimDue` due tasks of the batch's queues (not paused)
   * and types: each step takes the best head of the claim indexes, by
   * priority, then `runAt`, then insertion order.
   */
  #claimDue(
    batch: CommitBatch,
    now: number,
    leaseUntil: number,
  ): TaskRecord[] {
    const limits = new Map<string, number>();
    for (
      const { queue, limit } of batch.claimQueues ?? [{ queue: DEFAULT_QUEUE }]
    ) {
      if (!this.#paused(queue)) limits.set(queue, limit ?? Infinity);
    }
    const types = batch.claimTypes === undefined
      ? null
      : new Set(batch.claimTypes);
    const sources = [...this.#claimable.values()].filter((c) =>
      limits.has(c.queue) && (types === null || types.has(c.type))
    );
    const claimed: TaskRecord[] = [];
    while (claimed.length < batch.claimDue) {
      let best: ClaimIndex | undefined;
      let head: IndexEntry | undefined;
      for (const source of sources) {
        if (source.live === 0 || limits.get(source.queue)! <= 0) continue;
        const entry = source.index.peek();
        if (entry === undefined || entry.at > now) continue;
        if (
          head === undefined || source.priority > best!.priority ||
          (source.priority === best!.priority &&
            (entry.at < head.at ||
              (entry.at === head.at && entry.order < head.order)))
        ) {
          best = source;
          head = entry;
        }
      }
      if (best === undefined) break;
      limits.set(best.queue, limits.get(best.queue)! - 1);
      claimed.push(this.#claim(this.#tasks.get(head!.id)!, now, leaseUntil));
    }
    return claimed;
  }

  /**
   * The record if it is running under `version`, and in `queue` when one
   * is given (the fencing check).
   */
  #held(id: string, version: number, queue?: string): Slot | undefined {
    const slot = this.#tasks.get(id);
    return slot !== undefined && slot.record.status === "running" &&
        slot.record.version === version &&
        (queue === undefined || slot.record.queue === queue)
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
   * Applies one batch atomically, in order: renewals, starts, progress,
   * checkpoints, settles,
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

  /**
   * Inserts every task of `batches` at once, after the source has ended:
   * all of them, or none when the source throws or a payload cannot be
   * stored. The tasks are held until then (this store holds every task in
   * memory anyway), and applied as one commit, so no other call sees part
   * of them.
   *
   * @param batches The tasks, a batch at a time.
   * @param options The time the inserts are applied at, and where each
   *   batch's outcomes go.
   * @returns Once applied.
   * @throws {TypeError} When a payload is not structured-cloneable.
   * @throws {RangeError} When a task asks to be inserted claimed.
   * @throws {Error} When the store is closed.
   *
   * @example Two batches, one key
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const store = new MemoryTaskStore();
   * const task = { type: "t", idempotencyKey: "k", payload: 1, maxAttempts: 1, runAt: 0 };
   * async function* batches() {
   *   yield [{ ...task, id: "a" }];
   *   yield [{ ...task, id: "b" }];
   * }
   * const ids: string[] = [];
   * await store.insertAll(batches(), {
   *   now: 0,
   *   onInserted: (outcomes) => ids.push(...outcomes.map((o) => o.record.id)),
   * });
   * assert.deepEqual(ids, ["a", "a"]);
   * ```
   */
  async insertAll(
    batches: AsyncIterable<readonly NewTask[]>,
    { now, onInserted }: InsertAllOptions,
  ): Promise<void> {
    this.#check("insert tasks");
    const tasks: NewTask[] = [];
    const sizes: number[] = [];
    for await (const batch of batches) {
      this.#check("insert tasks");
      insertOnlyBatch(batch, now);
      for (const task of batch) {
        this.checkValue(task.payload, "payload");
        tasks.push(task);
      }
      sizes.push(batch.length);
    }
    const { inserted } = this.#commit(insertOnlyBatch(tasks, now));
    let from = 0;
    for (const size of sizes) {
      onInserted(inserted.slice(from, from + size));
      from += size;
    }
  }

  #commit(batch: CommitBatch): CommitResult {
    this.#check("commit");
    validateBatch(batch);
    const { now } = batch;
    const leaseUntil = now + batch.leaseMs;
    // Dry-run the inserts so a conflicting id refuses the whole batch
    // before anything changes, as the SQLite transaction would. A key held
    // by this batch's own insert, or by a task whose window is open, makes
    // a duplicate, which needs no id.
    const newKeys = new Set<string>();
    const newIds = new Set<string>();
    for (const task of batch.inserts) {
      const key = task.idempotencyKey;
      if (key !== null) {
        if (newKeys.has(key)) continue;
        const holder = this.#byKey.get(key);
        if (holder !== undefined && !this.#released(holder, now)) continue;
      }
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

    const progressed = this.#writeState(batch.progress, "progress");
    const checkpointed = this.#writeState(batch.checkpoints, "checkpoint");

    const settled: boolean[] = [];
    const settling = new FirstOfPair();
    for (const settle of batch.settles) {
      const { id, version, outcome, charge, queue } = settle;
      const slot = settling.take(id, version) === "copy"
        ? undefined
        : this.#held(id, version, queue);
      if (slot === undefined) {
        settled.push(false);
        this.#staleSettles++;
        continue;
      }
      const record = slot.record;
      // startedAt is kept: a finished task shows its last recorded start,
      // or the settle's estimate when none was recorded.
      if (charge === true) record.attempts++;
      record.startedAt ??= settle.startedAt ?? null;
      record.version++;
      record.updatedAt = now;
      record.leaseUntil = null;
      switch (outcome.kind) {
        case "succeeded":
          record.result = outcome.result === undefined ? null : outcome.result;
          record.outputKey = outcome.outputKey;
          this.#setStatus(slot, "succeeded");
          break;
        case "retry":
          record.runAt = outcome.runAt;
          record.lastError = outcome.error;
          record.errorClass = outcome.errorClass;
          this.#setStatus(slot, "failed");
          break;
        case "dead":
          record.lastError = outcome.error;
          record.errorClass = outcome.errorClass;
          this.#setStatus(slot, "dead");
          break;
      }
      settled.push(true);
    }

    const released: boolean[] = [];
    const releasing = new FirstOfPair();
    for (const { id, version, refund, queue } of batch.releases ?? []) {
      const slot = releasing.take(id, version) === "copy"
        ? undefined
        : this.#held(id, version, queue);
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
      this.#setStatus(slot, "queued");
      released.push(true);
    }

    const recovered = batch.recover === true ? this.#recover(now) : 0;

    const inserted: InsertOutcome[] = [];
    for (const task of batch.inserts) {
      const key = task.idempotencyKey;
      const holder = key === null ? undefined : this.#byKey.get(key);
      if (holder !== undefined) {
        const existing = this.#tasks.get(holder)!.record;
        if (newIds.has(holder) || !this.#released(holder, now)) {
          inserted.push({ inserted: false, record: { ...existing } });
          continue;
        }
        // The holder's window has passed: it gives the key up and keeps
        // the rest of its record.
        existing.idempotencyKey = null;
      }
      const record = newRecord(
        task,
        now,
        leaseUntil,
        task.claim === true && !this.#paused(task.queue ?? DEFAULT_QUEUE),
      );
      const slot: Slot = {
        record,
        order: this.#nextOrder++,
        token: 0,
        claimIndex: null,
      };
      this.#tasks.set(task.id, slot);
      if (key !== null) this.#byKey.set(key, task.id);
      this.#tallies.move(record.queue, null, record.status);
      this.#enter(slot);
      inserted.push({ inserted: true, record: { ...record } });
    }

    const claimed = batch.claimDue > 0
      ? this.#claimDue(batch, now, leaseUntil)
      : [];
    this.#compact();
    return {
      renewed,
      started,
      progressed,
      checkpointed,
      settled,
      released,
      recovered,
      inserted,
      claimed,
    };
  }

  /** Records progress values or checkpoints on the claims that still hold. */
  #writeState(
    writes: readonly StateWrite[] | undefined,
    field: "progress" | "checkpoint",
  ): boolean[] {
    const applied: boolean[] = [];
    for (const { id, version, value } of writes ?? []) {
      const slot = this.#held(id, version);
      if (slot !== undefined) slot.record[field] = value ?? null;
      applied.push(slot !== undefined);
    }
    return applied;
  }

  /** Whether the task `id`'s key window has passed at `now`. */
  #released(id: string, now: number): boolean {
    const until = this.#tasks.get(id)!.record.dedupeUntil;
    return until !== null && until < now;
  }

  /** Recovers expired leases; the caller has checked the store is open. */
  #recover(now: number): number {
    let count = 0;
    for (const id of this.#running) {
      const slot = this.#tasks.get(id)!;
      const record = slot.record;
      if (record.leaseUntil === null || record.leaseUntil >= now) continue;
      record.leaseUntil = null;
      record.startedAt = null;
      record.updatedAt = now;
      record.version++;
      if (record.attempts >= record.maxAttempts) {
        record.lastError = LEASE_EXPIRED_MESSAGE;
        record.errorClass = "transient";
        this.#setStatus(slot, "dead");
      } else {
        this.#setStatus(slot, "queued");
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
      const count = this.#recover(now);
      this.#compact();
      return Promise.resolve(count);
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
      const { status, queue, limit, offset } = validateList(options);
      const records: TaskRecord[] = [];
      // Map order is insertion order; the stable sort keeps it for ties.
      for (const slot of this.#tasks.values()) {
        if (
          (status === undefined || slot.record.status === status) &&
          (queue === undefined || slot.record.queue === queue)
        ) {
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
      // Collected first: requeueing changes what the walk would see.
      const slots: Iterable<Slot | undefined> = ids === "all"
        ? [...this.#tasks.values()].filter((slot) =>
          slot.record.status === "dead"
        )
        : ids.map((id) => this.#tasks.get(id));
      let count = 0;
      for (const slot of slots) {
        if (slot === undefined || slot.record.status !== "dead") continue;
        const record = slot.record;
        record.attempts = 0;
        record.runAt = now;
        record.leaseUntil = null;
        record.startedAt = null;
        record.progress = null;
        record.checkpoint = null;
        record.updatedAt = now;
        record.version++;
        this.#setStatus(slot, "queued");
        count++;
      }
      this.#compact();
      return Promise.resolve(count);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Cancels tasks: a queued, failed or running task becomes `dead` with the
   * error "Cannot run task: cancelled" and a new version, so a running
   * attempt's renewals and settle are refused.
   *
   * @param ids The task ids.
   * @param now The current time (epoch ms).
   * @returns One outcome per id, in order.
   * @throws {Error} When the store is closed.
   *
   * @example Cancelling a queued task
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * await store.commit({
   *   settles: [],
   *   inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 }],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * const [outcome] = await store.cancel(["a", "b"], 1);
   * assert.equal(outcome?.outcome, "cancelled");
   * assert.equal((await store.get("a"))?.status, "dead");
   * ```
   */
  cancel(ids: readonly string[], now: number): Promise<CancelOutcome[]> {
    try {
      this.#check("cancel tasks");
      const outcomes: CancelOutcome[] = [];
      for (const id of ids) {
        const slot = this.#tasks.get(id);
        if (slot === undefined) {
          outcomes.push({ id, outcome: "missing", was: null });
          continue;
        }
        const record = slot.record;
        const was = record.status;
        if (was === "succeeded" || was === "dead") {
          outcomes.push({ id, outcome: "finished", was });
          continue;
        }
        record.lastError = CANCELLED_MESSAGE;
        record.errorClass = "permanent";
        record.leaseUntil = null;
        record.updatedAt = now;
        record.version++;
        this.#setStatus(slot, "dead");
        outcomes.push({ id, outcome: "cancelled", was });
      }
      this.#compact();
      return Promise.resolve(outcomes);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Deletes tasks that are not running; their idempotency keys are free.
   *
   * @param ids The task ids.
   * @returns One outcome per id, in order.
   * @throws {Error} When the store is closed.
   *
   * @example Removing an unknown task
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * assert.deepEqual(await store.remove(["x"]), [{ id: "x", outcome: "missing" }]);
   * ```
   */
  remove(ids: readonly string[]): Promise<RemoveOutcome[]> {
    try {
      this.#check("remove tasks");
      const outcomes: RemoveOutcome[] = [];
      for (const id of ids) {
        const slot = this.#tasks.get(id);
        if (slot === undefined) {
          outcomes.push({ id, outcome: "missing" });
        } else if (slot.record.status === "running") {
          outcomes.push({ id, outcome: "running" });
        } else {
          this.#delete(slot);
          outcomes.push({ id, outcome: "removed" });
        }
      }
      this.#compact();
      return Promise.resolve(outcomes);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Pauses or resumes a queue: claims skip a paused queue's tasks.
   *
   * @param queue The queue name.
   * @param paused `true` to pause, `false` to resume.
   * @param now The current time (epoch ms).
   * @returns A promise that settles once stored.
   * @throws {RangeError} When the name is empty or too long.
   * @throws {Error} When the store is closed.
   *
   * @example Pausing a queue
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * await store.setPaused("emails", true, 5);
   * assert.deepEqual(await store.queueStates(), [{ name: "emails", paused: true, updatedAt: 5 }]);
   * ```
   */
  setPaused(queue: string, paused: boolean, now: number): Promise<void> {
    try {
      this.#check(paused ? "pause queue" : "resume queue");
      checkQueueName(queue, "queue");
      this.#queues.set(queue, { name: queue, paused, updatedAt: now });
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The queues paused or resumed at least once, by name.
   *
   * @returns Their states.
   * @throws {Error} When the store is closed.
   *
   * @example No queue state yet
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * assert.deepEqual(await store.queueStates(), []);
   * ```
   */
  queueStates(): Promise<QueueState[]> {
    try {
      this.#check("read queue states");
      return Promise.resolve(
        [...this.#queues.values()]
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
          .map((state) => ({ ...state })),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads counts by status, totals of tasks ever inserted, succeeded and
   * dead-lettered, the age of the oldest due claimable task, the failed
   * tasks due, and how many running tasks have a recorded start. Counts
   * and totals are kept as tasks change status; nothing is walked but the
   * due entries of the claimable index and the running tasks.
   *
   * @param now The current time (epoch ms).
   * @returns The snapshot.
   * @throws {Error} When the store is closed.
   *
   * @example An empty store
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * const status = await store.status(0);
   * assert.equal(status.started, 0);
   * assert.equal(status.dueFailed, 0);
   * assert.deepEqual(status.totals, { submitted: 0, succeeded: 0, dead: 0 });
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
  status(now: number): Promise<StoreStatus> {
    try {
      this.#check("read status");
      const oldest = this.#ready.peek();
      // Only running tasks can count: walk the running set, not the table.
      let started = 0;
      for (const id of this.#running) {
        if (this.#tasks.get(id)!.record.startedAt !== null) started++;
      }
      const dueFailed = this.#ready.countBefore(now, {
        inclusive: true,
        where: (entry) => this.#tasks.get(entry.id)!.record.status === "failed",
      });
      const { counts, totals } = this.#tallies.all();
      return Promise.resolve({
        counts,
        oldestQueuedAgeMs: oldest === undefined || oldest.at > now
          ? null
          : now - oldest.at,
        dueFailed,
        started,
        totals,
        queues: this.#tallies.queues(),
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Recomputes the counts by status from the tasks held (O(tasks)). The
   * memory store's counts move with every change of status, so this finds
   * them as they were; it exists so that every store can be recounted.
   *
   * @returns A promise that settles once recounted.
   * @throws {Error} When the store is closed.
   *
   * @example Recounting changes nothing
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * await store.commit({
   *   settles: [],
   *   inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 }],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * await store.recount();
   * const { counts, totals } = await store.status(0);
   * assert.deepEqual([counts.queued, totals.submitted], [1, 1]);
   * ```
   */
  recount(): Promise<void> {
    try {
      this.#check("recount tasks");
      this.#tallies.recount(
        Array.from(
          this.#tasks.values(),
          ({ record }) => [record.queue, record.status] as const,
        ),
      );
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Deletes at most `limit` finished tasks that `policy` no longer keeps
   * at `now`, queue by queue, each queue's oldest `updatedAt` first across
   * both statuses (then insertion order). A task is pruned once it
   * finished before `now - maxAgeMs`, or is not among the newest
   * `maxCount` of its status in its queue, by its queue's rules.
   * Pruned tasks leave every structure of the store, and their keys are
   * free. Never `skipped`: one process owns a memory store.
   *
   * @param policy What to keep of succeeded and dead tasks.
   * @param now The time the policy is applied at (epoch ms).
   * @param limit The most tasks to delete in this call.
   * @returns How many tasks of each status were deleted.
   * @throws {TypeError} When the policy, a rule or `limit` has the wrong type.
   * @throws {RangeError} When a limit is negative or not an integer where
   *   one is needed, `now` is not finite, or the policy names another status.
   * @throws {Error} When the store is closed.
   *
   * @example Keeping the newest succeeded task
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0, claim: true };
   * const { inserted } = await store.commit({
   *   settles: [],
   *   inserts: [{ ...task, id: "a" }, { ...task, id: "b" }],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * await store.commit({
   *   settles: inserted.map(({ record: { id, version } }) => ({
   *     id,
   *     version,
   *     outcome: { kind: "succeeded" as const, result: id, outputKey: null },
   *   })),
   *   inserts: [],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 1,
   * });
   * const policy = { succeeded: { maxCount: 1 } };
   * assert.deepEqual(await store.prunable(policy, 2), { succeeded: 1, dead: 0, skipped: false });
   * assert.deepEqual(await store.prune(policy, 2, 100), { succeeded: 1, dead: 0, skipped: false });
   * assert.equal(await store.get("a"), undefined);
   * assert.equal((await store.get("b"))?.result, "b");
   * assert.equal((await store.status(2)).totals.succeeded, 2);
   * ```
   */
  prune(
    policy: RetentionPolicy,
    now: number,
    limit: number,
  ): Promise<PruneResult> {
    try {
      this.#check("prune tasks");
      const rules = checkRetention(policy, now, "prune tasks");
      checkPruneLimit(limit);
      const result: PruneResult = { succeeded: 0, dead: 0, skipped: false };
      let n = 0;
      for (const [queue, finished] of this.#finished) {
        const queueRules = rulesOf(rules, queue);
        const held = this.#tallies.of(queue).counts;
        for (; n < limit; n++) {
          const s = prunableHead(finished, "succeeded", queueRules, held);
          const d = prunableHead(finished, "dead", queueRules, held);
          const entry = s === undefined
            ? d
            : d === undefined
            ? s
            : d.at < s.at || (d.at === s.at && d.order < s.order)
            ? d
            : s;
          if (entry === undefined) break;
          const slot = this.#tasks.get(entry.id)!;
          result[slot.record.status as Finished]++;
          this.#delete(slot);
        }
      }
      this.#compact();
      return Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Counts what {@linkcode MemoryTaskStore.prune} would delete if called
   * until it deletes nothing, at the same `now`. Changes nothing.
   *
   * @param policy What to keep of succeeded and dead tasks.
   * @param now The time the policy is applied at (epoch ms).
   * @returns How many tasks of each status would go; `skipped` is `false`.
   * @throws {TypeError} When the policy or a rule has the wrong type.
   * @throws {RangeError} When a limit is out of range or `now` not finite.
   * @throws {Error} When the store is closed.
   *
   * @example Nothing to prune
   * ```ts
   * import { MemoryTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = new MemoryTaskStore();
   * const counted = await store.prunable({ dead: { maxAgeMs: 0 } }, Date.now());
   * assert.deepEqual(counted, { succeeded: 0, dead: 0, skipped: false });
   * ```
   */
  prunable(policy: RetentionPolicy, now: number): Promise<PruneResult> {
    try {
      this.#check("count prunable tasks");
      const rules = checkRetention(policy, now, "count prunable tasks");
      const result: PruneResult = { succeeded: 0, dead: 0, skipped: false };
      for (const [queue, finished] of this.#finished) {
        const queueRules = rulesOf(rules, queue);
        const held = this.#tallies.of(queue).counts;
        for (const status of FINISHED_STATUSES) {
          const { before, keep } = queueRules[status];
          const over = keep === null ? 0 : Math.max(0, held[status] - keep);
          const old = before === null
            ? 0
            : finished[status].countBefore(before);
          result[status] += Math.max(over, old);
        }
      }
      return Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * How many entries each internal structure holds, for tests that check
   * the store's memory stays bounded by the tasks it holds.
   *
   * @internal
   * @returns Entries per structure: `tasks`, `keys`, `running`, and the
   *   `ready`, `succeeded` and `dead` indexes (live and not yet dropped).
   */
  internalSizes(): Record<string, number> {
    return {
      tasks: this.#tasks.size,
      keys: this.#byKey.size,
      running: this.#running.size,
      ready: this.#ready.size,
      claimable: [...this.#claimable.values()].reduce(
        (sum, c) => sum + c.index.size,
        0,
      ),
      succeeded: [...this.#finished.values()].reduce(
        (sum, f) => sum + f.succeeded.size,
        0,
      ),
      dead: [...this.#finished.values()].reduce(
        (sum, f) => sum + f.dead.size,
        0,
      ),
    };
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
   * Stores a schedule, replacing the one of the same name (keeping its
   * `createdAt` and `lastTick`).
   *
   * @param schedule The schedule.
   * @param now The time of the write (epoch ms).
   * @returns The stored schedule.
   * @throws {TypeError} When the task's payload cannot be stored.
   * @throws {Error} When the store is closed.
   */
  putSchedule(schedule: NewSchedule, now: number): Promise<ScheduleRecord> {
    try {
      this.#check("store schedule");
      this.checkValue(schedule.task.payload ?? null, "payload");
      const old = this.#schedules.get(schedule.name);
      const record: ScheduleRecord = structuredClone({
        ...schedule,
        lastTick: old?.lastTick ?? null,
        createdAt: old?.createdAt ?? now,
        updatedAt: now,
        version: (old?.version ?? 0) + 1,
      });
      this.#schedules.set(record.name, record);
      return Promise.resolve(structuredClone(record));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Deletes a schedule.
   *
   * @param name Its name.
   * @returns `false` when there was none.
   * @throws {Error} When the store is closed.
   */
  deleteSchedule(name: string): Promise<boolean> {
    try {
      this.#check("delete schedule");
      return Promise.resolve(this.#schedules.delete(name));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Every schedule, by name.
   *
   * @returns The schedules.
   * @throws {Error} When the store is closed.
   */
  listSchedules(): Promise<ScheduleRecord[]> {
    try {
      this.#check("list schedules");
      return Promise.resolve(
        [...this.#schedules.values()]
          .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
          .map((record) => structuredClone(record)),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs one tick of a schedule (compare-and-set on its version) and
   * inserts its task, at once.
   *
   * @param fire The tick.
   * @returns Whether it fired, and the insert's outcome.
   * @throws {TypeError} When the task's payload cannot be stored.
   * @throws {Error} When the store is closed.
   */
  fireSchedule(fire: ScheduleFire): Promise<ScheduleFireOutcome> {
    try {
      this.#check("run schedule");
      const record = this.#schedules.get(fire.name);
      if (
        record === undefined || record.version !== fire.version ||
        (record.lastTick !== null && record.lastTick >= fire.tick)
      ) {
        return Promise.resolve({ fired: false, inserted: null });
      }
      this.checkValue(fire.task.payload, "payload");
      const { inserted } = this.#commit(insertOnlyBatch([fire.task], fire.now));
      record.lastTick = fire.tick;
      record.nextTick = fire.nextTick;
      record.updatedAt = fire.now;
      record.version++;
      return Promise.resolve({ fired: true, inserted: inserted[0]! });
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
    this.#schedules.clear();
    this.#byKey.clear();
    this.#running.clear();
    this.#ready.clear();
    this.#claimable.clear();
    for (const finished of this.#finished.values()) {
      for (const status of FINISHED_STATUSES) finished[status].clear();
    }
    this.#finished.clear();
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

/**
 * The oldest task of `status` in one queue's finished indexes if the
 * queue's rule lets it go: beyond the count kept, or finished before the
 * cutoff.
 */
function prunableHead(
  finished: Record<Finished, OrderedIndex>,
  status: Finished,
  rules: CheckedRules,
  held: StatusCounts,
): IndexEntry | undefined {
  const entry = finished[status].peek();
  if (entry === undefined) return undefined;
  const { before, keep } = rules[status];
  const over = keep !== null && held[status] > keep;
  return over || (before !== null && entry.at < before) ? entry : undefined;
}
