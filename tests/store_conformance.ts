/**
 * The conformance suite every {@linkcode TaskStore} must pass. It uses only
 * the interface, so each implementation (SQLite over either driver, memory,
 * and later PostgreSQL) runs the same cases.
 *
 * @module
 */
import assert from "node:assert/strict";
import type {
  CommitBatch,
  NewTask,
  Settlement,
  TaskRecord,
  TaskStore,
} from "../lib/store/store.ts";

/** A fixed epoch-ms base, well past 2^32, so 32-bit truncation would show. */
/** The clock of the store tests: an epoch-ms time past 2^32. */
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
    claimIds: [],
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

/** Inserts the tasks and claims exactly them at `now`. */
async function claimAll(
  store: TaskStore,
  tasks: NewTask[],
  now = T0,
  leaseMs = LEASE,
): Promise<TaskRecord[]> {
  const { claimed } = await store.commit(
    batch({ inserts: tasks, claimIds: tasks.map((t) => t.id), now, leaseMs }),
  );
  assert.deepEqual(ids(claimed), tasks.map((t) => t.id));
  return claimed;
}

/**
 * Registers the conformance cases for one store implementation. Each case
 * opens a fresh, empty store and closes it at the end.
 *
 * @param name Shown in every test name, e.g. `"sqlite-ffi"`.
 * @param open Returns a new, empty store.
 */
export function storeConformance(
  name: string,
  open: () => Promise<TaskStore> | TaskStore,
): void {
  function test(
    title: string,
    body: (store: TaskStore) => Promise<void>,
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
      idempotencyKey: "key-1",
      payload,
      status: "queued",
      attempts: 0,
      maxAttempts: 3,
      runAt: T0 + 5,
      leaseUntil: null,
      createdAt: T0,
      updatedAt: T0,
      outputKey: null,
      result: null,
      lastError: null,
      errorClass: null,
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

  test("TaskStore.commit() claims due tasks in runAt order up to claimDue when they are queued", async (store) => {
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
      assert.equal(record.attempts, 1);
      assert.equal(record.version, 1);
      assert.equal(record.leaseUntil, now + LEASE);
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

  test("TaskStore.commit() claims only claimable tasks when claimIds names them", async (store) => {
    const [done, running, retrying, waiting] = await claimAll(store, [
      task("done"),
      task("running"),
      task("retrying"),
      task("waiting"),
    ]);
    await store.commit(batch({
      now: T0 + 1,
      settles: [
        succeed(done!),
        {
          id: retrying!.id,
          version: retrying!.version,
          outcome: {
            kind: "retry",
            runAt: T0 + 10,
            error: "Cannot fetch: 503",
            errorClass: "transient",
          },
        },
        {
          id: waiting!.id,
          version: waiting!.version,
          outcome: {
            kind: "retry",
            runAt: T0 + 1_000,
            error: "Cannot fetch: 503",
            errorClass: "transient",
          },
        },
      ],
      inserts: [task("queued"), task("delayed", { runAt: T0 + 1_000 })],
    }));
    const { claimed } = await store.commit(batch({
      now: T0 + 10,
      claimIds: [
        "done",
        "running",
        "retrying",
        "waiting",
        "queued",
        "delayed",
        "unknown",
        "queued",
      ],
    }));
    assert.deepEqual(ids(claimed), ["retrying", "queued"]);
    assert.equal(claimed[0]!.attempts, 2);
    assert.equal(claimed[1]!.attempts, 1);
    assert.equal((await store.get("running"))?.version, running!.version);
  });

  test("TaskStore.commit() never claims a task twice when two commits race for it", async (store) => {
    await store.commit(batch({
      inserts: Array.from({ length: 20 }, (_, i) => task(`t${i}`)),
    }));
    const wanted = ["t0", "t1", "t2", "t3"];
    const [a, b] = await Promise.all([
      store.commit(batch({ claimIds: wanted, claimDue: 8 })),
      store.commit(batch({ claimIds: wanted, claimDue: 8 })),
    ]);
    const all = [...ids(a!.claimed), ...ids(b!.claimed)];
    assert.equal(new Set(all).size, all.length);
    assert.equal(all.length, 20);
    for (const id of wanted) {
      assert.equal(all.filter((x) => x === id).length, 1);
    }
    const { claimed } = await store.commit(
      batch({ claimIds: wanted, claimDue: 8 }),
    );
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
    assert.equal(record.attempts, 1);
    assert.equal(record.version, 1);
    assert.equal(record.leaseUntil, T0 + LEASE);
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

  test("TaskStore.commit() extends a lease only when the renewal presents the claim's version", async (store) => {
    const { inserted } = await store.commit(batch({
      inserts: [{ ...task("a"), claim: true }, { ...task("b"), claim: true }],
      now: T0,
      leaseMs: LEASE,
    }));
    const [a, b] = inserted.map((o) => o.record);
    const { renewed } = await store.commit(batch({
      renewals: [
        { id: "a", version: a!.version, leaseUntil: T0 + 3 * LEASE },
        { id: "b", version: b!.version + 1, leaseUntil: T0 + 3 * LEASE },
        { id: "missing", version: 1, leaseUntil: T0 + 3 * LEASE },
      ],
    }));
    assert.deepEqual(renewed, [true, false, false]);
    assert.equal((await store.get("a"))?.leaseUntil, T0 + 3 * LEASE);
    assert.equal((await store.get("b"))?.leaseUntil, T0 + LEASE);
    assert.equal(
      (await store.get("a"))?.version,
      a!.version,
      "a renewal keeps the token",
    );
    // Past b's lease only b is recovered; a renewal after that is refused.
    assert.equal(await store.recoverExpired(T0 + LEASE + 1), 1);
    const late = await store.commit(batch({
      renewals: [{ id: "b", version: b!.version, leaseUntil: T0 + 4 * LEASE }],
    }));
    assert.deepEqual(late.renewed, [false]);
    assert.equal((await store.get("b"))?.status, "queued");
  });

  test("TaskStore.commit() records success when the settle presents the claim's version", async (store) => {
    const [claim] = await claimAll(store, [task("a")]);
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
    const [claim] = await claimAll(store, [task("a")]);
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
    assert.equal(due.claimed[0]!.attempts, 2);
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
      batch({ claimIds: ["a"], claimDue: 5, now: T0 + 10_000 }),
    );
    assert.deepEqual(claimed, []);
  });

  test("TaskStore.commit() refuses a stale settle when the task was recovered and reclaimed", async (store) => {
    const [old] = await claimAll(store, [task("a")], T0, 100);
    assert.equal(await store.recoverExpired(T0 + 101), 1);
    const { claimed } = await store.commit(
      batch({ claimIds: ["a"], now: T0 + 102 }),
    );
    const current = claimed[0]!;
    assert.equal(current.attempts, 2);
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
    const fresh = await store.commit(batch({
      now: T0 + 104,
      settles: [succeed(current, "fresh"), succeed(current, "twice")],
    }));
    assert.deepEqual(fresh.settled, [true, false]);
    assert.equal((await store.get("a"))?.result, "fresh");
  });

  test("TaskStore.recoverExpired() requeues expired leases and dead-letters exhausted tasks when now passes them", async (store) => {
    await claimAll(
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
    assert.equal(claimed[0]!.attempts, 1);
  });

  test("TaskStore.list() filters by status and pages when given limit and offset", async (store) => {
    await store.commit(batch({
      inserts: ["a", "b", "c", "d", "e"].map((id) => task(id)),
    }));
    await store.commit(batch({ now: T0 - 10, inserts: [task("older")] }));
    await store.commit(batch({ claimIds: ["b", "d"] }));
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

  test("TaskStore.status() counts tasks, ages the oldest due task and counts recent successes when asked", async (store) => {
    const empty = await store.status(T0);
    assert.deepEqual(empty, {
      counts: { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 },
      oldestQueuedAgeMs: null,
      recentSucceeded: 0,
      windowMs: 60_000,
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
    const status = await store.status(T0 + 6_000, 3_000);
    assert.deepEqual(status.counts, {
      queued: 3,
      running: 1,
      succeeded: 2,
      failed: 1,
      dead: 1,
    });
    assert.equal(status.oldestQueuedAgeMs, 4_000);
    assert.equal(status.recentSucceeded, 1);
    assert.equal(status.windowMs, 3_000);
    const wide = await store.status(T0 + 6_000, 5_000);
    assert.equal(wide.recentSucceeded, 2);
    assert.equal(wide.windowMs, 5_000);
    await store.commit(
      batch({ claimIds: ["q-old", "q-new"], now: T0 + 6_000 }),
    );
    assert.equal((await store.status(T0 + 6_000)).oldestQueuedAgeMs, null);
    assert.equal((await store.status(T0 + 9_500)).oldestQueuedAgeMs, 500);
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
    const { claimed } = await store.commit(batch({ claimIds: [nasty] }));
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

  test("TaskStore.close() is idempotent and later calls reject when the store is closed", async (store) => {
    await store.close();
    await store.close();
    await assert.rejects(store.commit(batch({})), /closed/);
    await assert.rejects(store.get("a"), /closed/);
    await assert.rejects(store.status(T0), /closed/);
  });
}
