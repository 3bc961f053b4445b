/**
 * Retention and key windows through the queue: what a consuming queue
 * prunes (and counts), what it keeps, how it refuses bad options, and how
 * `dedupeFor` frees a key, on the memory store and the durable backends.
 *
 * Ages are set with the store's own clock: finished tasks are seeded with
 * a batch `now` in the past, so no test waits for time to pass except the
 * key windows, which wait (under a deadline) until `dedupeUntil` is over.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import type { TaskQueueOptions } from "../../lib/queue/types.ts";
import { MemoryTaskStore } from "../../lib/store/memory_store.ts";
import type { TaskStatus, TaskStore } from "../../lib/store/store.ts";
import { tempDir, waitFor } from "../_helpers.ts";
import { type Backend, BACKENDS, type Database, lines } from "./_support.ts";

const handlers = new URL("../fixtures/queue_handlers.ts", import.meta.url);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const memory: Backend = {
  name: "memory",
  create(): Database {
    return {
      kind: "memory",
      url: "",
      schema: undefined,
      open: () => Promise.resolve(new MemoryTaskStore()),
      [Symbol.asyncDispose]: () => Promise.resolve(),
    };
  },
};

/** The memory store and every durable backend available here. */
const ALL: readonly Backend[] = [memory, ...BACKENDS];

/**
 * Runs `body` with a fresh store of `backend`, closed (and its database
 * dropped) afterwards.
 */
async function withStore(
  backend: Backend,
  body: (store: TaskStore, db: Database) => Promise<void>,
): Promise<void> {
  await using tmp = await tempDir();
  await using db = backend.create(tmp.path);
  const store = await db.open();
  try {
    await body(store, db);
  } finally {
    await store.close();
  }
}

/** Opens a quiet one-worker queue on `store`. */
function openQueue(
  store: TaskStore,
  options: Partial<TaskQueueOptions> = {},
): Promise<TaskQueue> {
  return TaskQueue.open({
    db: store,
    handlers,
    workers: 1,
    logger: { level: "silent" },
    ...options,
  });
}

/**
 * Writes `count` tasks straight to the store, finished as `status` at
 * `at`: the store's clock for them is `at`, so retention sees them that
 * old.
 */
async function seedFinished(
  store: TaskStore,
  count: number,
  status: "succeeded" | "dead",
  at: number,
): Promise<string[]> {
  const ids = Array.from({ length: count }, () => crypto.randomUUID());
  const base = { settles: [], claimDue: 0, leaseMs: HOUR, now: at };
  const inserted = await store.commit({
    ...base,
    inserts: ids.map((id, i) => ({
      id,
      type: "echo",
      idempotencyKey: null,
      payload: i,
      maxAttempts: 1,
      runAt: at,
      claim: true,
    })),
  });
  assert.ok(inserted.inserted.every((o) => o.inserted));
  const settled = await store.commit({
    ...base,
    inserts: [],
    settles: inserted.inserted.map(({ record }) => ({
      id: record.id,
      version: record.version,
      charge: true,
      outcome: status === "succeeded"
        ? { kind: "succeeded", result: record.payload, outputKey: null }
        : { kind: "dead", error: "seeded", errorClass: "permanent" },
    })),
  });
  assert.ok(settled.settled.every((ok) => ok));
  return ids;
}

/** The ids of the store's tasks in `status`, sorted. */
async function idsIn(store: TaskStore, status: TaskStatus): Promise<string[]> {
  return (await store.list({ status, limit: 1_000_000 })).map((r) => r.id)
    .sort();
}

for (const backend of ALL) {
  Deno.test(`TaskQueue keeps exactly maxCount succeeded tasks and counts the rest as pruned on ${backend.name}`, async () => {
    await withStore(backend, async (store) => {
      const submitted = 25;
      const kept = 10;
      const queue = await openQueue(store, {
        retention: { succeeded: { maxCount: kept }, intervalMs: 10 },
      });
      let ids: string[];
      try {
        const handles = await queue.submitMany(
          Array.from({ length: submitted }, (_, i) => ({
            type: "echo",
            payload: i,
          })),
        );
        ids = handles.map((h) => h.id);
        await Promise.all(handles.map((h) => h.result));
        await waitFor(
          () => queue.metrics.counter("pruned") >= submitted - kept,
          { what: "retention to prune the oldest succeeded tasks" },
        );
      } finally {
        // Stops the pruner after its batch in progress, so the counts
        // below are final.
        await queue.close();
      }
      assert.equal(queue.metrics.counter("pruned"), submitted - kept);
      const remaining = await idsIn(store, "succeeded");
      assert.equal(remaining.length, kept);
      assert.ok(remaining.every((id) => ids.includes(id)));
    });
  });

  Deno.test(`TaskQueue prunes exactly the succeeded tasks older than maxAgeMs on ${backend.name}`, async () => {
    await withStore(backend, async (store) => {
      const now = Date.now();
      const old = await seedFinished(store, 5, "succeeded", now - 2 * HOUR);
      const recent = await seedFinished(store, 4, "succeeded", now - HOUR / 2);
      const queue = await openQueue(store, {
        retention: { succeeded: { maxAgeMs: HOUR }, intervalMs: 10 },
      });
      let fresh: string[];
      try {
        const handles = await queue.submitMany(
          [1, 2, 3].map((i) => ({ type: "echo", payload: i })),
        );
        fresh = handles.map((h) => h.id);
        await Promise.all(handles.map((h) => h.result));
        await waitFor(
          () => queue.metrics.counter("pruned") >= old.length,
          { what: "retention to prune the old tasks" },
        );
      } finally {
        await queue.close();
      }
      assert.equal(queue.metrics.counter("pruned"), old.length);
      assert.deepEqual(
        await idsIn(store, "succeeded"),
        [...recent, ...fresh].sort(),
      );
      for (const id of old) assert.equal(await store.get(id), undefined);
    });
  });

  Deno.test(`TaskQueue keeps dead tasks and prunes day-old succeeded ones by default on ${backend.name}`, async () => {
    await withStore(backend, async (store) => {
      const now = Date.now();
      const oldDead = await seedFinished(store, 4, "dead", now - 30 * DAY);
      const oldDone = await seedFinished(store, 3, "succeeded", now - 2 * DAY);
      const queue = await openQueue(store, { retry: { maxAttempts: 1 } });
      let done: string;
      let dead: string;
      try {
        const ok = await queue.submit({ type: "echo", payload: "ok" });
        const failing = await queue.submit({
          type: "flaky",
          payload: { failures: 9 },
        });
        done = ok.id;
        dead = failing.id;
        assert.equal(await ok.result, "ok");
        await assert.rejects(failing.result);
        // The first round runs as the queue starts; later ones a second
        // apart.
        await waitFor(
          () => queue.metrics.counter("pruned") >= oldDone.length,
          { what: "the default retention to prune day-old tasks" },
        );
      } finally {
        await queue.close();
      }
      assert.equal(queue.metrics.counter("pruned"), oldDone.length);
      assert.deepEqual(await idsIn(store, "succeeded"), [done]);
      assert.deepEqual(await idsIn(store, "dead"), [...oldDead, dead].sort());
    });
  });

  Deno.test(`TaskQueue keeps every finished task when retention is false on ${backend.name}`, async () => {
    await withStore(backend, async (store) => {
      const old = await seedFinished(store, 3, "succeeded", 1);
      const queue = await openQueue(store, { retention: false });
      let pruneEvents = 0;
      queue.on("pruned", () => pruneEvents++);
      let fresh: string[];
      try {
        const handles = await queue.submitMany(
          Array.from({ length: 20 }, (_, i) => ({ type: "echo", payload: i })),
        );
        fresh = handles.map((h) => h.id);
        await Promise.all(handles.map((h) => h.result));
      } finally {
        await queue.close();
      }
      assert.equal(pruneEvents, 0);
      assert.equal(queue.metrics.counter("pruned"), 0);
      assert.deepEqual(
        await idsIn(store, "succeeded"),
        [...old, ...fresh].sort(),
      );
    });
  });

  Deno.test(`TaskQueue.submit() with dedupeFor answers a duplicate within the window with the first task on ${backend.name}`, async () => {
    await withStore(backend, async (store) => {
      await using queue = await openQueue(store);
      const first = await queue.submit({
        type: "echo",
        payload: "first",
        idempotencyKey: "k",
        dedupeFor: HOUR,
      });
      const concurrent = await queue.submit({
        type: "echo",
        payload: "concurrent",
        idempotencyKey: "k",
        dedupeFor: HOUR,
      });
      assert.equal(await first.result, "first");
      const later = await queue.submit({
        type: "echo",
        payload: "later",
        idempotencyKey: "k",
      });
      for (const duplicate of [concurrent, later]) {
        assert.equal(duplicate.deduplicated, true);
        assert.equal(duplicate.id, first.id);
        assert.equal(await duplicate.result, "first");
      }
      assert.equal(queue.metrics.counter("succeeded"), 1);
      assert.deepEqual(await idsIn(store, "succeeded"), [first.id]);
    });
  });

  Deno.test(`TaskQueue.submit() runs a key again as a new task once its dedupeFor window is over on ${backend.name}`, async () => {
    await withStore(backend, async (store) => {
      await using queue = await openQueue(store);
      const first = await queue.submit({
        type: "echo",
        payload: "first",
        idempotencyKey: "k",
        dedupeFor: 50,
      });
      assert.equal(await first.result, "first");
      const until = (await queue.getTask(first.id))?.dedupeUntil;
      assert.equal(typeof until, "number");
      await waitFor(() => Date.now() > until!, { what: "the window to end" });
      const second = await queue.submit({
        type: "echo",
        payload: "second",
        idempotencyKey: "k",
      });
      assert.equal(second.deduplicated, false);
      assert.notEqual(second.id, first.id);
      assert.equal(await second.result, "second");
      // The first task keeps its record without the key; the key is the
      // second task's now, with no window: it deduplicates from here on.
      const old = await queue.getTask(first.id);
      assert.equal(old?.result, "first");
      assert.equal(old?.idempotencyKey, null);
      assert.equal((await store.getByKey("k"))?.id, second.id);
      const third = await queue.submit({
        type: "echo",
        payload: "third",
        idempotencyKey: "k",
      });
      assert.equal(third.id, second.id);
      assert.equal(await third.result, "second");
    });
  });

  Deno.test(`TaskQueue.submit() runs a key again when its window ends while the first task still runs on ${backend.name}`, async () => {
    await withStore(backend, async (store) => {
      await using tmp = await tempDir();
      await using queue = await openQueue(store, { workers: 2 });
      const first = await queue.submit({
        type: "gated",
        payload: { dir: tmp.path, key: "a" },
        idempotencyKey: "k",
        dedupeFor: 50,
      });
      await waitFor(
        async () => (await lines(`${tmp.path}/starts.log`)).includes("a"),
        { what: "the first task to start" },
      );
      const until = (await queue.getTask(first.id))?.dedupeUntil;
      await waitFor(() => Date.now() > until!, { what: "the window to end" });
      const second = await queue.submit({
        type: "gated",
        payload: { dir: tmp.path, key: "b" },
        idempotencyKey: "k",
      });
      assert.equal(second.deduplicated, false);
      assert.notEqual(second.id, first.id);
      await Deno.writeTextFile(`${tmp.path}/release`, "");
      assert.equal(await first.result, "a");
      assert.equal(await second.result, "b");
      assert.deepEqual(
        (await lines(`${tmp.path}/starts.log`)).sort(),
        ["a", "b"],
      );
    });
  });

  Deno.test(`TaskQueue.submit() refuses a bad dedupeFor on ${backend.name}`, async () => {
    await withStore(backend, async (store) => {
      await using queue = await openQueue(store);
      for (const bad of [0, -5, NaN, Infinity, "60000"]) {
        await assert.rejects(
          async () =>
            await queue.submit({
              type: "echo",
              idempotencyKey: "k",
              dedupeFor: bad as number,
            }),
          (error: Error) =>
            error instanceof RangeError &&
            /^Cannot submit .*: dedupeFor must be a finite number of ms > 0, got /
              .test(error.message) &&
            error.message.endsWith(String(bad)),
        );
      }
      await assert.rejects(
        async () => await queue.submit({ type: "echo", dedupeFor: 1000 }),
        (error: Error) =>
          error instanceof TypeError &&
          /^Cannot submit .*: dedupeFor needs an idempotencyKey$/.test(
            error.message,
          ),
      );
      assert.deepEqual(await store.list(), []);
    });
  });
}

for (const backend of BACKENDS) {
  Deno.test(`TaskQueue keeps a key's dedupeFor window across a restart on ${backend.name}`, async () => {
    await using tmp = await tempDir();
    await using db = backend.create(tmp.path);
    let long: string;
    let short: string;
    let shortUntil: number;
    {
      const store = await db.open();
      try {
        await using queue = await openQueue(store);
        const a = await queue.submit({
          type: "echo",
          payload: "long-1",
          idempotencyKey: "long",
          dedupeFor: HOUR,
        });
        const b = await queue.submit({
          type: "echo",
          payload: "short-1",
          idempotencyKey: "short",
          dedupeFor: 50,
        });
        assert.equal(await a.result, "long-1");
        assert.equal(await b.result, "short-1");
        long = a.id;
        short = b.id;
        shortUntil = (await queue.getTask(short))!.dedupeUntil!;
      } finally {
        await store.close();
      }
    }
    const store = await db.open();
    try {
      await using queue = await openQueue(store);
      const again = await queue.submit({
        type: "echo",
        payload: "long-2",
        idempotencyKey: "long",
      });
      assert.equal(again.deduplicated, true);
      assert.equal(again.id, long);
      assert.equal(await again.result, "long-1");
      await waitFor(() => Date.now() > shortUntil, {
        what: "the short window to end",
      });
      const next = await queue.submit({
        type: "echo",
        payload: "short-2",
        idempotencyKey: "short",
      });
      assert.equal(next.deduplicated, false);
      assert.notEqual(next.id, short);
      assert.equal(await next.result, "short-2");
      assert.equal(queue.metrics.counter("succeeded"), 1);
    } finally {
      await store.close();
    }
  });
}

Deno.test("TaskQueue.open() refuses bad retention options with the option and its value", async () => {
  const cases: [unknown, ErrorConstructor, RegExp][] = [
    [
      { succeeded: { maxCount: -1 } },
      RangeError,
      /^Cannot open queue: retention\.succeeded\.maxCount must be a non-negative number or Infinity, got -1$/,
    ],
    [
      { dead: { maxAgeMs: NaN } },
      RangeError,
      /^Cannot open queue: retention\.dead\.maxAgeMs must be a non-negative number or Infinity, got NaN$/,
    ],
    [
      { succeeded: { maxCount: 1.5 } },
      RangeError,
      /^Cannot open queue: retention\.succeeded\.maxCount must be an integer or Infinity, got 1\.5$/,
    ],
    [
      { succeded: { maxCount: 10 } },
      TypeError,
      /^Cannot open queue: retention has no option "succeded"$/,
    ],
    [
      { succeeded: { maxAge: 1000 } },
      TypeError,
      /^Cannot open queue: retention\.succeeded has no option "maxAge"$/,
    ],
    [
      { succeeded: 100 },
      TypeError,
      /^Cannot open queue: retention\.succeeded must be an object, got number$/,
    ],
    [
      { succeeded: { maxAgeMs: "1d" } },
      TypeError,
      /^Cannot open queue: retention\.succeeded\.maxAgeMs must be a number, got string$/,
    ],
    [
      { queues: { reports: { dead: { maxCount: -1 } } } },
      RangeError,
      /^Cannot open queue: retention\.queues\["reports"\]\.dead\.maxCount must be a non-negative number or Infinity, got -1$/,
    ],
    [
      { queues: { reports: { sucess: {} } } },
      RangeError,
      /^Cannot open queue: retention\.queues\["reports"\] can only name succeeded and dead, got "sucess"$/,
    ],
    [
      { queues: { "": {} } },
      RangeError,
      /^Cannot open queue: a queue name in retention\.queues must have 1 to 128 characters, got ""$/,
    ],
    [
      { queues: ["reports"] },
      TypeError,
      /^Cannot open queue: retention\.queues must be an object, got an array$/,
    ],
    [
      "1d",
      TypeError,
      /^Cannot open queue: retention must be an object or false, got string$/,
    ],
    [
      null,
      TypeError,
      /^Cannot open queue: retention must be an object or false, got null$/,
    ],
    [
      true,
      TypeError,
      /^Cannot open queue: retention must be an object or false, got boolean$/,
    ],
    [
      [],
      TypeError,
      /^Cannot open queue: retention must be an object or false, got array$/,
    ],
    [
      { intervalMs: 0 },
      RangeError,
      /^Cannot open queue: retention\.intervalMs must be an integer >= 1, got 0$/,
    ],
    [
      { batchSize: NaN },
      RangeError,
      /^Cannot open queue: retention\.batchSize must be an integer >= 1, got NaN$/,
    ],
  ];
  for (const [retention, type, message] of cases) {
    await assert.rejects(
      () =>
        TaskQueue.open({
          handlers,
          workers: 1,
          retention: retention as false,
        }),
      (error: Error) => error instanceof type && message.test(error.message),
      `retention: ${JSON.stringify(retention)}`,
    );
  }
});
