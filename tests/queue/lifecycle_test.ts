/**
 * The task life cycle under real work: tasks longer than a lease, graceful
 * close past its deadline, SIGKILL, and recovery by another process. Each
 * case runs on SQLite, and on PostgreSQL when SLUICE_TEST_PG is set. The
 * assertions are invariants that do not depend on scheduling: they hold
 * with both cores busy.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { TaskEventName } from "../../lib/queue/events.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { QueueClosedError, TaskFailedError } from "../../lib/queue/types.ts";
import { tempDir, waitFor } from "../_helpers.ts";
import {
  BACKENDS,
  lines,
  restartAndDrain,
  settledStore,
  tally,
} from "./_support.ts";

const handlers = new URL("../fixtures/queue_handlers.ts", import.meta.url);
const CHILD = fileURLToPath(
  new URL("../fixtures/lifecycle_child.ts", import.meta.url),
);

/** Counts the events of the given names a queue emits. */
function countEvents<N extends TaskEventName>(
  queue: TaskQueue,
  names: readonly N[],
): Record<N, number> {
  const counts = {} as Record<N, number>;
  for (const name of names) {
    counts[name] = 0;
    queue.on(name, () => counts[name]++);
  }
  return counts;
}

const TROUBLE = [
  "stale_settle",
  "lease_lost",
  "recovered",
  "dead",
  "released",
] as const;

for (const backend of BACKENDS) {
  Deno.test(`[${backend.name}] TaskQueue runs each task once, settles none stale and dead-letters none when tasks take 4× the lease`, async (t) => {
    // The lease is 100 ms and each task takes 400 ms on one worker, so the
    // last of six waits 20 leases before it starts. A healthy process keeps
    // every claim alive, wherever the task waits, and never recovers its
    // own tasks.
    await using tmp = await tempDir();
    const options = {
      handlers,
      workers: 1,
      leaseMs: 100,
      retry: { maxAttempts: 1 },
      logger: { level: "error" as const },
    };
    for (const variant of ["submitted here", "claimed from the store"]) {
      await t.step(variant, async () => {
        const dir = `${tmp.path}/${variant.replaceAll(" ", "-")}`;
        await Deno.mkdir(dir);
        await using db = backend.create(dir);
        const store = await db.open();
        try {
          const tasks = Array.from({ length: 6 }, (_, i) => ({
            type: "tracked",
            payload: { dir, key: `k${i}`, delayMs: 400 },
          }));
          let ids: string[];
          let events: Record<string, number>;
          if (variant === "submitted here") {
            await using queue = await TaskQueue.open({ ...options, db: store });
            events = countEvents(queue, TROUBLE);
            const handles = await queue.submitMany(tasks);
            ids = handles.map((h) => h.id);
            const results = await Promise.all(handles.map((h) => h.result));
            assert.deepEqual(results, tasks.map((task) => task.payload.key));
          } else {
            await using producer = await TaskQueue.open({
              db: store,
              consume: false,
              logger: { level: "error" },
            });
            ids = (await producer.submitMany(tasks)).map((h) => h.id);
            await using consumer = await TaskQueue.open({
              ...options,
              db: store,
              pollIntervalMs: 20,
            });
            events = countEvents(consumer, TROUBLE);
            let succeeded = 0;
            const done = Promise.withResolvers<void>();
            consumer.on("succeeded", () => {
              if (++succeeded === tasks.length) done.resolve();
            });
            await done.promise;
          }
          const starts = tally(await lines(`${dir}/starts.log`));
          assert.deepEqual([...starts.values()], [1, 1, 1, 1, 1, 1]);
          assert.deepEqual(events, {
            stale_settle: 0,
            lease_lost: 0,
            recovered: 0,
            dead: 0,
            released: 0,
          });
          for (const id of ids) {
            const record = await store.get(id);
            assert.equal(record?.status, "succeeded");
            assert.equal(record?.attempts, 1);
          }
        } finally {
          await store.close();
        }
      });
    }
  });

  Deno.test(`[${backend.name}] TaskQueue.close() past its deadline hands work back uncharged, so a restart with maxAttempts 1 finishes every task`, async () => {
    await using tmp = await tempDir();
    await using db = backend.create(tmp.path);
    const store = await db.open();
    try {
      const options = {
        db: store,
        handlers,
        workers: 1,
        concurrency: 2,
        graceMs: 100,
        retry: { maxAttempts: 1 },
        logger: { level: "error" as const },
      };
      const tasks = Array.from({ length: 6 }, (_, i) => ({
        type: "gated",
        payload: { dir: tmp.path, key: `k${i}` },
      }));
      let ids: string[];
      {
        const queue = await TaskQueue.open(options);
        const handles = await queue.submitMany(tasks);
        ids = handles.map((h) => h.id);
        // Two handlers are running (and charged); four wait in the channel.
        await waitFor(
          async () => (await lines(`${tmp.path}/starts.log`)).length === 2,
          {
            what: "two gated tasks to start",
          },
        );
        const report = await queue.close({ deadline: 0 });
        assert.equal(report.drained, false);
        assert.deepEqual(report.unfinishedIds.sort(), [...ids].sort());
        for (const handle of handles) {
          await assert.rejects(handle.result, QueueClosedError);
        }
      }
      for (const id of ids) {
        const record = await store.get(id);
        assert.equal(record?.status, "queued", `task ${id} was handed back`);
        assert.equal(record?.attempts, 0, `task ${id} carries no charge`);
      }
      await Deno.writeTextFile(`${tmp.path}/release`, "");
      {
        await using queue = await TaskQueue.open({
          ...options,
          pollIntervalMs: 20,
        });
        const events = countEvents(queue, ["dead"]);
        await settledStore(store);
        assert.equal(events.dead, 0);
      }
      for (const id of ids) {
        const record = await store.get(id);
        assert.equal(record?.status, "succeeded");
        assert.equal(record?.attempts, 1);
      }
    } finally {
      await store.close();
    }
  });

  Deno.test(`[${backend.name}] TaskQueue after SIGKILL leaves a charge only on the tasks whose handlers were running`, async () => {
    await using tmp = await tempDir();
    await using db = backend.create(tmp.path);
    const store = await db.open();
    try {
      // 2 workers × 1 slot, 12 gated tasks that never finish on their own.
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          CHILD,
          db.url,
          db.schema ?? "-",
          tmp.path,
          "12",
          "gated",
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      try {
        await waitFor(
          async () => (await lines(`${tmp.path}/starts.log`)).length === 2,
          {
            timeoutMs: 20_000,
            what: "both slots to run a task",
          },
        );
        // Kill once both starts are charged in the store.
        await waitFor(async () => {
          const rows = await store.list({ status: "running" });
          return rows.filter((r) => r.attempts > 0).length === 2;
        }, { what: "the two starts to be written" });
      } finally {
        child.kill("SIGKILL");
        await child.output();
      }
      const started = new Set(await lines(`${tmp.path}/starts.log`));
      const rows = await store.list();
      assert.equal(rows.length, 12, "no accepted task was lost");
      const charged = rows.filter((r) => r.attempts > 0);
      assert.ok(charged.length <= 2, `${charged.length} carry a charge`);
      for (const row of charged) {
        assert.ok(
          started.has((row.payload as { key: string }).key),
          `${row.id} is charged but never ran`,
        );
      }
      // After the leases run out, the charged tasks (maxAttempts 1) are
      // dead-lettered; the others were never charged and all succeed.
      await restartAndDrain(store, tmp.path, handlers);
      const { counts } = await store.status(Date.now());
      assert.equal(counts.succeeded + counts.dead, 12);
      assert.ok(counts.dead <= 2, `${counts.dead} dead`);
      for (const row of await store.list({ status: "dead" })) {
        assert.ok(started.has((row.payload as { key: string }).key));
      }
    } finally {
      await store.close();
    }
  });

  Deno.test(`[${backend.name}] TaskQueue answers a handle with TaskFailedError when another process's recovery dead-letters its task`, async () => {
    await using tmp = await tempDir();
    await using db = backend.create(tmp.path);
    const store = await db.open();
    const other = await db.open();
    try {
      await using queue = await TaskQueue.open({
        db: store,
        handlers,
        workers: 1,
        retry: { maxAttempts: 1 },
        pollIntervalMs: 20,
        logger: { level: "error" },
      });
      const lost = countEvents(queue, ["lease_lost", "stale_settle"]);
      const handle = await queue.submit({
        type: "gated",
        payload: { dir: tmp.path, key: "k" },
      });
      await waitFor(async () => (await store.get(handle.id))?.attempts === 1, {
        what: "the start to be charged",
      });
      // Another process, whose clock is far ahead, finds the lease expired.
      assert.equal(await other.recoverExpired(Date.now() + 3_600_000), 1);
      await Deno.writeTextFile(`${tmp.path}/release`, "");
      const error = await handle.result.catch((e: unknown) => e);
      assert.ok(error instanceof TaskFailedError, String(error));
      assert.match(error.message, /lease expired/);
      await queue.drain();
      assert.equal(lost.stale_settle + lost.lease_lost >= 1, true);
    } finally {
      await other.close();
      await store.close();
    }
  });

  Deno.test(`[${backend.name}] TaskQueue.submit() refuses a type or key holding NUL or a lone surrogate with TypeError`, async () => {
    await using tmp = await tempDir();
    await using db = backend.create(tmp.path);
    const store = await db.open();
    try {
      await using queue = await TaskQueue.open({
        db: store,
        handlers,
        workers: 1,
        logger: { level: "error" },
      });
      for (
        const task of [
          { type: "echo", idempotencyKey: "nul\0A" },
          { type: "echo", idempotencyKey: "lone\uD800" },
          { type: "ec\0ho" },
          { type: "echo\uDC00" },
        ]
      ) {
        await assert.rejects(
          queue.submit(task),
          (error: unknown) =>
            error instanceof TypeError &&
            /contains U\+0000 or a lone surrogate/.test(error.message),
        );
      }
      const handle = await queue.submit({
        type: "echo",
        payload: "fine",
        idempotencyKey: "nul-free",
      });
      assert.equal(await handle.result, "fine");
      const { counts } = await store.status(Date.now());
      assert.equal(counts.succeeded, 1, "nothing else was stored");
    } finally {
      await store.close();
    }
  });
}

Deno.test("TaskQueue drains tasks that wait many leases in the channel behind a timeout", async () => {
  // The shape that once never finished: one worker, a timeout longer than
  // the lease, and tasks that wait far longer than a lease before they
  // start. The timeout is 20 times a task's work, so a busy machine cannot
  // time a task out.
  await using tmp = await tempDir();
  await using queue = await TaskQueue.open({
    db: `${tmp.path}/t.db`,
    handlers,
    workers: 1,
    timeoutMs: 1000,
    graceMs: 50,
    leaseMs: 60,
    retry: { maxAttempts: 1 },
    logger: { level: "error" },
  });
  const events = countEvents(queue, TROUBLE);
  const handles = await queue.submitMany(
    Array.from({ length: 20 }, (_, i) => ({
      type: "tracked",
      payload: { dir: tmp.path, key: `k${i}`, delayMs: 50 },
    })),
  );
  await queue.drain();
  for (const handle of handles) assert.match(String(await handle.result), /^k/);
  assert.deepEqual(
    [...tally(await lines(`${tmp.path}/starts.log`)).values()],
    Array(20).fill(1),
  );
  assert.equal(events.dead + events.stale_settle + events.lease_lost, 0);
});

Deno.test("TaskQueue emits submitted, dispatched, started and succeeded in order, and its metrics agree", async () => {
  await using queue = await TaskQueue.open({ handlers, workers: 1 });
  const seen: string[] = [];
  for (
    const name of [
      "submitted",
      "dispatched",
      "started",
      "succeeded",
      "retry",
      "dead",
    ] as const
  ) {
    queue.on(
      name,
      (event) => seen.push(`${name}:${"id" in event ? event.id : ""}`),
    );
  }
  const ok = await queue.submit({ type: "echo", payload: 1 });
  await ok.result;
  assert.deepEqual(seen, [
    `submitted:${ok.id}`,
    `dispatched:${ok.id}`,
    `started:${ok.id}`,
    `succeeded:${ok.id}`,
  ]);
  seen.length = 0;
  const flaky = await queue.submit({ type: "flaky", payload: { failures: 1 } });
  assert.equal(await flaky.result, 2);
  assert.deepEqual(seen, [
    `submitted:${flaky.id}`,
    `dispatched:${flaky.id}`,
    `started:${flaky.id}`,
    `retry:${flaky.id}`,
    `dispatched:${flaky.id}`,
    `started:${flaky.id}`,
    `succeeded:${flaky.id}`,
  ]);
  const counters = queue.metrics.snapshot().counters;
  assert.equal(counters.succeeded, 2);
  assert.equal(counters.retried, 1);
  assert.equal(counters.dequeued, 3);
});
