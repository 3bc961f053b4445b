/**
 * Intake: checks a submission, answers duplicates, holds a channel slot
 * while the insert commits, and turns the committed row into a queued
 * entry (claimed at insert, for this process to run) or a remote one
 * (scheduled for later, or run by another process).
 *
 * Transitions it owns: a new entry → `reserved`; `reserved` → `queued` or
 * `remote` once the insert is committed; `reserved` → leaving the table
 * when the insert fails or finds the key taken.
 *
 * @module
 */
import { type Channel, type ChannelSlot, QueueFullError } from "../channel.ts";
import { turnNow } from "../_clock.ts";
import { uuidv7 } from "../_id.ts";
import type { RetryPolicy } from "../retry.ts";
import {
  checkQueueName,
  DEFAULT_QUEUE,
  isPriority,
  isQueueName,
  MAX_PRIORITY,
} from "../store/_shared.ts";
import type {
  InsertOutcome,
  NewTask,
  TaskRecord,
  TaskStore,
} from "../store/store.ts";
import type { TaskEvents } from "./events.ts";
import { SubmittedIds } from "./submitted_ids.ts";
import type { TaskTable } from "./task_table.ts";
import {
  deferred,
  type DueSink,
  entryOf,
  failureOf,
  QueueClosedError,
  type TaskEntry,
  type TaskHandle,
  type TaskInput,
} from "./types.ts";

/** Where admitted tasks go: the dispatcher's side of intake. */
export interface AdmitSink extends DueSink {
  /** Takes a task claimed at insert into the slot intake holds for it. */
  admit(slot: ChannelSlot<TaskEntry>, entry: TaskEntry): void;
}

/** What intake asks of the group commit. */
export interface InsertCommits {
  /** Inserts `task` for `entry` in the next batch. */
  insert(entry: TaskEntry, task: NewTask): void;
}

/** Options of {@linkcode Intake}. */
export interface IntakeOptions {
  /**
   * Whether this queue runs tasks (then it claims its own at insert).
   */
  consuming: boolean;
  /**
   * Whether this process runs tasks of `queue` and `type`: only those are
   * claimed at insert; the rest wait in the store for a process that
   * does.
   */
  runsHere: (queue: string, type: string) => boolean;
  /**
   * When no other process can run what this one does not (a memory store
   * of its own): the task types it runs, named in the error that refuses
   * any other type or queue. `null`: another process may.
   */
  onlyRunner: { types: readonly string[]; queues: readonly string[] } | null;
  /**
   * Whether this process may take one more task of `queue` now (its
   * per-queue concurrency limit): a task it may not is inserted unclaimed
   * and claimed once there is room.
   */
  hasRoom: (queue: string) => boolean;
  /** Epoch-ms clock. */
  now: () => number;
}

/** A submission whose insert is being committed. */
interface Admission {
  /** Its channel slot; none for a producer-only atomic batch. */
  slot: ChannelSlot<TaskEntry> | undefined;
  /** Whether the caller will not wait for the result (`detached`). */
  detached: boolean;
  result: PromiseWithResolvers<TaskHandle>;
}

/** Takes submissions in. Owned by the queue. */
export class Intake {
  #table: TaskTable;
  #channel: Channel<TaskEntry>;
  #commits: InsertCommits;
  #events: TaskEvents;
  #store: TaskStore;
  #retry: RetryPolicy;
  #options: IntakeOptions;
  #sink: AdmitSink | null = null;
  /**
   * Reserved entries, by entry: the slot each holds and its caller. A new
   * map once it empties, as the task table's maps are (see `TaskTable`).
   */
  #admissions = new Map<TaskEntry, Admission>();
  #closed = false;

  /**
   * @param table The task table.
   * @param channel The bounded channel whose slots bound intake.
   * @param commits The group commit.
   * @param events Where submissions are reported.
   * @param store The store, for keys and value checks.
   * @param retry The retry policy, for the default attempt limit.
   * @param options Consuming or not, and the clock.
   */
  constructor(
    table: TaskTable,
    channel: Channel<TaskEntry>,
    commits: InsertCommits,
    events: TaskEvents,
    store: TaskStore,
    retry: RetryPolicy,
    options: IntakeOptions,
  ) {
    this.#table = table;
    this.#channel = channel;
    this.#commits = commits;
    this.#events = events;
    this.#store = store;
    this.#retry = retry;
    this.#options = options;
  }

  /** Connects the dispatcher, which takes admitted tasks. */
  connect(sink: AdmitSink): void {
    this.#sink = sink;
  }

  /** Refuses submissions from now on. */
  close(): void {
    this.#closed = true;
  }

  /** Submits one task; resolves once it is committed. */
  submit(task: TaskInput, signal?: AbortSignal): Promise<TaskHandle> {
    try {
      this.#checkOpen("task");
      return this.#accept(
        this.#prepare(task, null),
        signal,
        undefined,
        false,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Submits several tasks, all checked first. Under "reject", or when
   * `atomic`, the batch is accepted whole or not at all; `atomic` also
   * commits it in one transaction. A `detached` task that another process
   * will run (or that is already in the store) is forgotten here once
   * committed: its handle's result is not tracked.
   */
  async submitMany(
    tasks: readonly TaskInput[],
    signal?: AbortSignal,
    atomic = false,
    detached = false,
  ): Promise<TaskHandle[]> {
    this.#checkOpen("tasks");
    if (!Array.isArray(tasks)) {
      throw new TypeError("Cannot submit tasks: tasks must be an array");
    }
    const prepared = tasks.map((task, i) => this.#prepare(task, i));
    if (atomic) return await this.#acceptAll(prepared, detached);
    if (this.#channel.overflow !== "reject") {
      return await Promise.all(
        prepared.map((p) => this.#accept(p, signal, undefined, detached)),
      );
    }
    // All or nothing: a batch that does not fit is refused whole, so the
    // caller never holds a half-accepted batch without its handles.
    const slots: ChannelSlot<TaskEntry>[] = [];
    while (slots.length < prepared.length) {
      const slot = this.#channel.tryReserve();
      if (slot === undefined) break;
      slots.push(slot);
    }
    if (slots.length < prepared.length) {
      for (const slot of slots) slot[Symbol.dispose]();
      this.#events.emit("rejected", {
        type: prepared[0]?.type ?? "",
        capacity: this.#channel.capacity,
        count: prepared.length,
      });
      throw new QueueFullError(prepared, this.#channel.capacity);
    }
    return await Promise.all(
      prepared.map((p, i) => this.#accept(p, signal, slots[i], detached)),
    );
  }

  /**
   * Submits every task of `source` in one transaction, a batch at a time,
   * each task checked as by `submitMany` (named by its index in the whole
   * source): all of them, or none when one is malformed, the source
   * throws, `signal` aborts or the store fails. The tasks bypass the task
   * table, the channel and the group commit: they are inserted unclaimed,
   * for any consumer (this queue's dispatcher included) to claim once
   * committed, and only their ids are kept, compactly. A store without
   * `insertAll` gets them as one commit, held whole in memory.
   */
  async submitAll(
    source:
      | AsyncIterable<readonly TaskInput[]>
      | Iterable<readonly TaskInput[]>,
    signal?: AbortSignal,
  ): Promise<SubmittedIds> {
    this.#checkOpen("tasks");
    signal?.throwIfAborted();
    const ids = new SubmittedIds();
    const now = this.#options.now();
    let index = 0;
    const prepared = async function* (
      intake: Intake,
    ): AsyncGenerator<NewTask[]> {
      for await (const tasks of source) {
        signal?.throwIfAborted();
        intake.#checkOpen("tasks");
        if (!Array.isArray(tasks)) {
          throw new TypeError(
            `Cannot submit tasks: each batch must be an array, got ${typeof tasks}`,
          );
        }
        const batch: NewTask[] = [];
        for (const task of tasks) {
          const checked = intake.#prepare(task, index++);
          checked.claim = false;
          batch.push(checked);
        }
        yield batch;
      }
    };
    const onInserted = (outcomes: InsertOutcome[]): void => {
      for (const { record, inserted } of outcomes) {
        ids.push(record.id, !inserted);
      }
    };
    const store = this.#store;
    if (store.insertAll !== undefined) {
      await store.insertAll(prepared(this), { now, onInserted });
    } else {
      const inserts: NewTask[] = [];
      for await (const batch of prepared(this)) {
        for (const task of batch) inserts.push(task);
      }
      const { inserted } = await store.commit({
        settles: [],
        inserts,
        claimDue: 0,
        leaseMs: 0,
        now,
      });
      onInserted(inserted);
    }
    if (this.#options.consuming && ids.submitted > 0) this.#sink?.wake();
    return ids;
  }

  /**
   * Accepts a checked batch in one transaction: every insert is asked for
   * in this turn, so one commit carries them all, and a failed commit
   * refuses them all. Duplicate keys are answered by the store's conflict
   * check. A consuming queue holds a channel slot for each task first.
   */
  async #acceptAll(
    tasks: NewTask[],
    detached: boolean,
  ): Promise<TaskHandle[]> {
    const slots: ChannelSlot<TaskEntry>[] = [];
    if (this.#options.consuming) {
      if (tasks.length > this.#channel.capacity) {
        throw new RangeError(
          `Cannot submit tasks atomically: ${tasks.length} tasks exceed the channel's capacity of ${this.#channel.capacity}`,
        );
      }
      while (slots.length < tasks.length) {
        const slot = this.#channel.tryReserve();
        if (slot === undefined) break;
        slots.push(slot);
      }
      if (slots.length < tasks.length) {
        for (const slot of slots) slot[Symbol.dispose]();
        this.#events.emit("rejected", {
          type: tasks[0]?.type ?? "",
          capacity: this.#channel.capacity,
          count: tasks.length,
        });
        throw new QueueFullError(tasks, this.#channel.capacity);
      }
    }
    const admitted = tasks.map((task, i) =>
      this.#insert(task, slots[i], detached)
    );
    return await Promise.all(admitted);
  }

  #checkOpen(what: string): void {
    if (this.#closed) {
      throw new QueueClosedError(`Cannot submit ${what}: queue is closed`);
    }
  }

  /**
   * Checks a submission and makes its insert. `at` is its index in a batch
   * (`tasks[at]` in messages), `null` for a single task; the name is built
   * only for a message: a string made from each of a million indexes would
   * also fill V8's cache of number strings, whose entries outlive scavenges.
   */
  #prepare(task: TaskInput, at: number | null): NewTask {
    if (typeof task !== "object" || task === null) {
      throw new TypeError(
        `Cannot submit ${named(at)}: expected an object, got ${String(task)}`,
      );
    }
    const {
      type,
      payload = null,
      idempotencyKey,
      maxAttempts,
      runAt,
      dedupeFor,
      queue = DEFAULT_QUEUE,
      priority,
    } = task;
    // The default queue, the common case, needs no check.
    if (queue !== DEFAULT_QUEUE && !isQueueName(queue)) {
      checkQueueName(queue, "queue", `submit ${named(at)}`);
    }
    if (priority !== undefined && !isPriority(priority)) {
      throw new RangeError(
        `Cannot submit ${
          named(at)
        }: priority must be an integer from -${MAX_PRIORITY} to ${MAX_PRIORITY}, got ${
          String(priority)
        }`,
      );
    }
    if (typeof type !== "string" || type.length === 0) {
      throw new TypeError(
        `Cannot submit ${named(at)}: type must be a non-empty string`,
      );
    }
    if (!isStorableText(type)) checkText(type, `submit ${named(at)}`, "type");
    if (idempotencyKey !== undefined) {
      if (typeof idempotencyKey !== "string" || idempotencyKey === "") {
        throw new TypeError(
          `Cannot submit ${
            named(at)
          }: idempotencyKey must be a non-empty string`,
        );
      }
      if (!isStorableText(idempotencyKey)) {
        checkText(idempotencyKey, `submit ${named(at)}`, "idempotencyKey");
      }
    }
    if (
      maxAttempts !== undefined &&
      (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    ) {
      throw new RangeError(
        `Cannot submit ${
          named(at)
        }: maxAttempts must be an integer >= 1, got ${maxAttempts}`,
      );
    }
    const runAtMs = runAt instanceof Date ? runAt.getTime() : runAt;
    if (runAtMs !== undefined && !Number.isFinite(runAtMs)) {
      throw new TypeError(
        `Cannot submit ${named(at)}: runAt must be a finite time`,
      );
    }
    try {
      this.#store.checkValue(payload, "payload");
    } catch (error) {
      const reason = (error as Error).message.replace(/^Cannot [^:]*: /, "");
      throw new TypeError(`Cannot submit ${named(at)}: ${reason}`, {
        cause: error,
      });
    }
    const key = idempotencyKey ?? defaultIdempotencyKey(type, payload);
    if (dedupeFor !== undefined) {
      if (
        typeof dedupeFor !== "number" || !Number.isFinite(dedupeFor) ||
        dedupeFor <= 0
      ) {
        throw new RangeError(
          `Cannot submit ${
            named(at)
          }: dedupeFor must be a finite number of ms > 0, got ${
            String(dedupeFor)
          }`,
        );
      }
      if (key === null) {
        throw new TypeError(
          `Cannot submit ${named(at)}: dedupeFor needs an idempotencyKey`,
        );
      }
    }
    const runsHere = this.#options.consuming &&
      this.#options.runsHere(queue, type);
    const only = this.#options.onlyRunner;
    if (only !== null && !runsHere) {
      throw new TypeError(
        only.queues.includes(queue)
          ? `Cannot submit ${named(at)}: unknown task type ${
            JSON.stringify(type)
          } (known types: ${only.types.join(", ") || "none"})`
          : `Cannot submit ${named(at)}: queue ${
            JSON.stringify(queue)
          } is not one this queue runs (${only.queues.join(", ")})`,
      );
    }
    const now = this.#options.now();
    // Every field is set, so that every task has one shape.
    return {
      id: uuidv7(),
      type,
      idempotencyKey: key,
      payload,
      dedupeUntil: dedupeFor === undefined ? null : Math.ceil(now + dedupeFor),
      maxAttempts: maxAttempts ?? this.#retry.maxAttempts,
      runAt: Math.floor(runAtMs ?? now),
      queue,
      priority: priority ?? 0,
      // A task this process will run now is inserted already claimed: no
      // separate claim write, and no other claimer can take it meanwhile.
      claim: runsHere && (runAtMs === undefined || runAtMs <= now),
    };
  }

  /**
   * Accepts one checked task. `slot` is a channel slot the caller already
   * holds for it (an all-or-nothing batch); it is given back when the task
   * turns out to be a duplicate.
   */
  #accept(
    task: NewTask,
    signal: AbortSignal | undefined,
    held: ChannelSlot<TaskEntry> | undefined,
    detached: boolean,
  ): Promise<TaskHandle> {
    // The common case, a task without a key and room in the channel, takes
    // no await before its insert is asked for.
    if (task.idempotencyKey === null) {
      const slot = held ?? this.#channel.tryReserve();
      if (slot !== undefined) return this.#insert(task, slot, detached);
    }
    return this.#acceptSlowly(task, signal, held, detached);
  }

  /** Accepts a task that has a key to check, or must wait for room. */
  async #acceptSlowly(
    task: NewTask,
    signal: AbortSignal | undefined,
    held: ChannelSlot<TaskEntry> | undefined,
    detached: boolean,
  ): Promise<TaskHandle> {
    using owned = new SlotHolder(held);
    const key = task.idempotencyKey;
    if (key !== null) {
      const existing = await this.#duplicate(key, detached);
      if (existing !== undefined) return existing;
    }
    this.#checkOpen("task");
    owned.slot ??= await this.#reserve(task, signal);
    return await this.#insert(task, owned.take(), detached);
  }

  /**
   * Inserts a checked task whose channel slot the caller hands over (none
   * for a producer-only atomic batch): a `reserved` entry until the insert
   * is committed.
   */
  #insert(
    task: NewTask,
    slot: ChannelSlot<TaskEntry> | undefined,
    detached: boolean,
  ): Promise<TaskHandle> {
    // Room in a limited queue is judged here, as the entry is counted, so
    // that the tasks of one batch see each other.
    if (
      task.claim === true && !this.#options.hasRoom(task.queue ?? DEFAULT_QUEUE)
    ) {
      task.claim = false;
    }
    const entry = newEntry(task, this.#options.consuming, detached);
    const admission: Admission = {
      slot,
      detached,
      result: Promise.withResolvers<TaskHandle>(),
    };
    // A second task of this batch with the same key is left to the store's
    // conflict check; the table indexes the first.
    this.#table.add(entry);
    this.#admissions.set(entry, admission);
    this.#commits.insert(entry, task);
    return admission.result.promise;
  }

  async #reserve(
    task: NewTask,
    signal: AbortSignal | undefined,
  ): Promise<ChannelSlot<TaskEntry>> {
    try {
      return await this.#channel.reserve(
        signal === undefined ? {} : { signal },
      );
    } catch (error) {
      if (error instanceof QueueFullError) {
        this.#events.emit("rejected", {
          type: task.type,
          capacity: this.#channel.capacity,
          count: 1,
        });
        throw new QueueFullError(task, this.#channel.capacity, {
          cause: error,
        });
      }
      throw error;
    }
  }

  /**
   * The handle of a live or stored task with this key, or `undefined` when
   * the key is free. A task whose insert is still committing here is
   * waited for, so both callers get one id.
   */
  async #duplicate(
    key: string,
    detached: boolean,
  ): Promise<TaskHandle | undefined> {
    for (;;) {
      const live = this.#table.byKey(key);
      if (live === undefined) break;
      if (windowEnded(live.dedupeUntil, this.#options.now())) {
        // The store gives the key to the new task when it inserts it.
        this.#table.releaseKey(live);
        break;
      }
      const admission = this.#admissions.get(live);
      if (admission === undefined) return this.#handleOf(live, true);
      // Settles either way; a failed insert leaves the key free again.
      await admission.result.promise.catch(() => {});
    }
    const record = await this.#store.getByKey(key);
    if (
      record === undefined ||
      windowEnded(record.dedupeUntil, this.#options.now())
    ) return undefined;
    return this.#fromRecord(record, detached);
  }

  /** Reports that a submission was answered by `task`, an earlier one. */
  #deduplicated(
    task: Pick<TaskRecord, "id" | "type" | "queue" | "idempotencyKey">,
  ): void {
    this.#events.emit("deduplicated", {
      id: task.id,
      type: task.type,
      queue: task.queue,
      idempotencyKey: task.idempotencyKey,
    });
  }

  #handleOf(entry: TaskEntry, deduplicated: boolean): TaskHandle {
    entry.handle ??= deferred();
    if (deduplicated) {
      this.#deduplicated(entry);
    }
    return {
      id: entry.id,
      idempotencyKey: entry.idempotencyKey,
      deduplicated,
      result: entry.handle.promise as Promise<never>,
    };
  }

  /** The handle of a stored task with the key a submission asked for. */
  #fromRecord(record: TaskRecord, detached: boolean): TaskHandle {
    if (record.status === "succeeded" || record.status === "dead") {
      this.#deduplicated(record);
      const result = record.status === "succeeded"
        ? Promise.resolve(record.result)
        : Promise.reject(failureOf(record));
      result.catch(() => {});
      return {
        id: record.id,
        idempotencyKey: record.idempotencyKey,
        deduplicated: true,
        result: result as Promise<never>,
      };
    }
    if (detached) {
      this.#deduplicated(record);
      return detachedHandle(record.id, record.idempotencyKey, true);
    }
    return this.#handleOf(this.#waitFor(record), true);
  }

  /**
   * The entry through which this process waits for an unfinished stored
   * task, whoever runs it (this process or another): the one the table
   * holds, or a new remote one.
   */
  #waitFor(record: TaskRecord): TaskEntry {
    let entry = this.#table.get(record.id);
    if (entry === undefined) {
      entry = entryOf(record, "remote", false, this.#options.now());
      if (record.status === "running") entry.runAt = -Infinity;
      this.#table.add(entry);
      if (this.#options.consuming) this.#sink?.wake();
    }
    return entry;
  }

  /**
   * The result of a stored task this process did not submit through
   * `submit` (one a caller's transaction inserted): at once when it is
   * finished, else once whoever runs it settles it.
   */
  follow(record: TaskRecord): Promise<unknown> {
    if (record.status === "succeeded") return Promise.resolve(record.result);
    if (record.status === "dead") return Promise.reject(failureOf(record));
    const entry = this.#waitFor(record);
    entry.handle ??= deferred();
    return entry.handle.promise;
  }

  /**
   * Checks a task as `submit` does, for an insert through a caller's
   * transaction: unclaimed, since nothing may run it before the caller
   * commits.
   */
  prepareUnclaimed(task: TaskInput): NewTask {
    this.#checkOpen("task");
    const prepared = this.#prepare(task, null);
    prepared.claim = false;
    return prepared;
  }

  /** Takes the admission of an entry whose insert has ended. */
  #admitted(entry: TaskEntry): Admission | undefined {
    const admission = this.#admissions.get(entry);
    this.#admissions.delete(entry);
    if (this.#admissions.size === 0) this.#admissions = new Map();
    return admission;
  }

  /** Inserts committed: queue what was claimed, park what waits. */
  inserted(entries: TaskEntry[], outcomes: InsertOutcome[]): void {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const outcome = outcomes[i]!;
      const admission = this.#admitted(entry)!;
      if (!outcome.inserted) {
        // Another process (or an earlier batch) holds the key.
        admission.slot?.[Symbol.dispose]();
        this.#table.remove(entry);
        admission.result.resolve(
          this.#fromRecord(outcome.record, admission.detached),
        );
        continue;
      }
      const record = outcome.record;
      let handle: TaskHandle;
      if (record.status === "running" && admission.slot !== undefined) {
        handle = this.#handleOf(entry, false);
        entry.version = record.version;
        entry.leaseUntil = record.leaseUntil ?? 0;
        this.#table.move(entry, "queued");
        this.#sink!.admit(admission.slot, entry);
      } else {
        // Scheduled for later, or for another process to run.
        admission.slot?.[Symbol.dispose]();
        if (admission.detached) {
          // Nobody here waits for it: forget it, so a producer holds
          // nothing per task it submitted.
          this.#table.remove(entry);
          handle = detachedHandle(entry.id, entry.idempotencyKey, false);
        } else {
          handle = this.#handleOf(entry, false);
          this.#table.move(entry, "remote");
        }
        if (this.#options.consuming) this.#sink?.dueAt(record.runAt);
      }
      this.#events.emit("submitted", {
        id: entry.id,
        type: entry.type,
        queue: entry.queue,
        idempotencyKey: entry.idempotencyKey,
        depth: this.#channel.depth,
      });
      admission.result.resolve(handle);
    }
  }

  /** Inserts refused with their batch: those tasks were not accepted. */
  insertFailed(entries: TaskEntry[], error: unknown): void {
    for (const entry of entries) {
      const admission = this.#admitted(entry);
      this.#table.remove(entry);
      entry.handle?.reject(error);
      if (admission === undefined) continue;
      admission.slot?.[Symbol.dispose]();
      admission.result.reject(error);
    }
  }
}

/**
 * The handle of a task submitted `detached`: its result is not tracked, and
 * says so if awaited (the rejection is already handled, so ignoring it is
 * safe).
 */
export function detachedHandle(
  id: string,
  idempotencyKey: string | null,
  deduplicated: boolean,
): TaskHandle {
  return new DetachedHandle(id, idempotencyKey, deduplicated);
}

/**
 * A detached task's handle. Its `result`, a rejection, is made when first
 * read: a producer seldom reads it, and an error with its stack trace and
 * two promises for every task submitted were a fifth of what `cli.ts
 * submit` allocated.
 */
class DetachedHandle implements TaskHandle<never> {
  readonly id: string;
  readonly idempotencyKey: string | null;
  readonly deduplicated: boolean;
  #result: Promise<never> | undefined;

  constructor(
    id: string,
    idempotencyKey: string | null,
    deduplicated: boolean,
  ) {
    this.id = id;
    this.idempotencyKey = idempotencyKey;
    this.deduplicated = deduplicated;
  }

  get result(): Promise<never> {
    if (this.#result === undefined) {
      const result = Promise.reject(
        new Error(
          `Cannot wait for task ${this.id}: it was submitted detached; read its outcome with getTask()`,
        ),
      );
      result.catch(() => {});
      this.#result = result;
    }
    return this.#result;
  }
}

/**
 * Whether a key's window (`dedupeUntil`, `null` for none) is over at `now`:
 * it holds through its last millisecond, as the stores count it.
 */
function windowEnded(dedupeUntil: number | null, now: number): boolean {
  return dedupeUntil !== null && now > dedupeUntil;
}

/**
 * The entry of a task being inserted: `reserved`, with a handle unless it
 * is `detached` (one is made if it turns out to be needed: the task is
 * claimed at insert, or someone follows it). Built directly from the task,
 * since no record exists yet.
 */
function newEntry(task: NewTask, local: boolean, detached: boolean): TaskEntry {
  return {
    id: task.id,
    type: task.type,
    queue: task.queue ?? DEFAULT_QUEUE,
    payload: task.payload,
    attempt: 1,
    idempotencyKey: task.idempotencyKey,
    state: "reserved",
    local,
    maxAttempts: task.maxAttempts,
    version: 0,
    dedupeUntil: task.dedupeUntil ?? null,
    leaseUntil: 0,
    charge: "none",
    handle: detached ? null : deferred(),
    runAt: task.runAt,
    acceptedAt: turnNow(),
    leaseLost: false,
    cancelled: false,
    pending: null,
    checkpoint: undefined,
  };
}

/** Owns a channel slot until it is taken; gives it back on dispose. */
class SlotHolder implements Disposable {
  slot: ChannelSlot<TaskEntry> | undefined;

  constructor(slot: ChannelSlot<TaskEntry> | undefined) {
    this.slot = slot;
  }

  take(): ChannelSlot<TaskEntry> | undefined {
    const slot = this.slot;
    this.slot = undefined;
    return slot;
  }

  [Symbol.dispose](): void {
    this.slot?.[Symbol.dispose]();
  }
}

/** Refuses strings no store can hold faithfully: NUL, lone surrogates. */
/**
 * Refuses text a store cannot keep verbatim (U+0000, a lone surrogate),
 * naming the field and the action ("Cannot <action>: <field> …").
 *
 * @param value The text.
 * @param action What was being done, such as `submit task`.
 * @param field Which field it is.
 * @throws {TypeError} When it holds U+0000 or a lone surrogate.
 */
export function checkText(value: string, action: string, field: string): void {
  if (!isStorableText(value)) {
    throw new TypeError(
      `Cannot ${action}: ${field} ${
        JSON.stringify(value)
      } contains U+0000 or a lone surrogate`,
    );
  }
}

/** Whether a store can keep `value` verbatim: no U+0000, no lone surrogate. */
function isStorableText(value: string): boolean {
  return !value.includes("\0") && value.isWellFormed();
}

/** How a submission is named in messages: `task`, or `tasks[i]` in a batch. */
function named(at: number | null): string {
  return at === null ? "task" : `tasks[${at}]`;
}

function defaultIdempotencyKey(type: string, payload: unknown): string | null {
  if (
    type !== "image.variant" || typeof payload !== "object" || payload === null
  ) return null;
  const { image_key, size } = payload as {
    image_key?: unknown;
    size?: unknown;
  };
  return typeof image_key === "string" && typeof size === "string"
    ? `${image_key}:${size}`
    : null;
}
