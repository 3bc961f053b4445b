/**
 * The conformance suite every {@linkcode TaskStore} must pass. It uses only
 * the interface, so each implementation (SQLite over either driver,
 * PostgreSQL, memory) runs the same cases.
 *
 * @module
 */
import assert from "node:assert/strict";
import type {
  CommitBatch,
  NewSchedule,
  NewTask,
  RetentionPolicy,
  RetentionRule,
  ScheduleFire,
  ScheduleRecord,
  Settlement,
  Start,
  StatusCounts,
  TaskRecord,
  TaskStore,
} from "../../lib/store/store.ts";

/** The clock of the store tests: an epoch-ms time past 2^32, so 32-bit truncation would show. */
export const T0 = 1_700_000_000_000;
/** The lease the store tests claim with. */
export const LEASE = 30_000;

/** A new task with test defaults. */
export function task(id: string, fields: Partial<NewTask> = {}): NewTask {
  return {
    id,
    type: "compute",
    idempotencyKey: null,
    payload: { id },
    maxAttempts: 3,
    runAt: T0,
    ...fields,
  };
}

/** A commit batch with test defaults: nothing but `fields`. */
export function batch(fields: Partial<CommitBatch>): CommitBatch {
  return {
    settles: [],
    inserts: [],
    claimDue: 0,
    leaseMs: LEASE,
    now: T0,
    ...fields,
  };
}

function ids(records: TaskRecord[]): string[] {
  return records.map((record) => record.id);
}

function succeed(record: TaskRecord, result: unknown = null): Settlement {
  return {
    id: record.id,
    version: record.version,
    outcome: { kind: "succeeded", result, outputKey: null },
  };
}

function retry(record: TaskRecord, runAt: number): Settlement {
  return {
    id: record.id,
    version: record.version,
    outcome: {
      kind: "retry",
      runAt,
      error: "Cannot fetch: 503",
      errorClass: "transient",
    },
  };
}

/** The claim's fencing pair, as a start, release or renewal presents it. */
function fence(record: TaskRecord): Start {
  return { id: record.id, version: record.version };
}

function kill(record: TaskRecord): Settlement {
  return {
    id: record.id,
    version: record.version,
    outcome: {
      kind: "dead",
      error: "Cannot run: bad",
      errorClass: "permanent",
    },
  };
}

/**
 * Inserts the tasks already claimed at `now` (no attempt charged) and
 * returns their records.
 */
async function claimAll(
  store: TaskStore,
  tasks: NewTask[],
  now = T0,
  leaseMs = LEASE,
): Promise<TaskRecord[]> {
  const { inserted } = await store.commit(batch({
    inserts: tasks.map((t) => ({ ...t, claim: true })),
    now,
    leaseMs,
  }));
  assert.ok(inserted.every((o) => o.inserted));
  return inserted.map((o) => o.record);
}

/** Claims the tasks as {@linkcode claimAll} does, then starts each handler. */
async function startAll(
  store: TaskStore,
  tasks: NewTask[],
  now = T0,
  leaseMs = LEASE,
): Promise<TaskRecord[]> {
  const claims = await claimAll(store, tasks, now, leaseMs);
  const { started } = await store.commit(
    batch({ starts: claims.map(fence), now, leaseMs }),
  );
  assert.ok(started.every((ok) => ok));
  return claims;
}

/** How a finished task ended, and when (its `updatedAt`). */
type Ending = [id: string, outcome: "succeeded" | "dead", at: number];

/**
 * Inserts the tasks claimed at {@linkcode T0}, then settles each at its
 * own time, in the order given, one commit per time.
 */
async function finish(store: TaskStore, endings: Ending[]): Promise<void> {
  const claims = await claimAll(store, endings.map(([id]) => task(id)));
  const times = [...new Set(endings.map(([, , at]) => at))];
  for (const at of times) {
    const settles = endings.flatMap(([id, outcome, when], i) =>
      when !== at
        ? []
        : [outcome === "succeeded" ? succeed(claims[i]!, id) : kill(claims[i]!)]
    );
    const { settled } = await store.commit(batch({ now: at, settles }));
    assert.ok(settled.every((ok) => ok));
  }
}

/** Which of `ids` the store still holds. */
async function kept(store: TaskStore, wanted: string[]): Promise<string[]> {
  const found = await Promise.all(wanted.map((id) => store.get(id)));
  return wanted.filter((_, i) => found[i] !== undefined);
}

/** Counts by status, from a full listing: what status() must report. */
/** `count` tasks named `prefix0`, `prefix1`, … */
function tasks(
  prefix: string,
  count: number,
  fields: Partial<NewTask> = {},
): NewTask[] {
  return Array.from({ length: count }, (_, i) => task(`${prefix}${i}`, fields));
}

/** Yields `batches` in turn, as a streamed source. */
async function* stream(
  batches: readonly (readonly NewTask[])[],
): AsyncGenerator<readonly NewTask[]> {
  for (const b of batches) {
    await Promise.resolve();
    yield b;
  }
}

/**
 * Runs `store.insertAll` over `batches`, returning the outcomes per batch
 * as `[id, inserted]` pairs.
 */
async function insertAll(
  store: TaskStore,
  batches: AsyncIterable<readonly NewTask[]>,
  now = T0,
): Promise<[string, boolean][][]> {
  assert.ok(store.insertAll, `${store.kind} implements insertAll`);
  const seen: [string, boolean][][] = [];
  await store.insertAll(batches, {
    now,
    onInserted: (outcomes) =>
      seen.push(outcomes.map((o) => [o.record.id, o.inserted])),
  });
  return seen;
}

async function listedCounts(store: TaskStore): Promise<StatusCounts> {
  const counts = { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
  for (const record of await store.list()) counts[record.status]++;
  return counts;
}

/**
 * Checks that `status()` at `now` reports, in all and per queue, the
 * counts of the tasks `list()` reads (a queue that holds none now may be
 * reported with zero counts).
 */
async function checkCounts(
  store: TaskStore,
  step: string,
  now = T0,
): Promise<void> {
  const status = await store.status(now);
  assert.deepEqual(status.counts, await listedCounts(store), step);
  const listed = new Map<string, StatusCounts>();
  for (const record of await store.list()) {
    let counts = listed.get(record.queue);
    if (counts === undefined) {
      counts = { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
      listed.set(record.queue, counts);
    }
    counts[record.status]++;
  }
  const none = { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
  const names = status.queues.map((q) => q.queue);
  assert.deepEqual(names, [...names].sort(), `${step}: queues by name`);
  for (const name of listed.keys()) {
    assert.ok(names.includes(name), `${step}: queue ${name} reported`);
  }
  for (const { queue, counts } of status.queues) {
    assert.deepEqual(counts, listed.get(queue) ?? none, `${step}: ${queue}`);
  }
}

/**
 * Checks a store just migrated from a schema without kept counts, whose
 * rows by status are `counts` (at least two succeeded and one dead, all
 * finished before `T0 + 10`): `status()` reports them, the totals start
 * from them (`submitted` from every row), and a prune through the prune
 * indexes lowers the counts but no total.
 *
 * @param store The migrated store.
 * @param counts Its rows by status.
 */
export async function checkSeededCounts(
  store: TaskStore,
  counts: StatusCounts,
): Promise<void> {
  const rows = Object.values(counts).reduce((sum, n) => sum + n, 0);
  const totals = {
    submitted: rows,
    succeeded: counts.succeeded,
    dead: counts.dead,
  };
  const status = await store.status(T0);
  assert.deepEqual(status.counts, counts);
  assert.deepEqual(status.totals, totals);
  assert.deepEqual(
    await store.prune(
      { succeeded: { maxCount: 1 }, dead: { maxAgeMs: 0 } },
      T0 + 10,
      100,
    ),
    { succeeded: counts.succeeded - 1, dead: counts.dead, skipped: false },
  );
  const after = await store.status(T0);
  assert.deepEqual(after.counts, { ...counts, succeeded: 1, dead: 0 });
  assert.deepEqual(after.totals, totals);
}

/**
 * Checks a store just migrated to counts by queue from a schema with
 * counts by status only, whose rows were `a1`, `a2` (succeeded, finished
 * at `T0 + 1` and `T0 + 2`) and `a3` (queued) in queue `a`, and `d1`
 * (succeeded) and `d2` (dead) in the default queue, with totals of 20
 * submitted, 10 succeeded and 3 dead: the totals stay and go to the
 * default queue, each queue's counts come from its rows, and each queue
 * prunes by its own count.
 *
 * @param store The migrated store.
 */
export async function checkCountsByQueueMigrated(
  store: TaskStore,
): Promise<void> {
  const status = await store.status(T0);
  const none = { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
  assert.deepEqual(status.counts, {
    ...none,
    queued: 1,
    succeeded: 3,
    dead: 1,
  });
  assert.deepEqual(status.totals, { submitted: 20, succeeded: 10, dead: 3 });
  assert.deepEqual(status.queues, [
    {
      queue: "a",
      counts: { ...none, queued: 1, succeeded: 2 },
      totals: { submitted: 0, succeeded: 0, dead: 0 },
    },
    {
      queue: "default",
      counts: { ...none, succeeded: 1, dead: 1 },
      totals: { submitted: 20, succeeded: 10, dead: 3 },
    },
  ]);
  assert.deepEqual(
    await store.prune({ succeeded: { maxCount: 1 } }, T0 + 10, 100),
    { succeeded: 1, dead: 0, skipped: false },
  );
  assert.equal(await store.get("a1"), undefined);
}

/** What the suite expects of payloads and results. */
export interface ConformanceOptions {
  /**
   * `"json"`: a durable store, which refuses whatever JSON would change.
   * `"clone"`: a store that keeps values as given (memory), which refuses
   * only what cannot be structured-cloned.
   *
   * @default {"json"}
   */
  values?: "json" | "clone";
}

/**
 * A store under test: the interface, plus `recount()`, which every store
 * has for operators but the queue never calls (so it is not part of
 * {@linkcode TaskStore}).
 */
export type ConformanceStore = TaskStore & { recount(): Promise<void> };

/**
 * Registers the conformance cases for one store implementation. Each case
 * opens a fresh, empty store and closes it at the end.
 *
 * @param name Shown in every test name, e.g. `"sqlite-ffi"`.
 * @param open Returns a new, empty store.
 * @param options What the store does with values.
 */
export function storeConformance(
  name: string,
  open: () => Promise<ConformanceStore> | ConformanceStore,
  options: ConformanceOptions = {},
): void {
  const { values = "json" } = options;
  function test(
    title: string,
    body: (store: ConformanceStore) => Promise<void>,
  ): void {
    Deno.test(`[${name}] ${title}`, async () => {
      const store = await open();
      try {
        await body(store);
      } finally {
        await store.close();
      }
    });
  }

  test("TaskStore.commit() inserts a task that get() and getByKey() read back when it is new", async (store) => {
    const payload = {
      text: "héllo ✓",
      list: [1, 2.5, null],
      nested: { a: true },
    };
    const { inserted, claimed, settled } = await store.commit(batch({
      inserts: [
        task("t1", { idempotencyKey: "key-1", payload, runAt: T0 + 5 }),
      ],
    }));
    assert.deepEqual(settled, []);
    assert.deepEqual(claimed, []);
    assert.equal(inserted.length, 1);
    const expected: TaskRecord = {
      id: "t1",
      type: "compute",
      queue: "default",
      priority: 0,
      idempotencyKey: "key-1",
      payload,
      status: "queued",
      attempts: 0,
      maxAttempts: 3,
      runAt: T0 + 5,
      leaseUntil: null,
      startedAt: null,
      createdAt: T0,
      updatedAt: T0,
      dedupeUntil: null,
      outputKey: null,
      result: null,
      lastError: null,
      errorClass: null,
      progress: null,
      checkpoint: null,
      version: 0,
    };
    assert.deepEqual(inserted[0], { inserted: true, record: expected });
    assert.deepEqual(await store.get("t1"), expected);
    assert.deepEqual(await store.getByKey("key-1"), expected);
    assert.equal(await store.get("t2"), undefined);
    assert.equal(await store.getByKey("key-2"), undefined);
  });

  test("TaskStore.commit() returns the existing task with inserted false when the key is a duplicate", async (store) => {
    await store.commit(batch({
      inserts: [task("a", { idempotencyKey: "k", payload: "first" })],
    }));
    const { inserted } = await store.commit(batch({
      now: T0 + 1,
      inserts: [
        task("b", { idempotencyKey: "k", payload: "second" }),
        task("c", { idempotencyKey: "k2", payload: "third" }),
        task("d", { idempotencyKey: "k2", payload: "fourth" }),
        task("e", { idempotencyKey: null }),
        task("f", { idempotencyKey: null }),
      ],
    }));
    assert.deepEqual(
      inserted.map((o) => [o.inserted, o.record.id, o.record.payload]),
      [
        [false, "a", "first"],
        [true, "c", "third"],
        [false, "c", "third"],
        [true, "e", { id: "e" }],
        [true, "f", { id: "f" }],
      ],
    );
    assert.equal(await store.get("b"), undefined);
    assert.equal(await store.get("d"), undefined);
    assert.equal((await store.list()).length, 4);
  });

  test("TaskStore.commit() claims due tasks by runAt, then submission order, up to claimDue, charging no attempt", async (store) => {
    await store.commit(batch({
      inserts: [
        task("late", { runAt: T0 + 300 }),
        task("early", { runAt: T0 + 100 }),
        task("middle", { runAt: T0 + 200 }),
        task("early-too", { runAt: T0 + 100 }),
        task("future", { runAt: T0 + 10_000 }),
      ],
    }));
    const now = T0 + 300;
    const first = await store.commit(batch({ claimDue: 3, now }));
    assert.deepEqual(ids(first.claimed), ["early", "early-too", "middle"]);
    for (const record of first.claimed) {
      assert.equal(record.status, "running");
      assert.equal(record.attempts, 0, "a claim charges no attempt");
      assert.equal(record.version, 1);
      assert.equal(record.leaseUntil, now + LEASE);
      assert.equal(record.startedAt, null);
      assert.equal(record.updatedAt, now);
    }
    assert.deepEqual(await store.get("early"), first.claimed[0]);
    const second = await store.commit(batch({ claimDue: 10, now }));
    assert.deepEqual(ids(second.claimed), ["late"]);
    const third = await store.commit(batch({ claimDue: 10, now }));
    assert.deepEqual(third.claimed, []);
    const last = await store.commit(batch({ claimDue: 10, now: T0 + 10_000 }));
    assert.deepEqual(ids(last.claimed), ["future"]);
  });

  test("TaskStore.commit() claims tasks inserted in the same batch when claimDue is set", async (store) => {
    const { claimed } = await store.commit(batch({
      inserts: [task("a"), task("b"), task("c")],
      claimDue: 2,
    }));
    assert.deepEqual(ids(claimed), ["a", "b"]);
  });

  test("TaskStore.commit() claims only queued tasks and due retries when claimDue asks for more", async (store) => {
    const [done, running, retrying, waiting] = await claimAll(store, [
      task("done"),
      task("running"),
      task("retrying"),
      task("waiting"),
    ]);
    await store.commit(batch({
      now: T0 + 1,
      starts: [done!, running!, retrying!, waiting!].map(fence),
      settles: [
        succeed(done!),
        retry(retrying!, T0 + 10),
        retry(waiting!, T0 + 1_000),
      ],
      inserts: [task("queued"), task("delayed", { runAt: T0 + 1_000 })],
    }));
    const { claimed } = await store.commit(
      batch({ now: T0 + 10, claimDue: 100 }),
    );
    assert.deepEqual(ids(claimed), ["queued", "retrying"]);
    assert.equal(claimed[1]!.attempts, 1, "the earlier start, no new charge");
    assert.equal(claimed[0]!.attempts, 0);
    assert.equal((await store.get("running"))?.version, running!.version);
  });

  test("TaskStore.commit() never claims a task twice when two commits race for it", async (store) => {
    await store.commit(batch({
      inserts: Array.from({ length: 20 }, (_, i) => task(`t${i}`)),
    }));
    const [a, b] = await Promise.all([
      store.commit(batch({ claimDue: 12 })),
      store.commit(batch({ claimDue: 12 })),
    ]);
    const all = [...ids(a!.claimed), ...ids(b!.claimed)];
    assert.equal(new Set(all).size, all.length);
    assert.equal(all.length, 20);
    const { claimed } = await store.commit(batch({ claimDue: 8 }));
    assert.deepEqual(claimed, []);
  });

  test("TaskStore.commit() inserts a task already claimed when claim is set", async (store) => {
    const { inserted, claimed } = await store.commit(batch({
      inserts: [{ ...task("a"), claim: true }, task("b")],
      claimDue: 10,
      now: T0,
      leaseMs: LEASE,
    }));
    const record = inserted[0]!.record;
    assert.equal(record.status, "running");
    assert.equal(record.attempts, 0, "a claimed insert charges no attempt");
    assert.equal(record.version, 1);
    assert.equal(record.leaseUntil, T0 + LEASE);
    assert.equal(record.startedAt, null, "a claimed insert has not started");
    // A claimed insert is not due work: only "b" is claimed by claimDue.
    assert.deepEqual(ids(claimed), ["b"]);
    assert.deepEqual(await store.get("a"), record);
    const { settled } = await store.commit(batch({
      settles: [{
        id: "a",
        version: record.version,
        outcome: { kind: "succeeded", result: 1, outputKey: null },
      }],
    }));
    assert.deepEqual(settled, [true]);
    assert.equal((await store.get("a"))?.status, "succeeded");
    // An expired claimed insert is recovered like any other lease ("b",
    // claimed by claimDue above, expires with it).
    await store.commit(
      batch({
        inserts: [{ ...task("c"), claim: true }],
        now: T0,
        leaseMs: LEASE,
      }),
    );
    assert.equal(await store.recoverExpired(T0 + LEASE + 1), 2);
    assert.equal((await store.get("c"))?.status, "queued");
    assert.equal((await store.get("b"))?.status, "queued");
  });

  test("TaskStore.commit() extends a lease to now + leaseMs only when the renewal presents the claim's version", async (store) => {
    const [a, b] = await claimAll(store, [task("a"), task("b")]);
    const now = T0 + LEASE / 2;
    const { renewed } = await store.commit(batch({
      now,
      leaseMs: 3 * LEASE,
      renewals: [
        { id: "a", version: a!.version },
        { id: "b", version: b!.version + 1 },
        { id: "missing", version: 1 },
      ],
    }));
    assert.deepEqual(renewed, [true, false, false]);
    assert.deepEqual(await store.get("a"), {
      ...a!,
      leaseUntil: now + 3 * LEASE,
    }, "a renewal moves the lease only: same version, attempts, updatedAt");
    assert.equal((await store.get("b"))?.leaseUntil, T0 + LEASE);
    // Past b's lease only b is recovered; a renewal after that is refused.
    assert.equal(await store.recoverExpired(T0 + LEASE + 1), 1);
    const late = await store.commit(batch({
      now: T0 + LEASE + 2,
      renewals: [{ id: "b", version: b!.version }],
    }));
    assert.deepEqual(late.renewed, [false]);
    assert.equal((await store.get("b"))?.status, "queued");
    assert.equal((await store.get("b"))?.leaseUntil, null);
  });

  test("TaskStore.commit() records success when the settle presents the claim's version", async (store) => {
    const [claim] = await startAll(store, [task("a")]);
    const { settled } = await store.commit(batch({
      now: T0 + 7,
      settles: [{
        id: "a",
        version: claim!.version,
        outcome: {
          kind: "succeeded",
          result: { sizes: [64, 128], ok: true },
          outputKey: "out/a.webp",
        },
      }],
    }));
    assert.deepEqual(settled, [true]);
    const record = await store.get("a");
    assert.equal(record?.status, "succeeded");
    assert.deepEqual(record?.result, { sizes: [64, 128], ok: true });
    assert.equal(record?.outputKey, "out/a.webp");
    assert.equal(record?.leaseUntil, null);
    assert.equal(record?.updatedAt, T0 + 7);
    assert.equal(record?.version, claim!.version + 1);
    assert.equal(record?.attempts, 1);
  });

  test("TaskStore.commit() schedules a retry when the settle outcome is retry", async (store) => {
    const [claim] = await startAll(store, [task("a")]);
    const { settled } = await store.commit(batch({
      now: T0 + 1,
      settles: [{
        id: "a",
        version: claim!.version,
        outcome: {
          kind: "retry",
          runAt: T0 + 500,
          error: "Cannot reach upstream: 503",
          errorClass: "transient",
        },
      }],
    }));
    assert.deepEqual(settled, [true]);
    const record = await store.get("a");
    assert.equal(record?.status, "failed");
    assert.equal(record?.runAt, T0 + 500);
    assert.equal(record?.lastError, "Cannot reach upstream: 503");
    assert.equal(record?.errorClass, "transient");
    assert.equal(record?.leaseUntil, null);
    assert.equal(record?.version, 2);
    const early = await store.commit(batch({ claimDue: 5, now: T0 + 499 }));
    assert.deepEqual(early.claimed, []);
    const due = await store.commit(batch({ claimDue: 5, now: T0 + 500 }));
    assert.deepEqual(ids(due.claimed), ["a"]);
    assert.equal(due.claimed[0]!.attempts, 1, "charged at the next start");
    assert.equal(due.claimed[0]!.version, 3);
  });

  test("TaskStore.commit() dead-letters a task when the settle outcome is dead", async (store) => {
    const [claim] = await claimAll(store, [task("a")]);
    const { settled } = await store.commit(batch({
      now: T0 + 3,
      settles: [kill(claim!)],
    }));
    assert.deepEqual(settled, [true]);
    const record = await store.get("a");
    assert.equal(record?.status, "dead");
    assert.equal(record?.lastError, "Cannot run: bad");
    assert.equal(record?.errorClass, "permanent");
    assert.equal(record?.leaseUntil, null);
    const { claimed } = await store.commit(
      batch({ claimDue: 5, now: T0 + 10_000 }),
    );
    assert.deepEqual(claimed, []);
  });

  test("TaskStore.commit() refuses a stale settle when the task was recovered and reclaimed", async (store) => {
    const [old] = await startAll(store, [task("a")], T0, 100);
    assert.equal(await store.recoverExpired(T0 + 101), 1);
    const { claimed } = await store.commit(
      batch({ claimDue: 1, now: T0 + 102 }),
    );
    const current = claimed[0]!;
    assert.equal(current.attempts, 1);
    assert.ok(current.version > old!.version);
    const stale = await store.commit(batch({
      now: T0 + 103,
      settles: [succeed(old!, "late"), succeed(old!, "again")],
    }));
    assert.deepEqual(stale.settled, [false, false]);
    assert.deepEqual(await store.get("a"), current);
    const unknown = await store.commit(batch({
      settles: [{ ...succeed(current), id: "nope" }],
    }));
    assert.deepEqual(unknown.settled, [false]);
    // A stale start, release or renewal is refused the same way.
    const others = await store.commit(batch({
      now: T0 + 103,
      starts: [fence(old!)],
      releases: [{ id: "a", version: old!.version, refund: true }],
      renewals: [{ id: "a", version: old!.version }],
    }));
    assert.deepEqual(
      [others.started, others.released, others.renewed],
      [[false], [false], [false]],
    );
    assert.deepEqual(await store.get("a"), current);
    const fresh = await store.commit(batch({
      now: T0 + 104,
      settles: [succeed(current, "fresh"), succeed(current, "twice")],
    }));
    assert.deepEqual(fresh.settled, [true, false]);
    assert.equal((await store.get("a"))?.result, "fresh");
  });

  test("TaskStore.commit() fences a settle or release that names the claim's queue by that queue too", async (store) => {
    const [mail, plain] = await startAll(store, [
      task("m", { queue: "mail" }),
      task("p"),
    ]);
    const before = [await store.get("m"), await store.get("p")];
    // Named with the wrong queue: refused like a wrong version.
    const wrong = await store.commit(batch({
      now: T0 + 1,
      settles: [{ ...succeed(mail!, "x"), queue: "default" }],
      releases: [{ ...fence(plain!), queue: "mail" }],
    }));
    assert.deepEqual([wrong.settled, wrong.released], [[false], [false]]);
    assert.deepEqual([await store.get("m"), await store.get("p")], before);
    await checkCounts(store, "after the refused writes");
    // Named with their own queue, or not named: applied and counted.
    const right = await store.commit(batch({
      now: T0 + 2,
      settles: [{ ...succeed(mail!, "x"), queue: "mail" }],
      releases: [{ ...fence(plain!), queue: "default" }],
    }));
    assert.deepEqual([right.settled, right.released], [[true], [true]]);
    assert.equal((await store.get("m"))?.status, "succeeded");
    assert.equal((await store.get("p"))?.status, "queued");
    await checkCounts(store, "after the fenced writes");
    const [again] = (await store.commit(
      batch({ claimDue: 1, now: T0 + 3 }),
    )).claimed;
    const unnamed = await store.commit(batch({
      now: T0 + 4,
      settles: [kill(again!)],
    }));
    assert.deepEqual(unnamed.settled, [true]);
    await checkCounts(store, "after the unnamed settle");
    const status = await store.status(T0 + 4);
    assert.deepEqual(
      status.queues.map((
        { queue, counts },
      ) => [queue, counts.succeeded, counts.dead]),
      [["default", 0, 1], ["mail", 1, 0]],
    );
    // A queue that is not a name refuses the batch.
    await assert.rejects(
      store.commit(batch({
        settles: [{ ...succeed(mail!), queue: "" }],
      })),
      { name: "RangeError", message: /settles\[0\]\.queue/ },
    );
  });

  test("TaskStore.commit() applies a large batch of inserts and settles task by task: order, refusals and counts", async (store) => {
    // 45 inserts, keyed and not, in one batch: claimed in insertion order.
    const first = Array.from(
      { length: 45 },
      (_, i) =>
        task(`n${String(i).padStart(2, "0")}`, {
          idempotencyKey: i % 10 === 9 ? `key-${i}` : null,
          ...(i % 3 === 0 && { queue: "mail" }),
          payload: { i, text: '<b>"quoted" &amp;</b>' },
        }),
    );
    // A duplicate key inside the batch gets the first task's record.
    const dup = task("dup", { idempotencyKey: "key-9" });
    const { inserted } = await store.commit(
      batch({ inserts: [...first, dup] }),
    );
    assert.deepEqual(
      inserted.map((o) => o.inserted),
      [...first.map(() => true), false],
    );
    assert.equal(inserted[45]!.record.id, "n09");
    const queues = [{ queue: "default" }, { queue: "mail" }];
    const { claimed } = await store.commit(
      batch({ claimDue: 45, claimQueues: queues, now: T0 + 1 }),
    );
    assert.deepEqual(
      ids(claimed).sort(),
      first.map((t) => t.id).sort(),
    );
    assert.deepEqual(
      claimed.filter((r) => r.queue === "default").map((r) => r.id),
      first.filter((t) => t.queue === undefined).map((t) => t.id),
      "each queue's claims in insertion order",
    );
    assert.deepEqual(
      (await store.get("n01"))?.payload,
      { i: 1, text: '<b>"quoted" &amp;</b>' },
    );
    await checkCounts(store, "after the inserts and claims", T0 + 1);
    // 45 settles: most succeed naming their queue; some name the wrong
    // queue or an old version, some repeat a task, some fail.
    const byId = new Map(claimed.map((r) => [r.id, r]));
    const settles: Settlement[] = [];
    const expected: boolean[] = [];
    for (const [i, record] of claimed.entries()) {
      const right = { ...succeed(record, i), queue: record.queue };
      if (i % 11 === 4) {
        settles.push({
          ...right,
          queue: record.queue === "mail" ? "default" : "mail",
        });
        expected.push(false);
      } else if (i % 11 === 7) {
        settles.push({ ...right, version: record.version - 1 });
        expected.push(false);
      } else if (i % 11 === 8) {
        settles.push(retry(record, T0 + 50));
        expected.push(true);
      } else {
        settles.push(right);
        expected.push(true);
      }
    }
    // Of the settles of one claim, only the first can apply: a later one
    // is refused whether the first applied or not; a settle of the task
    // under its current version applies after a stale one.
    const again = claimed[0]!;
    const wrongQueue = claimed[4]!;
    const oldVersion = claimed[7]!;
    settles.push({ ...succeed(again, "again"), queue: again.queue });
    expected.push(false);
    settles.push({ ...succeed(wrongQueue, "late"), queue: wrongQueue.queue });
    expected.push(false);
    settles.push(succeed(oldVersion, "current"));
    expected.push(true);
    const result = await store.commit(batch({ settles, now: T0 + 2 }));
    assert.deepEqual(result.settled, expected);
    assert.equal((await store.get(again.id))?.result, 0);
    assert.equal((await store.get(oldVersion.id))?.result, "current");
    for (const [i, record] of claimed.entries()) {
      const now = await store.get(record.id);
      const want = i === 7
        ? "succeeded"
        : !expected[i]
        ? "running"
        : i % 11 === 8
        ? "failed"
        : "succeeded";
      assert.equal(now?.status, want, record.id);
      if (want === "running") {
        assert.deepEqual(now, byId.get(record.id));
      }
    }
    await checkCounts(store, "after the settles", T0 + 2);
  });

  test("TaskStore.recoverExpired() requeues expired leases and dead-letters exhausted tasks when now passes them", async (store) => {
    await startAll(
      store,
      [
        task("last", { maxAttempts: 1 }),
        task("retry", { maxAttempts: 3 }),
      ],
      T0,
      100,
    );
    await claimAll(store, [task("edge")], T0 + 50, 50);
    await claimAll(store, [task("fresh")], T0, 10_000);
    await store.commit(batch({ inserts: [task("queued")] }));
    assert.equal(await store.recoverExpired(T0 + 100), 0);
    assert.equal(await store.recoverExpired(T0 + 101), 3);
    const last = await store.get("last");
    assert.equal(last?.status, "dead");
    assert.equal(
      last?.lastError,
      "Cannot finish task: lease expired after final attempt",
    );
    assert.equal(last?.errorClass, "transient");
    assert.equal(last?.leaseUntil, null);
    const retry = await store.get("retry");
    assert.equal(retry?.status, "queued");
    assert.equal(retry?.attempts, 1);
    assert.equal(retry?.version, 2);
    assert.equal(retry?.leaseUntil, null);
    assert.equal(retry?.updatedAt, T0 + 101);
    assert.equal((await store.get("edge"))?.status, "queued");
    assert.equal((await store.get("fresh"))?.status, "running");
    assert.equal((await store.get("queued"))?.version, 0);
    assert.equal(await store.recoverExpired(T0 + 101), 0);
    const { claimed } = await store.commit(
      batch({ claimDue: 10, now: T0 + 102 }),
    );
    assert.deepEqual(ids(claimed).sort(), ["edge", "queued", "retry"]);
  });

  test("TaskStore.requeue() revives dead tasks when given their ids or all", async (store) => {
    const claims = await claimAll(store, [task("d1"), task("d2"), task("d3")]);
    await claimAll(store, [task("alive")]);
    await store.commit(batch({ settles: claims.map(kill) }));
    assert.equal(await store.requeue(["d1", "alive", "unknown"], T0 + 50), 1);
    const d1 = await store.get("d1");
    assert.equal(d1?.status, "queued");
    assert.equal(d1?.attempts, 0);
    assert.equal(d1?.runAt, T0 + 50);
    assert.equal(d1?.updatedAt, T0 + 50);
    assert.equal(d1?.version, 3);
    assert.equal((await store.get("alive"))?.status, "running");
    assert.equal(await store.requeue(["d1"], T0 + 60), 0);
    assert.equal(await store.requeue("all", T0 + 70), 2);
    assert.equal(await store.requeue("all", T0 + 70), 0);
    const { claimed } = await store.commit(
      batch({ claimDue: 10, now: T0 + 70 }),
    );
    assert.deepEqual(ids(claimed), ["d1", "d2", "d3"]);
    assert.equal(claimed[0]!.attempts, 0);
  });

  test("TaskStore.commit() sets startedAt to the batch's now and status() counts the task as started when its start is applied", async (store) => {
    const [a, b, c] = await claimAll(store, [task("a"), task("b"), task("c")]);
    await store.commit(batch({ inserts: [task("queued")] }));
    const claimedOnly = await store.status(T0);
    assert.deepEqual(
      [claimedOnly.counts.running, claimedOnly.started],
      [3, 0],
      "a claim is not a start",
    );
    const { started } = await store.commit(batch({
      now: T0 + 7,
      starts: [
        fence(a!),
        fence(b!),
        { id: "c", version: c!.version + 1 },
        { id: "queued", version: 0 },
      ],
    }));
    assert.deepEqual(started, [true, true, false, false]);
    assert.equal((await store.get("a"))?.startedAt, T0 + 7);
    assert.equal((await store.get("b"))?.startedAt, T0 + 7);
    assert.equal(
      (await store.get("c"))?.startedAt,
      null,
      "a stale start records nothing",
    );
    assert.equal((await store.get("queued"))?.startedAt, null);
    const status = await store.status(T0 + 8);
    assert.deepEqual([status.counts.running, status.started], [3, 2]);
    // A finished task keeps its start but no longer counts as started.
    await store.commit(batch({ now: T0 + 9, settles: [succeed(a!)] }));
    const finished = await store.status(T0 + 9);
    assert.deepEqual([finished.counts.running, finished.started], [2, 1]);
    assert.equal((await store.get("a"))?.startedAt, T0 + 7);
  });

  test("TaskStore.commit() resets startedAt to null when a task that started before is claimed again", async (store) => {
    const [a] = await startAll(store, [task("a")]);
    await store.commit(batch({ now: T0 + 1, settles: [retry(a!, T0 + 10)] }));
    const failed = await store.get("a");
    assert.deepEqual([failed?.status, failed?.startedAt], ["failed", T0]);
    const { claimed } = await store.commit(
      batch({ now: T0 + 10, claimDue: 1 }),
    );
    assert.deepEqual(
      claimed.map((r) => [r.id, r.startedAt, r.version]),
      [["a", null, a!.version + 2]],
    );
    assert.deepEqual(await store.get("a"), claimed[0]);
    const status = await store.status(T0 + 10);
    assert.deepEqual([status.counts.running, status.started], [1, 0]);
  });

  test("TaskStore.commit() resets startedAt to null when a started task is released", async (store) => {
    const [a, b] = await startAll(store, [task("a"), task("b")]);
    assert.equal((await store.status(T0)).started, 2);
    const { released } = await store.commit(batch({
      now: T0 + 5,
      releases: [fence(a!), { ...fence(b!), refund: true }],
    }));
    assert.deepEqual(released, [true, true]);
    for (const id of ["a", "b"]) {
      const record = await store.get(id);
      assert.deepEqual([record?.status, record?.startedAt], ["queued", null]);
    }
    const status = await store.status(T0 + 5);
    assert.deepEqual([status.counts.running, status.started], [0, 0]);
  });

  test("TaskStore.recoverExpired() resets startedAt to null when it requeues or dead-letters a started task", async (store) => {
    await startAll(
      store,
      [task("requeued"), task("exhausted", { maxAttempts: 1 })],
      T0,
      100,
    );
    await startAll(store, [task("live")], T0, 10_000);
    assert.equal((await store.status(T0)).started, 3);
    assert.equal(await store.recoverExpired(T0 + 101), 2);
    const after = await Promise.all(
      ["requeued", "exhausted", "live"].map((id) => store.get(id)),
    );
    assert.deepEqual(
      after.map((r) => [r?.id, r?.status, r?.startedAt]),
      [
        ["requeued", "queued", null],
        ["exhausted", "dead", null],
        ["live", "running", T0],
      ],
    );
    const status = await store.status(T0 + 101);
    assert.deepEqual([status.counts.running, status.started], [1, 1]);
  });

  test("TaskStore.commit() resets startedAt to null when recover takes back an expired started task", async (store) => {
    const [a] = await startAll(store, [task("a")], T0, 100);
    const { recovered } = await store.commit(
      batch({ now: T0 + 200, leaseMs: 100, recover: true }),
    );
    assert.equal(recovered, 1);
    const record = await store.get("a");
    assert.deepEqual(
      [record?.status, record?.startedAt, record?.version],
      ["queued", null, a!.version + 1],
    );
    assert.equal((await store.status(T0 + 200)).started, 0);
  });

  test("TaskStore.commit() keeps startedAt when a settle is applied", async (store) => {
    const claims = await claimAll(store, [
      task("ok"),
      task("again"),
      task("bad"),
      task("quick"),
    ]);
    const [ok, again, bad, quick] = claims;
    await store.commit(batch({
      now: T0 + 3,
      starts: [ok!, again!, bad!].map(fence),
    }));
    const { settled } = await store.commit(batch({
      now: T0 + 50,
      settles: [
        succeed(ok!),
        retry(again!, T0 + 100),
        kill(bad!),
        // Finished before its start was written: charged, never started.
        { ...succeed(quick!), charge: true },
      ],
    }));
    assert.deepEqual(settled, [true, true, true, true]);
    const after = await Promise.all(claims.map((c) => store.get(c.id)));
    assert.deepEqual(
      after.map((r) => [r?.id, r?.status, r?.attempts, r?.startedAt]),
      [
        ["ok", "succeeded", 1, T0 + 3],
        ["again", "failed", 1, T0 + 3],
        ["bad", "dead", 1, T0 + 3],
        ["quick", "succeeded", 1, null],
      ],
    );
    assert.equal((await store.status(T0 + 50)).started, 0);
  });

  test("TaskStore.requeue() resets startedAt to null when it revives a dead task", async (store) => {
    const [a, b] = await startAll(store, [task("a"), task("b")]);
    await store.commit(batch({ now: T0 + 1, settles: [kill(a!), kill(b!)] }));
    assert.equal((await store.get("a"))?.startedAt, T0);
    assert.equal(await store.requeue(["a"], T0 + 2), 1);
    assert.equal((await store.get("a"))?.startedAt, null);
    assert.equal((await store.get("b"))?.startedAt, T0);
    assert.equal(await store.requeue("all", T0 + 3), 1);
    const revived = await store.get("b");
    assert.deepEqual([revived?.status, revived?.startedAt], ["queued", null]);
  });

  test("TaskStore.list() filters by status and pages when given limit and offset", async (store) => {
    await store.commit(batch({
      inserts: ["a", "b", "c", "d", "e"].map((id) =>
        task(id, { claim: id === "b" || id === "d" })
      ),
    }));
    await store.commit(batch({ now: T0 - 10, inserts: [task("older")] }));
    assert.deepEqual(ids(await store.list()), [
      "older",
      "a",
      "b",
      "c",
      "d",
      "e",
    ]);
    assert.deepEqual(
      ids(await store.list({ status: "queued" })),
      ["older", "a", "c", "e"],
    );
    assert.deepEqual(
      ids(await store.list({ status: "queued", limit: 2, offset: 1 })),
      ["a", "c"],
    );
    assert.deepEqual(ids(await store.list({ offset: 5 })), ["e"]);
    assert.deepEqual(await store.list({ limit: 0 }), []);
    assert.deepEqual(ids(await store.list({ status: "running" })), ["b", "d"]);
    assert.deepEqual(await store.list({ status: "dead" }), []);
    await assert.rejects(store.list({ limit: -1 }), RangeError);
    await assert.rejects(store.list({ offset: 1.5 }), RangeError);
  });

  test("TaskStore.status() counts tasks, ages the oldest due task and totals finished tasks when asked", async (store) => {
    const empty = await store.status(T0);
    assert.deepEqual(empty, {
      counts: { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 },
      oldestQueuedAgeMs: null,
      dueFailed: 0,
      started: 0,
      totals: { submitted: 0, succeeded: 0, dead: 0 },
      queues: [],
    });
    const [s1, s2, dead, failed] = await claimAll(store, [
      task("s1"),
      task("s2"),
      task("dead"),
      task("failed"),
      task("running"),
    ]);
    await store.commit(batch({ now: T0 + 1_000, settles: [succeed(s1!)] }));
    await store.commit(batch({
      now: T0 + 5_000,
      settles: [succeed(s2!), kill(dead!), {
        id: failed!.id,
        version: failed!.version,
        outcome: {
          kind: "retry",
          runAt: T0 + 9_000,
          error: "Cannot run: later",
          errorClass: "transient",
        },
      }],
      inserts: [
        task("q-old", { runAt: T0 + 2_000 }),
        task("q-new", { runAt: T0 + 4_000 }),
        task("q-future", { runAt: T0 + 20_000 }),
      ],
    }));
    const status = await store.status(T0 + 6_000);
    assert.deepEqual(status.counts, {
      queued: 3,
      running: 1,
      succeeded: 2,
      failed: 1,
      dead: 1,
    });
    assert.equal(status.oldestQueuedAgeMs, 4_000);
    assert.equal(status.dueFailed, 0, "the retry is not due yet");
    assert.equal(status.started, 0, "the running task's start was not written");
    assert.deepEqual(status.totals, { submitted: 8, succeeded: 2, dead: 1 });
    const { claimed } = await store.commit(
      batch({ claimDue: 10, now: T0 + 6_000 }),
    );
    assert.deepEqual(ids(claimed), ["q-old", "q-new"]);
    assert.equal((await store.status(T0 + 6_000)).oldestQueuedAgeMs, null);
    const due = await store.status(T0 + 9_000);
    assert.deepEqual([due.oldestQueuedAgeMs, due.dueFailed], [0, 1]);
    assert.equal((await store.status(T0 + 9_500)).oldestQueuedAgeMs, 500);
  });

  test("TaskStore.status() counts the failed tasks whose retry is due, and no other, when asked at now", async (store) => {
    const [a, b, c, d] = await claimAll(store, [
      task("a"),
      task("b"),
      task("c"),
      task("d"),
    ]);
    await store.commit(batch({
      now: T0 + 1,
      settles: [retry(a!, T0 + 10), retry(b!, T0 + 10), retry(c!, T0 + 20)],
      inserts: [task("q", { runAt: T0 + 5 })],
    }));
    const at = async (now: number): Promise<[number, number]> => {
      const { counts, dueFailed } = await store.status(now);
      return [counts.queued + dueFailed, dueFailed];
    };
    // [depth: queued + due failed, due failed]
    assert.deepEqual(await at(T0 + 9), [1, 0]);
    assert.deepEqual(await at(T0 + 10), [3, 2]);
    assert.deepEqual(await at(T0 + 20), [4, 3]);
    await store.commit(batch({
      now: T0 + 20,
      settles: [succeed(d!)],
      claimDue: 1,
    }));
    assert.deepEqual(await at(T0 + 20), [3, 3], "the queued task was first");
    assert.equal((await store.status(T0 + 20)).counts.failed, 3);
  });

  test("TaskStore.commit() stores keys and payloads as plain data when they contain quotes and SQL", async (store) => {
    const nasty = `x'); DROP TABLE tasks; --"\\ %_*`;
    const { inserted } = await store.commit(batch({
      inserts: [task(nasty, {
        idempotencyKey: nasty,
        type: nasty,
        payload: { sql: nasty, emoji: "🙂" },
      })],
    }));
    assert.equal(inserted[0]!.inserted, true);
    const record = await store.getByKey(nasty);
    assert.equal(record?.id, nasty);
    assert.equal(record?.type, nasty);
    assert.deepEqual(record?.payload, { sql: nasty, emoji: "🙂" });
    assert.equal(await store.getByKey("x"), undefined);
    assert.equal(await store.getByKey("%"), undefined);
    const { claimed } = await store.commit(batch({ claimDue: 1 }));
    assert.equal(claimed[0]?.id, nasty);
    assert.equal((await store.list()).length, 1);
  });

  test("TaskStore.commit() reads 64-bit timestamps back exactly when they exceed 32 bits", async (store) => {
    const now = 8_640_000_000_000_000; // The largest valid Date, > 2^52.
    const far = Number.MAX_SAFE_INTEGER;
    const { claimed } = await store.commit(batch({
      now,
      leaseMs: 1_234,
      inserts: [
        task("a", { runAt: now - 1 }),
        task("b", { runAt: far }),
      ],
      claimDue: 5,
    }));
    assert.deepEqual(ids(claimed), ["a"]);
    assert.equal(claimed[0]!.runAt, now - 1);
    assert.equal(claimed[0]!.leaseUntil, now + 1_234);
    const a = await store.get("a");
    assert.equal(a?.createdAt, now);
    assert.equal(a?.leaseUntil, now + 1_234);
    assert.equal((await store.get("b"))?.runAt, far);
  });

  test("TaskStore.commit() applies nothing when one insert's id already exists", async (store) => {
    const [claim] = await claimAll(store, [task("a")]);
    await assert.rejects(store.commit(batch({
      settles: [succeed(claim!)],
      inserts: [task("b"), task("a")],
    })));
    assert.equal((await store.get("a"))?.status, "running");
    assert.equal(await store.get("b"), undefined);
    const { settled } = await store.commit(
      batch({ settles: [succeed(claim!)] }),
    );
    assert.deepEqual(settled, [true]);
  });

  test("TaskStore.commit() rejects with RangeError when a batch number is out of range", async (store) => {
    await assert.rejects(store.commit(batch({ claimDue: -1 })), RangeError);
    await assert.rejects(
      store.commit(batch({ leaseMs: Number.NaN })),
      RangeError,
    );
    await assert.rejects(
      store.commit(batch({ inserts: [task("a", { maxAttempts: 0 })] })),
      RangeError,
    );
    await assert.rejects(
      store.commit(batch({ inserts: [task("a", { runAt: Infinity })] })),
      RangeError,
    );
    assert.equal(await store.get("a"), undefined);
  });

  test("TaskStore.commit() charges an attempt for a start only when it presents the claim's version and keeps the version", async (store) => {
    const [a, b] = await claimAll(store, [task("a"), task("b")]);
    await store.commit(batch({ inserts: [task("queued")] }));
    const { started } = await store.commit(batch({
      now: T0 + 5,
      starts: [
        fence(a!),
        { id: "b", version: b!.version + 1 },
        { id: "b", version: b!.version - 1 },
        { id: "queued", version: 0 },
        { id: "missing", version: 1 },
      ],
    }));
    assert.deepEqual(started, [true, false, false, false, false]);
    assert.deepEqual(
      await store.get("a"),
      { ...a!, attempts: 1, startedAt: T0 + 5 },
      "a start charges one attempt, records its time and changes nothing else",
    );
    assert.deepEqual(await store.get("b"), b);
    assert.equal((await store.get("queued"))?.attempts, 0);
    // The version is unchanged, so the claim still settles.
    const { settled } = await store.commit(
      batch({ now: T0 + 6, settles: [succeed(a!)] }),
    );
    assert.deepEqual(settled, [true]);
    assert.equal((await store.get("a"))?.attempts, 1);
    // Once settled, a late start is refused.
    const late = await store.commit(batch({ starts: [fence(a!)] }));
    assert.deepEqual(late.started, [false]);
    assert.equal((await store.get("a"))?.attempts, 1);
  });

  test("TaskStore.commit() charges the attempt with the settle when charge is set", async (store) => {
    const [a, b, c, d] = await claimAll(store, [
      task("a"),
      task("b"),
      task("c"),
      task("d"),
    ]);
    const { settled } = await store.commit(batch({
      now: T0 + 1,
      settles: [
        { ...succeed(a!, "ok"), charge: true },
        { ...retry(b!, T0 + 100), charge: true },
        { ...kill(c!), charge: true },
        { ...succeed(d!), charge: false },
        { ...succeed(a!), version: a!.version + 5, charge: true },
      ],
    }));
    assert.deepEqual(settled, [true, true, true, true, false]);
    const after = await Promise.all(
      ["a", "b", "c", "d"].map((id) => store.get(id)),
    );
    assert.deepEqual(
      after.map((r) => [r?.status, r?.attempts, r?.version]),
      [
        ["succeeded", 1, 2],
        ["failed", 1, 2],
        ["dead", 1, 2],
        ["succeeded", 0, 2],
      ],
    );
    assert.equal(after[0]?.result, "ok");
    // A retried task charged this way keeps the charge across its next claim.
    const { claimed } = await store.commit(
      batch({ now: T0 + 100, claimDue: 1 }),
    );
    assert.deepEqual(
      claimed.map((r) => [r.id, r.attempts, r.version]),
      [["b", 1, 3]],
    );
  });

  test("TaskStore.commit() records a settle's startedAt only when the task has no recorded start", async (store) => {
    const [a, b, c, d] = await claimAll(store, [
      task("a"),
      task("b"),
      task("c"),
      task("d"),
    ]);
    await store.commit(batch({ now: T0 + 2, starts: [fence(b!)] }));
    const { settled } = await store.commit(batch({
      now: T0 + 9,
      settles: [
        { ...succeed(a!), charge: true, startedAt: T0 + 3 },
        { ...retry(b!, T0 + 20), startedAt: T0 + 4 }, // its start is kept
        { ...kill(c!), charge: true, startedAt: T0 + 5 },
        { ...succeed(d!), charge: true }, // no estimate: stays null
      ],
    }));
    assert.deepEqual(settled, [true, true, true, true]);
    const after = await Promise.all(
      ["a", "b", "c", "d"].map((id) => store.get(id)),
    );
    assert.deepEqual(
      after.map((r) => [r?.status, r?.attempts, r?.startedAt]),
      [
        ["succeeded", 1, T0 + 3],
        ["failed", 1, T0 + 2],
        ["dead", 1, T0 + 5],
        ["succeeded", 1, null],
      ],
    );
    // A stale settle records nothing, and a bad estimate refuses the batch.
    const [e] = await claimAll(store, [task("e")], T0 + 10);
    await store.commit(batch({
      now: T0 + 11,
      settles: [{ ...succeed(e!), version: e!.version + 1, startedAt: T0 }],
    }));
    assert.equal((await store.get("e"))?.startedAt, null);
    await assert.rejects(
      store.commit(batch({
        now: T0 + 12,
        settles: [{ ...succeed(e!), charge: true, startedAt: NaN }],
      })),
      RangeError,
    );
    await assert.rejects(
      store.commit(batch({
        now: T0 + 12,
        settles: [{
          ...succeed(e!),
          startedAt: "soon" as unknown as number,
        }],
      })),
      TypeError,
    );
    assert.equal((await store.get("e"))?.status, "running");
  });

  test("TaskStore.commit() releases a claimed task to queued, due at once, and refunds its start only when asked", async (store) => {
    const [a, b] = await startAll(store, [task("a"), task("b")]);
    const [c] = await claimAll(store, [task("c")]);
    const { released } = await store.commit(batch({
      now: T0 + 5,
      releases: [
        { id: "a", version: a!.version },
        { id: "b", version: b!.version, refund: true },
        { id: "c", version: c!.version, refund: true },
        { id: "a", version: a!.version },
        { id: "missing", version: 1 },
      ],
    }));
    assert.deepEqual(released, [true, true, true, false, false]);
    const expected = (record: TaskRecord, attempts: number): TaskRecord => ({
      ...record,
      status: "queued",
      attempts,
      leaseUntil: null,
      startedAt: null,
      updatedAt: T0 + 5,
      version: record.version + 1,
    });
    assert.deepEqual(await store.get("a"), expected(a!, 1));
    assert.deepEqual(await store.get("b"), expected(b!, 0));
    assert.deepEqual(
      await store.get("c"),
      expected(c!, 0),
      "a refund never takes attempts below 0",
    );
    // A stale release (the token of the claim before the release) is refused.
    const stale = await store.commit(batch({
      now: T0 + 6,
      releases: [{ id: "a", version: a!.version, refund: true }],
    }));
    assert.deepEqual(stale.released, [false]);
    assert.equal((await store.get("a"))?.attempts, 1);
    // runAt is unchanged, so the tasks are due at once, in submission order.
    const { claimed } = await store.commit(
      batch({ now: T0 + 6, claimDue: 10 }),
    );
    assert.deepEqual(
      claimed.map((r) => [r.id, r.attempts, r.version, r.runAt]),
      [["a", 1, 3, T0], ["b", 0, 3, T0], ["c", 0, 3, T0]],
    );
  });

  test("TaskStore.commit() recovers expired leases after the batch's renewals and before its claims when recover is set", async (store) => {
    const [kept, lost] = await claimAll(
      store,
      [task("kept"), task("lost")],
      T0,
      100,
    );
    const [last] = await startAll(
      store,
      [task("last", { maxAttempts: 1 })],
      T0,
      100,
    );
    // Without recover, an expired lease stays as it is.
    const quiet = await store.commit(batch({ now: T0 + 200, claimDue: 10 }));
    assert.equal(quiet.recovered, 0);
    assert.deepEqual(quiet.claimed, []);
    const result = await store.commit(batch({
      now: T0 + 200,
      leaseMs: 100,
      renewals: [fence(kept!)],
      recover: true,
      claimDue: 10,
    }));
    assert.deepEqual(result.renewed, [true]);
    assert.equal(result.recovered, 2);
    // Recovery comes before the claims, so "lost" is claimed again at once.
    assert.deepEqual(
      result.claimed.map((r) => [r.id, r.attempts, r.version]),
      [["lost", 0, lost!.version + 2]],
    );
    assert.deepEqual(await store.get("kept"), {
      ...kept!,
      leaseUntil: T0 + 300,
    });
    const dead = await store.get("last");
    assert.equal(dead?.status, "dead");
    assert.equal(dead?.version, last!.version + 1);
    assert.equal(
      dead?.lastError,
      "Cannot finish task: lease expired after final attempt",
    );
    const again = await store.commit(
      batch({ now: T0 + 250, recover: true }),
    );
    assert.equal(again.recovered, 0);
  });

  test("TaskStore.recoverExpired() requeues a claimed task that never started when maxAttempts is 1", async (store) => {
    await store.commit(batch({
      inserts: [
        task("claimed", { maxAttempts: 1 }),
        task("inserted", { maxAttempts: 1, claim: true }),
      ],
      claimDue: 1,
      leaseMs: 100,
    }));
    assert.equal(await store.recoverExpired(T0 + 101), 2);
    for (const id of ["claimed", "inserted"]) {
      const record = await store.get(id);
      assert.equal(record?.status, "queued", id);
      assert.equal(record?.attempts, 0, id);
      assert.equal(record?.lastError, null, id);
    }
    // Once an attempt is charged, the same expiry dead-letters it.
    const { claimed } = await store.commit(
      batch({ now: T0 + 102, claimDue: 1, leaseMs: 100 }),
    );
    await store.commit(
      batch({ now: T0 + 103, starts: claimed.map(fence) }),
    );
    assert.equal(await store.recoverExpired(T0 + 203), 1);
    assert.equal((await store.get(claimed[0]!.id))?.status, "dead");
  });

  test("TaskStore.commit() applies renewals, starts, settles, releases, recovery, inserts and claims in that order when one batch holds them", async (store) => {
    const [x, y, z] = await claimAll(store, [task("x"), task("y"), task("z")]);
    const result = await store.commit(batch({
      now: T0 + 1,
      // The start comes before the settle (else the settled task would
      // refuse it); the settle comes before z's release (which is then
      // stale); y's release comes before the claim, which takes it back.
      starts: [fence(x!)],
      settles: [succeed(x!), succeed(z!)],
      releases: [fence(y!), fence(z!)],
      inserts: [task("new", { runAt: T0 + 1 })],
      claimDue: 2,
    }));
    assert.deepEqual(result.started, [true]);
    assert.deepEqual(result.settled, [true, true]);
    assert.deepEqual(result.released, [true, false]);
    assert.deepEqual(ids(result.claimed), ["y", "new"]);
    const settled = await store.get("x");
    assert.deepEqual(
      [settled?.status, settled?.attempts],
      ["succeeded", 1],
    );
    assert.equal((await store.get("z"))?.status, "succeeded");
    assert.equal((await store.get("y"))?.version, y!.version + 2);
  });

  test("TaskStore.commit() claims by runAt, then submission order, when releases and retries make tasks due again", async (store) => {
    await store.commit(batch({
      inserts: ["a", "b", "c", "d"].map((id) => task(id)),
    }));
    const { claimed } = await store.commit(batch({ claimDue: 4 }));
    assert.deepEqual(ids(claimed), ["a", "b", "c", "d"]);
    const [a, b, c] = claimed;
    await store.commit(batch({
      now: T0 + 1,
      releases: [fence(c!), fence(a!)],
      settles: [retry(b!, T0)],
      inserts: [
        task("earlier", { runAt: T0 - 5 }),
        task("later", { runAt: T0 + 1 }),
      ],
    }));
    const again = await store.commit(batch({ now: T0 + 1, claimDue: 10 }));
    assert.deepEqual(ids(again.claimed), ["earlier", "a", "b", "c", "later"]);
  });

  test("TaskStore.commit() refuses an id, type or key holding U+0000 or a lone surrogate before applying anything", async (store) => {
    const [held] = await claimAll(store, [task("held")]);
    const bad = ["nul\0A", "\ud800", "a\udc00b", "\0"];
    for (const field of ["id", "type", "idempotencyKey"] as const) {
      for (const value of bad) {
        await assert.rejects(
          store.commit(batch({
            settles: [succeed(held!)],
            inserts: [task("ok"), task("bad", { [field]: value })],
          })),
          (error: unknown) =>
            error instanceof TypeError &&
            error.message.startsWith(
              `Cannot commit: inserts[1].${field} contains U+0000 or a lone surrogate`,
            ),
          `${field} ${JSON.stringify(value)}`,
        );
      }
    }
    for (const name of ["renewals", "starts", "settles", "releases"] as const) {
      const fenced = { id: "held\0", version: held!.version };
      await assert.rejects(
        store.commit(batch({
          [name]: name === "settles" ? [{ ...succeed(held!), ...fenced }] : [
            fenced,
          ],
        })),
        (error: unknown) =>
          error instanceof TypeError &&
          error.message.startsWith(`Cannot commit: ${name}[0].id contains`),
        name,
      );
    }
    assert.equal(await store.get("ok"), undefined);
    assert.deepEqual(await store.get("held"), held);
    // Keys that differ only after a NUL can therefore never collapse; a
    // key that is a prefix of them is an ordinary key.
    const { inserted } = await store.commit(batch({
      inserts: [
        task("n1", { idempotencyKey: "nul" }),
        task("n2", { idempotencyKey: "nul\u00e9\ud83d\ude42" }),
      ],
    }));
    assert.deepEqual(inserted.map((o) => o.inserted), [true, true]);
    assert.equal((await store.getByKey("nul\u00e9\ud83d\ude42"))?.id, "n2");
  });

  if (values === "json") {
    test("TaskStore.checkValue() refuses what JSON would change and names the path when the store keeps JSON", async (store) => {
      class Point {
        x = 1;
      }
      const sparse: unknown[] = [1];
      sparse[2] = 3;
      const cycle: Record<string, unknown> = { a: [] };
      (cycle["a"] as unknown[]).push(cycle);
      const refused: [unknown, string][] = [
        [{ n: NaN }, "NaN at payload.n"],
        [[1, Infinity], "Infinity at payload[1]"],
        [{ deep: { x: -Infinity } }, "-Infinity at payload.deep.x"],
        [{ big: 1n }, "BigInt at payload.big"],
        [{ items: new Map() }, "Map at payload.items"],
        [[new Set([1])], "Set at payload[0]"],
        [{ when: new Date(0) }, "Date at payload.when"],
        [{ re: /x/ }, "RegExp at payload.re"],
        [{ bytes: new Uint8Array(2) }, "Uint8Array at payload.bytes"],
        [{ buf: new ArrayBuffer(2) }, "ArrayBuffer at payload.buf"],
        [{ p: new Point() }, "instance of Point at payload.p"],
        [{ "a b": { f(): void {} } }, 'function at payload["a b"].f'],
        [{ s: Symbol("s") }, "symbol at payload.s"],
        [[1, undefined], "undefined at payload[1]"],
        [sparse, "array hole at payload[1]"],
        [cycle, "cycle at payload.a[0]"],
        [undefined, "undefined at payload"],
        [() => 1, "function at payload"],
        [new Map(), "Map at payload"],
      ];
      for (const [value, where] of refused) {
        assert.throws(
          () => store.checkValue(value, "payload"),
          {
            name: "TypeError",
            message:
              `Cannot store task: payload is not plain JSON data (${where})`,
          },
        );
      }
      assert.throws(() => store.checkValue({ items: new Map() }, "result"), {
        name: "TypeError",
        message:
          "Cannot store task: result is not plain JSON data (Map at result.items)",
      });
      // Plain data, a null prototype and undefined properties are kept.
      store.checkValue(undefined, "result");
      store.checkValue({ a: undefined, b: [null, 1.5, "x", true] }, "payload");
      store.checkValue(Object.assign(Object.create(null), { a: 1 }), "payload");
      // A commit refuses the same values, naming the task, and applies nothing.
      await assert.rejects(
        store.commit(batch({
          inserts: [task("ok"), task("bad", { payload: { at: new Date(0) } })],
        })),
        {
          name: "TypeError",
          message:
            "Cannot store task bad: payload is not plain JSON data (Date at payload.at)",
        },
      );
      assert.equal(await store.get("ok"), undefined);
      const [claim] = await claimAll(store, [task("a", {
        payload: { keep: [1, { x: null }], gone: undefined },
      })]);
      await assert.rejects(
        store.commit(batch({ settles: [succeed(claim!, [NaN])] })),
        /Cannot settle task a: result is not plain JSON data \(NaN at result\[0\]\)/,
      );
      assert.equal((await store.get("a"))?.status, "running");
      const { settled } = await store.commit(
        batch({ settles: [succeed(claim!, undefined)] }),
      );
      assert.deepEqual(settled, [true]);
      const record = await store.get("a");
      assert.equal(record?.result, null);
      assert.deepEqual(record?.payload, { keep: [1, { x: null }] });
    });
  } else {
    test("TaskStore.checkValue() keeps what structured clone keeps when the store keeps values as given", async (store) => {
      store.checkValue(
        { items: new Map([[1, 2n]]), at: new Date(0) },
        "payload",
      );
      store.checkValue([1, undefined, NaN], "result");
      assert.throws(
        () => store.checkValue({ f(): void {} }, "payload"),
        TypeError,
      );
      assert.throws(() => store.checkValue(Symbol("s"), "result"), TypeError);
      const payload = { items: new Map([[1, 2n]]) };
      await store.commit(batch({ inserts: [task("a", { payload })] }));
      assert.deepEqual((await store.get("a"))?.payload, payload);
    });
  }

  test("TaskStore.prune() deletes finished tasks older than maxAgeMs, oldest first, and never unfinished ones, when a rule sets an age", async (store) => {
    await finish(store, [
      ["s1", "succeeded", T0 + 10],
      ["d1", "dead", T0 + 15],
      ["s2", "succeeded", T0 + 20],
      ["d2", "dead", T0 + 25],
      ["s3", "succeeded", T0 + 30],
    ]);
    const [running, failing] = await claimAll(store, [task("r"), task("f")]);
    await store.commit(batch({
      now: T0 + 5,
      settles: [retry(failing!, T0 + 10_000)],
      inserts: [task("q")],
    }));
    assert.equal(running?.status, "running");
    const all = ["s1", "d1", "s2", "d2", "s3", "r", "f", "q"];
    const policy: RetentionPolicy = {
      succeeded: { maxAgeMs: 100 },
      dead: { maxAgeMs: 100 },
    };
    // At T0 + 125 the cutoff is T0 + 25: finished strictly before it go.
    const now = T0 + 125;
    assert.deepEqual(await store.prunable(policy, now), {
      succeeded: 2,
      dead: 1,
      skipped: false,
    });
    assert.deepEqual(await store.prune(policy, now, 2), {
      succeeded: 1,
      dead: 1,
      skipped: false,
    });
    assert.deepEqual(await kept(store, all), [
      "s2",
      "d2",
      "s3",
      "r",
      "f",
      "q",
    ]);
    assert.deepEqual(await store.prune(policy, now, 10), {
      succeeded: 1,
      dead: 0,
      skipped: false,
    });
    assert.deepEqual(await store.prune(policy, now, 10), {
      succeeded: 0,
      dead: 0,
      skipped: false,
    });
    // Age 0 far in the future: every finished task goes, nothing else.
    const everything: RetentionPolicy = {
      succeeded: { maxAgeMs: 0 },
      dead: { maxAgeMs: 0 },
    };
    assert.deepEqual(await store.prunable(everything, T0 + 1e9), {
      succeeded: 1,
      dead: 1,
      skipped: false,
    });
    assert.deepEqual(await store.prune(everything, T0 + 1e9, 100), {
      succeeded: 1,
      dead: 1,
      skipped: false,
    });
    assert.deepEqual(await kept(store, all), ["r", "f", "q"]);
    assert.equal(await store.get("s1"), undefined);
  });

  test("TaskStore.prune() keeps the newest maxCount of each status separately, insertion order breaking ties, when a rule sets a count", async (store) => {
    await finish(store, [
      ["s1", "succeeded", T0 + 1],
      ["d1", "dead", T0 + 1],
      ["s2", "succeeded", T0 + 2],
      ["s3", "succeeded", T0 + 3],
      ["d2", "dead", T0 + 3],
      // Same time: s4, inserted first, is the older of the two.
      ["s4", "succeeded", T0 + 4],
      ["s5", "succeeded", T0 + 4],
      ["d3", "dead", T0 + 5],
    ]);
    const now = T0 + 10;
    const succeeded: RetentionPolicy = { succeeded: { maxCount: 1 } };
    assert.deepEqual(await store.prunable(succeeded, now), {
      succeeded: 4,
      dead: 0,
      skipped: false,
    });
    assert.deepEqual(await store.prune(succeeded, now, 100), {
      succeeded: 4,
      dead: 0,
      skipped: false,
    });
    const all = ["s1", "s2", "s3", "s4", "s5", "d1", "d2", "d3"];
    assert.deepEqual(await kept(store, all), ["s5", "d1", "d2", "d3"]);
    const dead: RetentionPolicy = { dead: { maxCount: 2 } };
    assert.deepEqual(await store.prune(dead, now, 100), {
      succeeded: 0,
      dead: 1,
      skipped: false,
    });
    assert.deepEqual(await kept(store, all), ["s5", "d2", "d3"]);
    // Infinity and an empty rule keep everything.
    const none: RetentionPolicy = {
      succeeded: { maxCount: Infinity, maxAgeMs: Infinity },
      dead: {},
    };
    assert.deepEqual(await store.prunable(none, now + 1e9), {
      succeeded: 0,
      dead: 0,
      skipped: false,
    });
    assert.deepEqual(await store.prune(none, now + 1e9, 100), {
      succeeded: 0,
      dead: 0,
      skipped: false,
    });
    assert.deepEqual(await store.prune({}, now + 1e9, 100), {
      succeeded: 0,
      dead: 0,
      skipped: false,
    });
    assert.deepEqual(await kept(store, all), ["s5", "d2", "d3"]);
  });

  test("TaskStore.prune() applies a queue's own rules to its tasks, and the policy's rules to each other queue separately, when the policy names queues", async (store) => {
    const finish = async (
      queue: string,
      prefix: string,
      n: number,
      how: (r: TaskRecord) => Settlement,
      at: number,
    ): Promise<void> => {
      const records = await claimAll(store, tasks(prefix, n, { queue }), at);
      await store.commit(batch({ now: at + 1, settles: records.map(how) }));
    };
    await finish("default", "d", 3, succeed, T0);
    await finish("a", "a", 3, succeed, T0 + 10);
    await finish("b", "b", 3, succeed, T0 + 20);
    await finish("b", "bx", 2, kill, T0 + 30);
    await finish("a", "ax", 2, kill, T0 + 40);
    const policy: RetentionPolicy = {
      succeeded: { maxCount: 1 },
      queues: {
        a: { succeeded: { maxCount: 2 } },
        b: { dead: { maxCount: 0 } },
        idle: { succeeded: {} },
      },
    };
    const now = T0 + 100;
    const expected = { succeeded: 2 + 1 + 2, dead: 2, skipped: false };
    assert.deepEqual(await store.prunable(policy, now), expected);
    const total = { succeeded: 0, dead: 0, skipped: false };
    for (let calls = 0;; calls++) {
      assert.ok(calls < 10, "prune converges");
      const step = await store.prune(policy, now, 3);
      assert.ok(step.succeeded + step.dead <= 3, "at most the limit");
      total.succeeded += step.succeeded;
      total.dead += step.dead;
      if (step.succeeded + step.dead === 0) break;
    }
    assert.deepEqual(total, expected);
    assert.deepEqual(
      (await store.list()).map((r) => r.id).sort(),
      ["a1", "a2", "ax0", "ax1", "b2", "d2"],
      "each queue keeps its newest, by its own rule",
    );
    const { queues } = await store.status(now);
    const none = { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
    assert.deepEqual(queues, [
      {
        queue: "a",
        counts: { ...none, succeeded: 2, dead: 2 },
        totals: { submitted: 5, succeeded: 3, dead: 2 },
      },
      {
        queue: "b",
        counts: { ...none, succeeded: 1 },
        totals: { submitted: 5, succeeded: 3, dead: 2 },
      },
      {
        queue: "default",
        counts: { ...none, succeeded: 1 },
        totals: { submitted: 3, succeeded: 3, dead: 0 },
      },
    ]);
    // Keeping everything of one queue leaves the others to the policy.
    await finish("a", "late", 2, succeed, T0 + 200);
    assert.deepEqual(
      await store.prune(
        { succeeded: { maxCount: 0 }, queues: { a: { succeeded: {} } } },
        T0 + 300,
        100,
      ),
      { succeeded: 2, dead: 0, skipped: false },
    );
    assert.equal((await store.list({ queue: "a" })).length, 6);
  });

  test("TaskStore.prune() deletes what either limit lets go when a rule sets both an age and a count", async (store) => {
    await finish(
      store,
      [10, 20, 30, 40, 50, 60].map((dt, i) => [
        `s${i + 1}`,
        "succeeded",
        T0 + dt,
      ]),
    );
    const now = T0 + 60;
    const all = ["s1", "s2", "s3", "s4", "s5", "s6"];
    // The age lets two go (cutoff T0 + 25), the count one: two go.
    const byAge: RetentionPolicy = {
      succeeded: { maxAgeMs: 35, maxCount: 5 },
    };
    // The age lets none go (cutoff T0 + 5), the count three: three go.
    const byCount: RetentionPolicy = {
      succeeded: { maxAgeMs: 55, maxCount: 3 },
    };
    assert.equal((await store.prunable(byAge, now)).succeeded, 2);
    assert.equal((await store.prunable(byCount, now)).succeeded, 3);
    assert.equal((await store.prune(byAge, now, 1)).succeeded, 1);
    assert.deepEqual(await kept(store, all), all.slice(1));
    assert.equal((await store.prune(byAge, now, 1)).succeeded, 1);
    assert.equal((await store.prune(byAge, now, 1)).succeeded, 0);
    assert.equal((await store.prunable(byCount, now)).succeeded, 1);
    assert.equal((await store.prune(byCount, now, 10)).succeeded, 1);
    assert.deepEqual(await kept(store, all), ["s4", "s5", "s6"]);
  });

  test("TaskStore.prune() deletes at most limit tasks per call, oldest first across statuses, and converges to what prunable counted when called repeatedly", async (store) => {
    const endings: Ending[] = [];
    for (let i = 0; i < 30; i++) {
      endings.push([`t${i}`, i % 3 === 0 ? "dead" : "succeeded", T0 + i]);
    }
    await finish(store, endings);
    const now = T0 + 100;
    const policy: RetentionPolicy = {
      succeeded: { maxCount: 5 },
      dead: { maxAgeMs: 80 },
    };
    // 20 succeeded, 5 kept; the dead finished before T0 + 20: t0 … t18.
    const counted = await store.prunable(policy, now);
    assert.deepEqual(counted, { succeeded: 15, dead: 7, skipped: false });
    assert.deepEqual(await store.prune(policy, now, 0), {
      succeeded: 0,
      dead: 0,
      skipped: false,
    });
    const first = await store.prune(policy, now, 7);
    assert.equal(first.succeeded + first.dead, 7);
    assert.deepEqual(
      await kept(store, endings.slice(0, 8).map(([id]) => id)),
      ["t7"],
      "the seven oldest went first",
    );
    let succeeded = first.succeeded;
    let dead = first.dead;
    for (let calls = 0;; calls++) {
      assert.ok(calls < 10, "prune converges");
      const result = await store.prune(policy, now, 7);
      assert.ok(result.succeeded + result.dead <= 7);
      if (result.succeeded + result.dead === 0) break;
      succeeded += result.succeeded;
      dead += result.dead;
    }
    assert.deepEqual([succeeded, dead], [counted.succeeded, counted.dead]);
    assert.deepEqual(await store.prunable(policy, now), {
      succeeded: 0,
      dead: 0,
      skipped: false,
    });
    const left = await store.list();
    assert.deepEqual(
      left.filter((r) => r.status === "succeeded").map((r) => r.id),
      ["t23", "t25", "t26", "t28", "t29"],
    );
    assert.deepEqual(
      left.filter((r) => r.status === "dead").map((r) => r.id),
      ["t21", "t24", "t27"],
    );
  });

  test("TaskStore.prune() and prunable() refuse a bad policy, time or limit when given one", async (store) => {
    const cases: [RetentionPolicy, number, number, ErrorConstructor][] = [
      [{ succeeded: { maxAgeMs: -1 } }, T0, 10, RangeError],
      [{ succeeded: { maxAgeMs: NaN } }, T0, 10, RangeError],
      [{ dead: { maxCount: 1.5 } }, T0, 10, RangeError],
      [{ dead: { maxCount: -1 } }, T0, 10, RangeError],
      [{ dead: { maxCount: "1" as unknown as number } }, T0, 10, TypeError],
      [{ dead: null as unknown as RetentionRule }, T0, 10, TypeError],
      [{ queued: {} } as unknown as RetentionPolicy, T0, 10, RangeError],
      [null as unknown as RetentionPolicy, T0, 10, TypeError],
      [{ dead: { maxAge: 1 } as RetentionRule }, T0, 10, TypeError],
      [{ queues: { "": {} } }, T0, 10, RangeError],
      [{ queues: { a: { dead: { maxCount: -1 } } } }, T0, 10, RangeError],
      [
        { queues: { a: { queued: {} } } } as RetentionPolicy,
        T0,
        10,
        RangeError,
      ],
      [
        { queues: [] } as unknown as RetentionPolicy,
        T0,
        10,
        TypeError,
      ],
      [{}, NaN, 10, RangeError],
      [{}, T0, -1, RangeError],
      [{}, T0, 1.5, RangeError],
    ];
    for (const [policy, now, limit, type] of cases) {
      const what = JSON.stringify([policy, now, limit]);
      await assert.rejects(
        store.prune(policy, now, limit),
        (error: unknown) =>
          error instanceof type &&
          /^Cannot prune tasks: /.test((error as Error).message),
        what,
      );
      if (limit === 10) {
        await assert.rejects(
          store.prunable(policy, now),
          (error: unknown) =>
            error instanceof type &&
            /^Cannot count prunable tasks: /.test((error as Error).message),
          what,
        );
      }
    }
  });

  test("TaskStore.prune() frees a task's key and id when it prunes the task", async (store) => {
    const [claim] = await claimAll(store, [task("a", { idempotencyKey: "k" })]);
    await store.commit(batch({ now: T0 + 1, settles: [succeed(claim!, 1)] }));
    const { inserted } = await store.commit(
      batch({ now: T0 + 2, inserts: [task("b", { idempotencyKey: "k" })] }),
    );
    assert.deepEqual([inserted[0]?.inserted, inserted[0]?.record.id], [
      false,
      "a",
    ]);
    assert.deepEqual(
      await store.prune({ succeeded: { maxCount: 0 } }, T0 + 3, 10),
      { succeeded: 1, dead: 0, skipped: false },
    );
    assert.equal(await store.get("a"), undefined);
    assert.equal(await store.getByKey("k"), undefined);
    const again = await store.commit(batch({
      now: T0 + 4,
      inserts: [task("c", { idempotencyKey: "k" }), task("a")],
    }));
    assert.deepEqual(
      again.inserted.map((o) => [o.inserted, o.record.id]),
      [[true, "c"], [true, "a"]],
    );
    assert.equal((await store.getByKey("k"))?.id, "c");
  });

  test("TaskStore.commit() takes a key over, leaving the old task its record but not its key, when the holder's dedupeUntil has passed", async (store) => {
    const [claim] = await claimAll(store, [
      task("a", { idempotencyKey: "k", dedupeUntil: T0 + 100 }),
    ]);
    assert.equal(claim?.dedupeUntil, T0 + 100);
    await store.commit(
      batch({ now: T0 + 1, settles: [succeed(claim!, "first")] }),
    );
    // At the window's end the key still deduplicates.
    const held = await store.commit(
      batch({ now: T0 + 100, inserts: [task("b", { idempotencyKey: "k" })] }),
    );
    assert.deepEqual(
      [held.inserted[0]?.inserted, held.inserted[0]?.record.id],
      [
        false,
        "a",
      ],
    );
    // Past it, the next insert takes the key; a second insert of the key
    // in the same batch is its duplicate.
    const taken = await store.commit(batch({
      now: T0 + 101,
      inserts: [
        task("b", { idempotencyKey: "k", payload: "second" }),
        task("c", { idempotencyKey: "k" }),
      ],
    }));
    assert.deepEqual(
      taken.inserted.map((o) => [o.inserted, o.record.id]),
      [[true, "b"], [false, "b"]],
    );
    assert.equal(taken.inserted[0]?.record.idempotencyKey, "k");
    assert.equal(taken.inserted[0]?.record.dedupeUntil, null);
    assert.equal(await store.get("c"), undefined);
    const old = await store.get("a");
    assert.deepEqual(
      [old?.status, old?.result, old?.idempotencyKey, old?.version],
      ["succeeded", "first", null, claim!.version + 1],
    );
    const current = await store.getByKey("k");
    assert.deepEqual([current?.id, current?.payload], ["b", "second"]);
    // b has no window: the key now deduplicates for as long as b is kept.
    const later = await store.commit(
      batch({ now: T0 + 1e9, inserts: [task("d", { idempotencyKey: "k" })] }),
    );
    assert.deepEqual(later.inserted.map((o) => [o.inserted, o.record.id]), [[
      false,
      "b",
    ]]);
    const counts = (await store.status(T0 + 1e9)).counts;
    assert.deepEqual([counts.queued, counts.succeeded], [1, 1]);
  });

  test("TaskStore.commit() keeps the batch's own first insert of a key when its dedupeUntil has already passed", async (store) => {
    const { inserted } = await store.commit(batch({
      now: T0,
      inserts: [
        task("x", { idempotencyKey: "w", dedupeUntil: T0 - 1 }),
        task("y", { idempotencyKey: "w" }),
      ],
    }));
    assert.deepEqual(
      inserted.map((o) => [o.inserted, o.record.id]),
      [[true, "x"], [false, "x"]],
    );
    // The next batch finds x's window passed and takes the key.
    const next = await store.commit(
      batch({ now: T0 + 1, inserts: [task("y", { idempotencyKey: "w" })] }),
    );
    assert.deepEqual(next.inserted.map((o) => [o.inserted, o.record.id]), [[
      true,
      "y",
    ]]);
    assert.equal((await store.get("x"))?.idempotencyKey, null);
    assert.equal((await store.getByKey("w"))?.id, "y");
  });

  test("TaskStore.commit() deduplicates a key until the holder's dedupeUntil when it is in the future", async (store) => {
    await store.commit(batch({
      inserts: [task("a", { idempotencyKey: "k", dedupeUntil: T0 + 1_000 })],
    }));
    for (const now of [T0 + 1, T0 + 999, T0 + 1_000]) {
      const { inserted } = await store.commit(batch({
        now,
        inserts: [task(`b${now}`, { idempotencyKey: "k" })],
      }));
      assert.equal(inserted[0]?.inserted, false, `at ${now - T0}`);
      assert.equal(inserted[0]?.record.id, "a");
      assert.equal(inserted[0]?.record.dedupeUntil, T0 + 1_000);
    }
    assert.equal((await store.list()).length, 1);
    await assert.rejects(
      store.commit(
        batch({ inserts: [task("n", { dedupeUntil: NaN })] }),
      ),
      RangeError,
    );
    await assert.rejects(
      store.commit(
        batch({
          inserts: [task("n", { dedupeUntil: "1" as unknown as number })],
        }),
      ),
      TypeError,
    );
  });

  test("TaskStore.status() keeps counts exact when inserts, claims, starts, settles, releases, recovery, requeue and prune change them", async (store) => {
    const check = (step: string, now = T0): Promise<void> =>
      checkCounts(store, step, now);
    const both = [{ queue: "default" }, { queue: "other" }];
    await check("empty");
    const { inserted, claimed } = await store.commit(batch({
      inserts: [
        task("a"),
        task("b", { queue: "other" }),
        task("c"),
        task("d", { claim: true, queue: "other" }),
        task("e", { claim: true, maxAttempts: 1 }),
        task("k1", { idempotencyKey: "k", queue: "other" }),
        task("k2", { idempotencyKey: "k" }),
      ],
      claimDue: 3,
      claimQueues: both,
    }));
    assert.equal(inserted.filter((o) => o.inserted).length, 6);
    await check("inserts and claims");
    const [a, b, c] = claimed;
    const d = inserted[3]!.record;
    const e = inserted[4]!.record;
    await store.commit(batch({
      now: T0 + 1,
      starts: [fence(a!), fence(e)],
      settles: [succeed(a!), retry(b!, T0 + 2), kill(c!), succeed(a!)],
      releases: [fence(d)],
    }));
    await check("starts, settles and releases", T0 + 1);
    const { recovered } = await store.commit(
      batch({ now: T0 + LEASE + 5, recover: true, claimDue: 1 }),
    );
    assert.equal(recovered, 1, "e is recovered to dead");
    await check("recovery and a claim", T0 + LEASE + 5);
    assert.equal(await store.requeue("all", T0 + LEASE + 6), 2);
    await check("requeue", T0 + LEASE + 6);
    await store.commit(
      batch({ now: T0 + LEASE + 7, claimDue: 100, claimQueues: both }),
    );
    await check("claim everything", T0 + LEASE + 7);
    const running = await store.list({ status: "running" });
    await store.commit(batch({
      now: T0 + LEASE + 8,
      settles: running.map((r, i) => i % 2 === 0 ? succeed(r) : kill(r)),
    }));
    await check("settle everything", T0 + LEASE + 8);
    await store.prune(
      { succeeded: { maxCount: 1 }, dead: { maxAgeMs: 0 } },
      T0 + LEASE + 9,
      2,
    );
    await check("a prune step", T0 + LEASE + 9);
    await store.prune({ succeeded: { maxCount: 0 } }, T0 + LEASE + 9, 100);
    await check("a prune to the end", T0 + LEASE + 9);
  });

  test("TaskStore.status() reports totals that only grow when tasks succeed, die, are requeued and are pruned", async (store) => {
    await finish(store, [
      ["s1", "succeeded", T0 + 1],
      ["s2", "succeeded", T0 + 2],
      ["d1", "dead", T0 + 3],
    ]);
    const totals = async (): Promise<[number, number]> => {
      const { succeeded, dead } = (await store.status(T0 + 10)).totals;
      return [succeeded, dead];
    };
    assert.deepEqual(await totals(), [2, 1]);
    const submitted = async (): Promise<number> =>
      (await store.status(T0 + 10)).totals.submitted;
    assert.equal(await submitted(), 3);
    assert.equal(await store.requeue(["d1"], T0 + 4), 1);
    assert.deepEqual(await totals(), [2, 1], "a requeue takes nothing back");
    const { claimed } = await store.commit(
      batch({ now: T0 + 5, claimDue: 1 }),
    );
    await store.commit(batch({ now: T0 + 6, settles: [kill(claimed[0]!)] }));
    assert.deepEqual(await totals(), [2, 2], "dead-lettered twice");
    await store.prune(
      { succeeded: { maxAgeMs: 0 }, dead: { maxAgeMs: 0 } },
      T0 + 10,
      100,
    );
    const status = await store.status(T0 + 10);
    assert.deepEqual([status.counts.succeeded, status.counts.dead], [0, 0]);
    assert.deepEqual(await totals(), [2, 2], "pruning lowers no total");
    assert.equal(await submitted(), 3, "nor the submitted total");
    await store.commit(batch({
      now: T0 + 11,
      inserts: [
        task("k1", { idempotencyKey: "k" }),
        task("k2", { idempotencyKey: "k" }),
        task("n"),
      ],
    }));
    assert.equal(await submitted(), 5, "a duplicate key inserts nothing");
  });

  test("TaskStore.status() keeps counts and totals exact when one commit holds inserts, claims, settles, releases, recovery and a key takeover", async (store) => {
    const [r1, r2, r3, r4, r5] = await claimAll(store, [
      task("r1"),
      task("r2"),
      task("r3"),
      task("r4"),
      task("r5"),
    ]);
    // Leases that end at T0: e1 never started (requeued by recovery),
    // e2 started on its only attempt (dead-lettered by recovery).
    const [, e2] = await claimAll(
      store,
      [
        task("e1"),
        task("e2", { maxAttempts: 1 }),
      ],
      T0,
      0,
    );
    await store.commit(batch({ starts: [fence(e2!)], leaseMs: 0 }));
    await store.commit(batch({
      inserts: [
        task("q1"),
        task("q2", { runAt: T0 + 50 }),
        task("holder", { idempotencyKey: "k", dedupeUntil: T0 }),
        task("kept", { idempotencyKey: "k2" }),
      ],
    }));
    const now = T0 + 1;
    const before = await store.status(now);
    const result = await store.commit(batch({
      now,
      renewals: [fence(r5!)],
      starts: [fence(r5!)],
      settles: [
        succeed(r1!),
        retry(r2!, now), // failed, due at once: claimed below
        kill(r3!),
        { ...succeed(r1!), charge: true }, // stale: r1 is settled
      ],
      releases: [fence(r4!), fence(r1!)], // r1's release is stale
      recover: true,
      inserts: [
        task("n1"),
        task("n2", { claim: true }),
        task("taker", { idempotencyKey: "k" }), // takes the key over
        task("dup", { idempotencyKey: "k2" }), // a duplicate
        task("n3", { runAt: T0 + 100 }),
      ],
      claimDue: 100,
    }));
    assert.deepEqual(result.settled, [true, true, true, false]);
    assert.deepEqual(result.released, [true, false]);
    assert.equal(result.recovered, 2);
    assert.deepEqual(
      result.inserted.map((o) => o.inserted),
      [true, true, true, false, true],
    );
    // Due now: q1, holder, kept, e1 and r4 (queued), r2 (failed), n1 and
    // taker (new); q2 and n3 are not due yet.
    assert.deepEqual(
      ids(result.claimed).sort(),
      ["e1", "holder", "kept", "n1", "q1", "r2", "r4", "taker"],
    );
    const status = await store.status(now);
    assert.deepEqual(status.counts, await listedCounts(store));
    assert.deepEqual(status.counts, {
      queued: 2,
      running: 10,
      succeeded: 1,
      failed: 0,
      dead: 2,
    });
    assert.deepEqual(status.totals, {
      submitted: before.totals.submitted + 4,
      succeeded: before.totals.succeeded + 1,
      dead: before.totals.dead + 2,
    });
  });

  test("TaskStore.recount() recomputes the counts from the tasks and keeps the totals when the counts are already exact", async (store) => {
    await finish(store, [
      ["s1", "succeeded", T0 + 1],
      ["d1", "dead", T0 + 2],
    ]);
    const [a] = await claimAll(store, [task("a"), task("b")], T0 + 3);
    await store.commit(batch({
      now: T0 + 4,
      settles: [retry(a!, T0 + 5)],
      inserts: [task("q")],
    }));
    await store.prune({ succeeded: { maxCount: 0 } }, T0 + 6, 10);
    const before = await store.status(T0 + 6);
    await store.recount();
    await store.recount();
    const after = await store.status(T0 + 6);
    assert.deepEqual(after, before);
    assert.deepEqual(after.counts, await listedCounts(store));
    assert.deepEqual(after.totals, { submitted: 5, succeeded: 1, dead: 1 });
    // Counting goes on from the recounted values.
    await store.commit(batch({ now: T0 + 7, inserts: [task("later")] }));
    assert.deepEqual(
      (await store.status(T0 + 7)).counts,
      await listedCounts(store),
    );
  });

  test("TaskStore.insertAll() inserts every batch, queued, with counts and totals kept when the source ends", async (store) => {
    await store.commit(batch({ inserts: [task("before")] }));
    const seen = await insertAll(
      store,
      stream([tasks("a", 100), tasks("b", 1), [], tasks("c", 250)]),
      T0 + 1,
    );
    assert.deepEqual(seen.map((outcomes) => outcomes.length), [100, 1, 0, 250]);
    assert.ok(seen.flat().every(([, inserted]) => inserted));
    assert.deepEqual(seen[2], []);
    const status = await store.status(T0 + 1);
    assert.deepEqual(status.counts, await listedCounts(store));
    assert.equal(status.counts.queued, 352);
    assert.equal(status.totals.submitted, 352);
    const c9 = await store.get("c9");
    assert.deepEqual(
      [c9?.status, c9?.attempts, c9?.createdAt, c9?.leaseUntil, c9?.version],
      ["queued", 0, T0 + 1, null, 0],
    );
    // In submission order: a claim takes the earlier batches first.
    const { claimed } = await store.commit(
      batch({ now: T0 + 2, claimDue: 3 }),
    );
    assert.deepEqual(ids(claimed), ["before", "a0", "a1"]);
  });

  test("TaskStore.insertAll() answers a stored key with its task and a key repeated across batches with the first", async (store) => {
    await store.commit(
      batch({ inserts: [task("old", { idempotencyKey: "k" })] }),
    );
    const seen = await insertAll(
      store,
      stream([
        [
          task("x", { idempotencyKey: "k" }),
          task("n1", { idempotencyKey: "n" }),
        ],
        [task("n2", { idempotencyKey: "n" }), task("free")],
      ]),
    );
    assert.deepEqual(seen, [
      [["old", false], ["n1", true]],
      [["n1", false], ["free", true]],
    ]);
    assert.equal(await store.get("x"), undefined);
    assert.equal(await store.get("n2"), undefined);
    assert.equal((await store.getByKey("n"))?.id, "n1");
    const status = await store.status(T0);
    assert.equal(status.counts.queued, 3);
    assert.equal(status.totals.submitted, 3);
  });

  test("TaskStore.insertAll() inserts nothing when a later batch holds a value it cannot store", async (store) => {
    await store.commit(batch({ inserts: [task("before")] }));
    const before = await store.status(T0);
    const bad = task("bad", { payload: () => 1 });
    await assert.rejects(
      insertAll(
        store,
        stream([
          tasks("a", 50, { idempotencyKey: null }),
          [task("k1", { idempotencyKey: "k" })],
          [...tasks("c", 10), bad],
        ]),
      ),
      TypeError,
    );
    assert.deepEqual(ids(await store.list()), ["before"]);
    assert.deepEqual(await store.status(T0), before);
    assert.equal(await store.getByKey("k"), undefined);
    // The store is usable afterwards, and the key is free.
    const { inserted } = await store.commit(
      batch({ inserts: [task("k2", { idempotencyKey: "k" })] }),
    );
    assert.equal(inserted[0]?.inserted, true);
    assert.deepEqual(
      (await store.status(T0)).counts,
      await listedCounts(store),
    );
  });

  test("TaskStore.insertAll() inserts nothing when the source throws after some batches", async (store) => {
    async function* failing(): AsyncGenerator<readonly NewTask[]> {
      yield tasks("a", 20);
      yield tasks("b", 20);
      throw new Error("Cannot read task 40: expected an object");
    }
    await assert.rejects(insertAll(store, failing()), /task 40/);
    assert.deepEqual(await store.list(), []);
    const status = await store.status(T0);
    assert.deepEqual(status.counts, await listedCounts(store));
    assert.equal(status.totals.submitted, 0);
  });

  test("TaskStore.insertAll() refuses a task to insert claimed and inserts nothing", async (store) => {
    await assert.rejects(
      insertAll(store, stream([tasks("a", 3), [task("c", { claim: true })]])),
      RangeError,
    );
    assert.deepEqual(await store.list(), []);
  });

  test("TaskStore.insertAll() lets a claim made while it reads its source take all of its tasks or none", async (store) => {
    const paused = Promise.withResolvers<void>();
    const resume = Promise.withResolvers<void>();
    async function* source(): AsyncGenerator<readonly NewTask[]> {
      yield tasks("a", 5);
      paused.resolve();
      await resume.promise;
      yield tasks("b", 5);
    }
    const inserting = insertAll(store, source());
    await paused.promise;
    const claim = store.commit(batch({ now: T0 + 1, claimDue: 100 }));
    resume.resolve();
    const [{ claimed }] = await Promise.all([claim, inserting]);
    assert.ok(
      claimed.length === 0 || claimed.length === 10,
      `claimed ${claimed.length} of 10`,
    );
    const status = await store.status(T0 + 1);
    assert.deepEqual(status.counts, await listedCounts(store));
    assert.equal(status.counts.queued + status.counts.running, 10);
  });

  // Named queues, priorities, claim filters, pause, cancel and remove.

  test("TaskStore.commit() claims by priority, then runAt, then submission order", async (store) => {
    await store.commit(batch({
      inserts: [
        task("low-old", { priority: -1, runAt: T0 - 100 }),
        task("mid-late", { runAt: T0 - 10 }),
        task("mid-early", { runAt: T0 - 20 }),
        task("mid-tie-1", { runAt: T0 - 10 }),
        task("high", { priority: 5, runAt: T0 }),
        task("high-future", { priority: 9, runAt: T0 + 1_000 }),
      ],
    }));
    const { claimed } = await store.commit(batch({ claimDue: 10 }));
    assert.deepEqual(ids(claimed), [
      "high",
      "mid-early",
      "mid-late",
      "mid-tie-1",
      "low-old",
    ]);
    assert.deepEqual(claimed.map((r) => r.priority), [5, 0, 0, 0, -1]);
    const future = await store.get("high-future");
    assert.deepEqual([future?.status, future?.priority], ["queued", 9]);
  });

  test("TaskStore.commit() claims only from the queues asked for, the default queue when none is given", async (store) => {
    await store.commit(batch({
      inserts: [
        task("d1"),
        task("e1", { queue: "emails" }),
        task("i1", { queue: "images", priority: 3 }),
        task("e2", { queue: "emails", priority: 1 }),
      ],
    }));
    assert.equal((await store.get("e1"))?.queue, "emails");
    assert.equal((await store.get("d1"))?.queue, "default");
    const first = await store.commit(batch({ claimDue: 10 }));
    assert.deepEqual(ids(first.claimed), ["d1"]);
    const second = await store.commit(batch({
      claimDue: 10,
      claimQueues: [{ queue: "emails" }, { queue: "nothing-here" }],
    }));
    assert.deepEqual(ids(second.claimed), ["e2", "e1"]);
    const third = await store.commit(batch({
      claimDue: 10,
      claimQueues: [{ queue: "images" }],
    }));
    assert.deepEqual(ids(third.claimed), ["i1"]);
    assert.deepEqual(
      ids(await store.list({ queue: "emails" })),
      ["e1", "e2"],
    );
    assert.deepEqual(
      ids(await store.list({ queue: "emails", status: "queued" })),
      [],
    );
  });

  test("TaskStore.commit() takes across queues in priority order up to claimDue, and no more of a queue than its limit", async (store) => {
    await store.commit(batch({
      inserts: [
        ...tasks("a", 4, { queue: "a", priority: 1 }),
        ...tasks("b", 4, { queue: "b", priority: 2 }),
      ],
    }));
    const { claimed } = await store.commit(batch({
      claimDue: 5,
      claimQueues: [{ queue: "a" }, { queue: "b", limit: 2 }],
    }));
    assert.deepEqual(ids(claimed), ["b0", "b1", "a0", "a1", "a2"]);
    const status = await store.status(T0);
    assert.deepEqual([status.counts.running, status.counts.queued], [5, 3]);
  });

  test("TaskStore.commit() claims only the task types asked for and leaves the others queued", async (store) => {
    await store.commit(batch({
      inserts: [
        task("x1", { type: "other" }),
        task("c1"),
        task("x2", { type: "other" }),
        task("c2"),
      ],
    }));
    const { claimed } = await store.commit(batch({
      claimDue: 10,
      claimTypes: ["compute", "absent"],
    }));
    assert.deepEqual(ids(claimed), ["c1", "c2"]);
    const none = await store.commit(batch({ claimDue: 10, claimTypes: [] }));
    assert.deepEqual(ids(none.claimed), []);
    assert.deepEqual(
      (await store.list({ status: "queued" })).map((r) => r.id),
      ["x1", "x2"],
    );
  });

  test("TaskStore.setPaused() stops claims of a queue and claimed inserts into it until resumed", async (store) => {
    await store.setPaused("emails", true, T0);
    assert.deepEqual(await store.queueStates(), [
      { name: "emails", paused: true, updatedAt: T0 },
    ]);
    const { inserted, claimed } = await store.commit(batch({
      inserts: [
        task("e1", { queue: "emails" }),
        task("e2", { queue: "emails", claim: true }),
        task("d1", { claim: true }),
      ],
      claimDue: 10,
      claimQueues: [{ queue: "emails" }, { queue: "default" }],
    }));
    assert.deepEqual(
      inserted.map((o) => [o.record.id, o.record.status]),
      [["e1", "queued"], ["e2", "queued"], ["d1", "running"]],
    );
    assert.deepEqual(ids(claimed), []);
    assert.equal((await store.get("e2"))?.status, "queued");
    assert.equal((await store.get("e2"))?.leaseUntil, null);
    await store.setPaused("emails", false, T0 + 1);
    assert.deepEqual(await store.queueStates(), [
      { name: "emails", paused: false, updatedAt: T0 + 1 },
    ]);
    const after = await store.commit(batch({
      claimDue: 10,
      claimQueues: [{ queue: "emails" }],
    }));
    assert.deepEqual(ids(after.claimed), ["e1", "e2"]);
    await assert.rejects(store.setPaused("", true, T0), RangeError);
  });

  test("TaskStore.cancel() dead-letters queued, failed and running tasks, fences the claim, and reports finished and missing ids", async (store) => {
    const [running] = await claimAll(store, [task("run")]);
    const [f, ok] = await claimAll(store, [task("f"), task("ok")]);
    await store.commit(batch({
      starts: [fence(f!)],
      settles: [retry(f!, T0 + 50_000), succeed(ok!)],
      inserts: [task("q")],
    }));
    const before = await store.status(T0);
    const outcomes = await store.cancel(
      ["q", "f", "run", "ok", "nope"],
      T0 + 5,
    );
    assert.deepEqual(outcomes.slice(0, 3), [
      { id: "q", outcome: "cancelled", was: "queued" },
      { id: "f", outcome: "cancelled", was: "failed" },
      { id: "run", outcome: "cancelled", was: "running" },
    ]);
    assert.deepEqual(outcomes[4], {
      id: "nope",
      outcome: "missing",
      was: null,
    });
    for (const id of ["q", "f", "run"]) {
      const record = (await store.get(id))!;
      assert.equal(record.status, "dead");
      assert.equal(record.lastError, "Cannot run task: cancelled");
      assert.equal(record.errorClass, "permanent");
      assert.equal(record.leaseUntil, null);
    }
    // The running attempt's claim is fenced off: its renewal and settle
    // are refused.
    const late = await store.commit(batch({
      renewals: [fence(running!)],
      settles: [succeed(running!)],
    }));
    assert.deepEqual([late.renewed, late.settled], [[false], [false]]);
    assert.equal((await store.get("run"))?.status, "dead");
    const again = await store.cancel(["q"], T0 + 6);
    assert.deepEqual(again, [{ id: "q", outcome: "finished", was: "dead" }]);
    const status = await store.status(T0 + 6);
    assert.deepEqual(status.counts, await listedCounts(store));
    assert.equal(status.totals.dead, before.totals.dead + 3);
    // Nothing claims a cancelled task.
    const next = await store.commit(batch({ now: T0 + 60_000, claimDue: 10 }));
    assert.ok(!ids(next.claimed).some((id) => ["q", "f"].includes(id)));
  });

  test("TaskStore.remove() deletes tasks that are not running and frees their keys", async (store) => {
    const [running] = await claimAll(store, [task("run")]);
    await store.commit(batch({
      inserts: [task("q", { idempotencyKey: "k" }), task("q2")],
    }));
    const outcomes = await store.remove(["q", "run", "gone"]);
    assert.deepEqual(outcomes, [
      { id: "q", outcome: "removed" },
      { id: "run", outcome: "running" },
      { id: "gone", outcome: "missing" },
    ]);
    assert.equal(await store.get("q"), undefined);
    assert.equal((await store.get("run"))?.version, running!.version);
    const { inserted } = await store.commit(batch({
      inserts: [task("q3", { idempotencyKey: "k" })],
    }));
    assert.equal(inserted[0]?.inserted, true);
    const status = await store.status(T0);
    assert.deepEqual(status.counts, await listedCounts(store));
  });

  test("TaskStore.commit() refuses a bad queue name, priority or claim filter before changing anything", async (store) => {
    await assert.rejects(
      store.commit(batch({ inserts: [task("a", { queue: "" })] })),
      RangeError,
    );
    await assert.rejects(
      store.commit(batch({ inserts: [task("a", { queue: "x\0y" })] })),
      TypeError,
    );
    await assert.rejects(
      store.commit(batch({ inserts: [task("a", { priority: 1.5 })] })),
      /priority must be an integer/,
    );
    await assert.rejects(
      store.commit(batch({ inserts: [task("a", { priority: 2 ** 31 })] })),
      /priority must be an integer/,
    );
    await assert.rejects(
      store.commit(batch({
        claimDue: 1,
        claimQueues: [{ queue: "a", limit: -1 }],
      })),
      /limit must be a non-negative integer/,
    );
    assert.deepEqual(await store.list(), []);
  });

  test("TaskStore.close() is idempotent and later calls reject when the store is closed", async (store) => {
    await store.close();
    await store.close();
    await assert.rejects(store.commit(batch({})), /closed/);
    await assert.rejects(store.get("a"), /closed/);
    await assert.rejects(store.status(T0), /closed/);
  });
  // Progress and checkpoints: fenced writes of a running claim's state.
  // A requeue from the dead-letter queue clears both (a requeued task
  // starts over); everything else keeps them.

  test("TaskStore.commit() records progress and a checkpoint only when they present the running claim's version", async (store) => {
    const [a, b] = await startAll(store, [task("a"), task("b")]);
    const fresh = await store.get("a");
    assert.equal(fresh?.progress, null);
    assert.equal(fresh?.checkpoint, null);
    const result = await store.commit(batch({
      now: T0 + 5,
      progress: [
        { id: "a", version: a!.version, value: { done: 1, of: 4 } },
        { id: "a", version: a!.version, value: { done: 2, of: 4 } },
        { id: "b", version: b!.version + 1, value: 7 },
        { id: "missing", version: 1, value: 1 },
      ],
      checkpoints: [
        { id: "a", version: a!.version, value: { cursor: "k2" } },
        { id: "b", version: b!.version - 1, value: { cursor: "x" } },
      ],
    }));
    assert.deepEqual(result.progressed, [true, true, false, false]);
    assert.deepEqual(result.checkpointed, [true, false]);
    const after = await store.get("a");
    assert.deepEqual(after, {
      ...fresh!,
      progress: { done: 2, of: 4 },
      checkpoint: { cursor: "k2" },
    }, "the last value wins; version, lease and updatedAt stay");
    assert.deepEqual(
      [(await store.get("b"))?.progress, (await store.get("b"))?.checkpoint],
      [null, null],
    );
    // null clears.
    const cleared = await store.commit(batch({
      progress: [{ id: "a", version: a!.version, value: null }],
    }));
    assert.deepEqual(cleared.progressed, [true]);
    assert.equal((await store.get("a"))?.progress, null);
  });

  test("TaskStore.commit() ignores progress and a checkpoint from a stale claim when the task was recovered and reclaimed", async (store) => {
    const [old] = await startAll(store, [task("a")], T0, 100);
    await store.commit(batch({
      now: T0 + 50,
      checkpoints: [{ id: "a", version: old!.version, value: { page: 3 } }],
    }));
    assert.equal(await store.recoverExpired(T0 + 101), 1);
    const { claimed } = await store.commit(
      batch({ claimDue: 1, now: T0 + 102 }),
    );
    const current = claimed[0]!;
    assert.deepEqual(current.checkpoint, { page: 3 }, "the claim returns it");
    const stale = await store.commit(batch({
      now: T0 + 103,
      progress: [{ id: "a", version: old!.version, value: 99 }],
      checkpoints: [{ id: "a", version: old!.version, value: { page: 0 } }],
    }));
    assert.deepEqual([stale.progressed, stale.checkpointed], [[false], [
      false,
    ]]);
    assert.deepEqual(await store.get("a"), current);
    // A finished task takes no more writes, even with its last version.
    await store.commit(batch({ settles: [succeed(current, "ok")] }));
    const late = await store.commit(batch({
      checkpoints: [{ id: "a", version: current.version, value: 1 }],
    }));
    assert.deepEqual(late.checkpointed, [false]);
    assert.deepEqual((await store.get("a"))?.checkpoint, { page: 3 });
  });

  test("TaskStore.commit() keeps a checkpoint written with the settle for the retry's claim when both are in one batch", async (store) => {
    const [claim] = await startAll(store, [task("a")]);
    const { checkpointed, settled } = await store.commit(batch({
      now: T0 + 10,
      checkpoints: [{ id: "a", version: claim!.version, value: [1, 2] }],
      progress: [{ id: "a", version: claim!.version, value: 0.5 }],
      settles: [retry(claim!, T0 + 20)],
    }));
    assert.deepEqual([checkpointed, settled], [[true], [true]]);
    const { claimed } = await store.commit(
      batch({ claimDue: 1, now: T0 + 20 }),
    );
    assert.equal(claimed[0]?.id, "a");
    assert.deepEqual(claimed[0]?.checkpoint, [1, 2]);
    assert.equal(claimed[0]?.progress, 0.5);
  });

  test("TaskStore.commit() keeps the checkpoint when a claim is released or its lease is recovered", async (store) => {
    const [a, b] = await startAll(store, [task("a"), task("b")], T0, 100);
    await store.commit(batch({
      now: T0 + 1,
      leaseMs: 100,
      checkpoints: [
        { id: "a", version: a!.version, value: "a-state" },
        { id: "b", version: b!.version, value: "b-state" },
      ],
      releases: [{ id: "a", version: a!.version, refund: true }],
    }));
    const { recovered } = await store.commit(
      batch({ now: T0 + 200, recover: true }),
    );
    assert.equal(recovered, 1);
    const { claimed } = await store.commit(
      batch({ claimDue: 2, now: T0 + 201 }),
    );
    assert.deepEqual(
      claimed.map((r) => [r.id, r.checkpoint]).sort(),
      [["a", "a-state"], ["b", "b-state"]],
    );
  });

  test("TaskStore.requeue() clears progress and the checkpoint when it revives a dead task", async (store) => {
    const [claim] = await startAll(store, [task("a")]);
    await store.commit(batch({
      progress: [{ id: "a", version: claim!.version, value: 3 }],
      checkpoints: [{ id: "a", version: claim!.version, value: { n: 3 } }],
      settles: [kill(claim!)],
    }));
    const dead = await store.get("a");
    assert.deepEqual([dead?.progress, dead?.checkpoint], [3, { n: 3 }]);
    assert.equal(await store.requeue(["a"], T0 + 5), 1);
    const requeued = await store.get("a");
    assert.deepEqual([requeued?.progress, requeued?.checkpoint], [null, null]);
  });

  if (values === "json") {
    test("TaskStore.commit() refuses a checkpoint that is not plain JSON data and applies nothing", async (store) => {
      const [claim] = await startAll(store, [task("a")]);
      await assert.rejects(
        store.commit(batch({
          renewals: [fence(claim!)],
          checkpoints: [{
            id: "a",
            version: claim!.version,
            value: new Map(),
          }],
        })),
        TypeError,
      );
      assert.equal((await store.get("a"))?.checkpoint, null);
    });
  }
  // -- schedules: the optional schedule methods, on every store --

  const schedule = (
    name: string,
    fields: Partial<NewSchedule> = {},
  ): NewSchedule => ({
    name,
    cron: "*/5 * * * *",
    tz: "UTC",
    task: { type: "compute", payload: { n: 1 }, queue: "q", priority: 2 },
    nextTick: T0 + 300_000,
    ...fields,
  });
  const fireOf = (
    record: ScheduleRecord,
    tick: number,
    fields: Partial<ScheduleFire> = {},
  ): ScheduleFire => ({
    name: record.name,
    version: record.version,
    tick,
    nextTick: tick + 300_000,
    task: task(`tick-${tick}`, {
      idempotencyKey: `schedule:${record.name}:${tick}`,
    }),
    now: tick,
    ...fields,
  });
  const schedules = (store: TaskStore): Required<
    Pick<
      TaskStore,
      "putSchedule" | "deleteSchedule" | "listSchedules" | "fireSchedule"
    >
  > => {
    assert.ok(store.putSchedule && store.deleteSchedule);
    assert.ok(store.listSchedules && store.fireSchedule);
    return {
      putSchedule: store.putSchedule.bind(store),
      deleteSchedule: store.deleteSchedule.bind(store),
      listSchedules: store.listSchedules.bind(store),
      fireSchedule: store.fireSchedule.bind(store),
    };
  };

  test("TaskStore.putSchedule() stores a schedule that listSchedules() reads back, and replaces it by name keeping createdAt and lastTick", async (store) => {
    const s = schedules(store);
    const first = await s.putSchedule(schedule("b"), T0);
    assert.deepEqual(first, {
      ...schedule("b"),
      lastTick: null,
      createdAt: T0,
      updatedAt: T0,
      version: first.version,
    });
    await s.putSchedule(schedule("a", { tz: "Europe/Berlin" }), T0);
    assert.deepEqual((await s.listSchedules()).map((r) => r.name), ["a", "b"]);
    const fired = await s.fireSchedule(fireOf(first, T0 + 300_000));
    assert.equal(fired.fired, true);
    const replaced = await s.putSchedule(
      schedule("b", { cron: "0 * * * *", nextTick: T0 + 3_600_000 }),
      T0 + 400_000,
    );
    assert.equal(replaced.cron, "0 * * * *");
    assert.equal(replaced.nextTick, T0 + 3_600_000);
    assert.equal(replaced.lastTick, T0 + 300_000);
    assert.equal(replaced.createdAt, T0);
    assert.equal(replaced.updatedAt, T0 + 400_000);
    assert.ok(replaced.version > first.version + 1);
    assert.deepEqual(
      (await s.listSchedules()).find((r) => r.name === "b"),
      replaced,
    );
    assert.equal(await s.deleteSchedule("b"), true);
    assert.equal(await s.deleteSchedule("b"), false);
    assert.deepEqual((await s.listSchedules()).map((r) => r.name), ["a"]);
  });

  test("TaskStore.fireSchedule() advances the schedule and inserts its task in one step, and refuses a stale version", async (store) => {
    const s = schedules(store);
    const record = await s.putSchedule(schedule("every"), T0);
    const tick = T0 + 300_000;
    const fire = fireOf(record, tick);
    const outcome = await s.fireSchedule(fire);
    assert.equal(outcome.fired, true);
    assert.equal(outcome.inserted?.inserted, true);
    assert.equal(outcome.inserted?.record.id, fire.task.id);
    const [after] = await s.listSchedules();
    assert.equal(after?.lastTick, tick);
    assert.equal(after?.nextTick, tick + 300_000);
    assert.equal(after?.updatedAt, tick);
    const stored = await store.getByKey(fire.task.idempotencyKey!);
    assert.equal(stored?.status, "queued");
    assert.deepEqual(stored?.payload, fire.task.payload);
    // The same version again (a second process that read it too): nothing.
    const again = await s.fireSchedule(
      fireOf(record, tick, { task: task("other", { idempotencyKey: "k2" }) }),
    );
    assert.deepEqual(again, { fired: false, inserted: null });
    assert.equal(await store.get("other"), undefined);
    // A removed schedule fires nothing.
    await s.deleteSchedule("every");
    assert.equal(
      (await s.fireSchedule(fireOf(after!, tick + 300_000))).fired,
      false,
    );
    assert.equal((await store.status(T0)).counts.queued, 1);
  });

  test("TaskStore.fireSchedule() never runs a recorded tick again when its task was pruned and its key is free", async (store) => {
    const s = schedules(store);
    const record = await s.putSchedule(schedule("pruned"), T0);
    const tick = T0 + 300_000;
    await s.fireSchedule(fireOf(record, tick));
    const { claimed } = await store.commit(batch({ now: tick, claimDue: 1 }));
    await store.commit(batch({ now: tick, settles: [succeed(claimed[0]!)] }));
    await store.prune({ succeeded: { maxCount: 0 } }, tick + 1, 10);
    assert.equal(await store.getByKey(`schedule:pruned:${tick}`), undefined);
    // The current version, but the tick already recorded: refused.
    const [current] = await s.listSchedules();
    assert.equal(
      (await s.fireSchedule(
        fireOf(current!, tick, {
          task: task("again", { idempotencyKey: `schedule:pruned:${tick}` }),
        }),
      )).fired,
      false,
    );
    assert.equal(await store.get("again"), undefined);
    // The next tick runs.
    assert.equal(
      (await s.fireSchedule(fireOf(current!, tick + 300_000))).fired,
      true,
    );
  });

  test("TaskStore.fireSchedule() fires a tick once when several fire it at once", async (store) => {
    const s = schedules(store);
    const record = await s.putSchedule(schedule("race"), T0);
    const tick = T0 + 300_000;
    const outcomes = await Promise.all(
      ["p1", "p2", "p3", "p4"].map((id) =>
        s.fireSchedule(
          fireOf(record, tick, {
            task: task(id, { idempotencyKey: `schedule:race:${tick}` }),
          }),
        )
      ),
    );
    assert.equal(outcomes.filter((o) => o.fired).length, 1);
    assert.equal((await store.list()).length, 1);
    assert.equal((await store.status(T0)).totals.submitted, 1);
  });

  test("TaskStore.fireSchedule() advances the schedule when the tick's key is already held, answering with the holder", async (store) => {
    const s = schedules(store);
    const record = await s.putSchedule(schedule("held"), T0);
    const tick = T0 + 300_000;
    const key = `schedule:held:${tick}`;
    await store.commit(
      batch({ inserts: [task("holder", { idempotencyKey: key })] }),
    );
    const outcome = await s.fireSchedule(
      fireOf(record, tick, { task: task("late", { idempotencyKey: key }) }),
    );
    assert.equal(outcome.fired, true);
    assert.equal(outcome.inserted?.inserted, false);
    assert.equal(outcome.inserted?.record.id, "holder");
    assert.equal((await s.listSchedules())[0]?.lastTick, tick);
  });
}
