/**
 * Named queues, task types claimed only where exported, priorities, pause
 * and cancel, through real queues on SQLite (and PostgreSQL when
 * SLUICE_TEST_PG is set): two "processes" are two queues on one database.
 * Every wait is on a file or a handle; nothing sleeps.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TaskCancelledError } from "../../lib/errors.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import type { TaskInput, TaskQueueOptions } from "../../lib/queue/types.ts";
import { tempDir, waitFor } from "../_helpers.ts";
import { BACKENDS, type Database, lines } from "./_support.ts";

const emails = new URL("../fixtures/fleet_handlers.ts", import.meta.url);
const images = new URL("../fixtures/fleet_images.ts", import.meta.url);

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function openOn(
  db: Database,
  options: TaskQueueOptions,
): Promise<TaskQueue> {
  const store = await db.open();
  const queue = await TaskQueue.open({
    db: store,
    workers: 1,
    pollIntervalMs: 20,
    ...options,
  });
  const close = queue.close.bind(queue);
  // The test's store is closed with the queue.
  queue.close = async (closeOptions) => {
    const report = await close(closeOptions);
    await store.close();
    return report;
  };
  return queue;
}

for (const backend of BACKENDS) {
  Deno.test(`[${backend.name}] two fleets with different queues and handler modules each run only their own tasks, and none is dead-lettered for being unknown`, async () => {
    await using dir = await tempDir();
    await using db = backend.create(dir.path);
    await using mail = await openOn(db, {
      handlers: emails,
      queues: ["emails"],
    });
    await using img = await openOn(db, {
      handlers: images,
      queues: ["images"],
    });
    const handles = [];
    for (let i = 0; i < 10; i++) {
      const key = String(i);
      // Each fleet submits the other's work too: it must not run it.
      handles.push(
        await mail.submit({
          type: "resize",
          queue: "images",
          payload: { dir: dir.path, key },
        }),
        await img.submit({
          type: "sendEmail",
          queue: "emails",
          payload: { dir: dir.path, key },
        }),
      );
    }
    // A task of a type neither module exports, in a queue one of them
    // claims from: it waits, and is never dead-lettered.
    const stray = await mail.submit({
      type: "nobodyRunsThis",
      queue: "emails",
      payload: null,
    });
    for (const handle of handles) await handle.result;
    const runs = await lines(`${dir.path}/runs.log`);
    assert.equal(runs.filter((l) => l.startsWith("email ")).length, 10);
    assert.equal(runs.filter((l) => l.startsWith("resize ")).length, 10);
    assert.equal(runs.length, 20);
    const store = mail.store;
    assert.equal((await store.get(stray.id))?.status, "queued");
    assert.deepEqual(await store.list({ status: "dead" }), []);
    const emailsRun = await store.list({ queue: "emails" });
    assert.equal(emailsRun.length, 11);
    // Its submitter stops waiting for it once it is cancelled.
    await mail.cancel([stray.id]);
    await assert.rejects(stray.result, TaskCancelledError);
  });

  Deno.test(`[${backend.name}] a paused queue is claimed by no process until resumed, and tasks submitted meanwhile wait`, async () => {
    await using dir = await tempDir();
    await using db = backend.create(dir.path);
    await using runner = await openOn(db, {
      handlers: emails,
      queues: ["emails"],
    });
    await using admin = await openOn(db, { consume: false });
    await admin.pause("emails");
    assert.deepEqual(
      (await runner.queueStates()).map((s) => [s.name, s.paused]),
      [["emails", true]],
    );
    const fromAdmin = await admin.submit({
      type: "sendEmail",
      queue: "emails",
      payload: { dir: dir.path, key: "a" },
    });
    const fromRunner = await runner.submit({
      type: "sendEmail",
      queue: "emails",
      payload: { dir: dir.path, key: "b" },
    });
    // Several poll intervals pass, proven by a task of an unpaused
    // queue the runner's own process completes meanwhile: nothing ran.
    await using other = await openOn(db, { handlers: images });
    for (let i = 0; i < 3; i++) {
      await (await other.submit({
        type: "resize",
        payload: { dir: dir.path, key: `tick${i}` },
      })).result;
    }
    assert.equal((await runner.getTask(fromAdmin.id))?.status, "queued");
    assert.equal((await runner.getTask(fromRunner.id))?.status, "queued");
    await admin.resume("emails");
    assert.equal(await fromRunner.result, "b");
    assert.equal(await fromAdmin.result, "a");
  });

  Deno.test(`[${backend.name}] higher priorities run first, then earlier runAt, then submission order`, async () => {
    await using dir = await tempDir();
    await using db = backend.create(dir.path);
    await using queue = await openOn(db, {
      handlers: emails,
      concurrency: 1,
    });
    await queue.pause("default");
    const now = Date.now();
    const specs: [string, number, number][] = [
      ["low", -5, now - 50],
      ["mid-late", 0, now - 10],
      ["mid-early", 0, now - 20],
      ["high", 10, now],
      ["mid-late-2", 0, now - 10],
    ];
    const handles = [];
    for (const [key, priority, runAt] of specs) {
      handles.push(
        await queue.submit({
          type: "ordered",
          priority,
          runAt,
          payload: { dir: dir.path, key },
        }),
      );
    }
    await queue.resume("default");
    for (const handle of handles) await handle.result;
    assert.deepEqual(await lines(`${dir.path}/runs.log`), [
      "order high",
      "order mid-early",
      "order mid-late",
      "order mid-late-2",
      "order low",
    ]);
  });

  Deno.test(`[${backend.name}] cancel stops a running task in another process through its signal, is not retried, and rejects its handle`, async () => {
    await using dir = await tempDir();
    await using db = backend.create(dir.path);
    await using runner = await openOn(db, {
      handlers: emails,
      leaseMs: 600,
    });
    await using admin = await openOn(db, { consume: false });
    const running = await runner.submit({
      type: "cancellable",
      maxAttempts: 5,
      payload: { dir: dir.path, key: "r" },
    });
    const later = await runner.submit({
      type: "sendEmail",
      runAt: Date.now() + 3_600_000,
      payload: { dir: dir.path, key: "later" },
    });
    await waitFor(() => exists(`${dir.path}/started-r`), {
      what: "the handler to start",
    });
    const outcomes = await admin.cancel([running.id, later.id, "no-such-id"]);
    assert.deepEqual(outcomes.map((o) => o.outcome), [
      "cancelled",
      "cancelled",
      "missing",
    ]);
    await assert.rejects(running.result, TaskCancelledError);
    await assert.rejects(later.result, TaskCancelledError);
    assert.deepEqual(await lines(`${dir.path}/aborts.log`), [
      "r TaskCancelledError",
    ]);
    const record = await admin.getTask(running.id);
    assert.equal(record?.status, "dead");
    // The attempt is charged only if its start was written before the
    // cancel fenced the claim off; it is never run again either way.
    assert.ok(record!.attempts <= 1, `attempts: ${record?.attempts}`);
    assert.equal(record?.lastError, "Cannot run task: cancelled");
    assert.deepEqual(await admin.cancel([running.id]), [
      { id: running.id, outcome: "finished", was: "dead" },
    ]);
    assert.ok(!exists(`${dir.path}/runs.log`), "the delayed task never ran");
    assert.deepEqual(await admin.remove([later.id]), [
      { id: later.id, outcome: "removed" },
    ]);
    assert.equal(await admin.getTask(later.id), undefined);
  });
}

/** The most spans of `spans.log` whose queue is `prefix` that overlap. */
async function maxOverlap(dir: string, prefix: string): Promise<number> {
  const spans = (await lines(`${dir}/spans.log`))
    .map((line) => line.split(" "))
    .filter(([key]) => key!.startsWith(prefix))
    .map(([, start, end]) => [Number(start), Number(end)] as const);
  let most = 0;
  for (const [start] of spans) {
    // The spans running at this one's start.
    const running = spans.filter(([s, e]) => s <= start && start < e).length;
    most = Math.max(most, running);
  }
  return most;
}

async function limitedRun(
  dir: string,
  producer: TaskQueue,
  consumer: TaskQueue,
): Promise<void> {
  const spans = (queue: string, n: number): TaskInput[] =>
    Array.from({ length: n }, (_, i) => ({
      type: "spanned",
      queue,
      payload: { dir, key: `${queue}${i}`, ms: 15 },
    }));
  const handles = [
    ...await producer.submitMany(spans("a", 8)),
    ...await producer.submitMany(spans("b", 8)),
  ];
  for (const handle of handles) await handle.result;
  assert.equal((await lines(`${dir}/spans.log`)).length, 16);
  assert.equal(await maxOverlap(dir, "a"), 1);
  assert.equal(consumer.metrics.counter("succeeded") > 0, true);
}

Deno.test("queueConcurrency holds a queue to its limit inside a process, for tasks submitted here", async () => {
  await using dir = await tempDir();
  await using queue = await TaskQueue.open({
    handlers: emails,
    queues: ["a", "b"],
    queueConcurrency: { a: 1 },
    workers: 2,
    concurrency: 4,
  });
  await limitedRun(dir.path, queue, queue);
  await assert.rejects(
    TaskQueue.open({ queues: ["a"], queueConcurrency: { b: 1 } }),
    /queueConcurrency names queue "b", which is not one of queues \(a\)/,
  );
  await assert.rejects(
    TaskQueue.open({ queueConcurrency: { default: 0 } }),
    /queueConcurrency.default must be an integer >= 1, got 0/,
  );
});

for (const backend of BACKENDS) {
  Deno.test(`[${backend.name}] queueConcurrency holds a queue to its limit for tasks claimed from the store`, async () => {
    await using dir = await tempDir();
    await using db = backend.create(dir.path);
    await using producer = await openOn(db, { consume: false });
    await using consumer = await openOn(db, {
      handlers: emails,
      queues: ["a", "b"],
      queueConcurrency: { a: 1 },
      workers: 2,
      concurrency: 4,
    });
    await limitedRun(dir.path, producer, consumer);
  });
}

Deno.test("TaskQueue.cancel() aborts a handler running here at once, and its handle rejects", async () => {
  await using dir = await tempDir();
  await using queue = await TaskQueue.open({ handlers: emails, workers: 1 });
  const handle = await queue.submit({
    type: "cancellable",
    payload: { dir: dir.path, key: "m" },
  });
  await waitFor(() => exists(`${dir.path}/started-m`), {
    what: "the handler to start",
  });
  const [outcome] = await queue.cancel([handle.id]);
  assert.deepEqual(outcome, {
    id: handle.id,
    outcome: "cancelled",
    was: "running",
  });
  await assert.rejects(handle.result, TaskCancelledError);
  assert.deepEqual(await lines(`${dir.path}/aborts.log`), [
    "m TaskCancelledError",
  ]);
  const record = await queue.getTask(handle.id);
  assert.deepEqual([record?.status, record!.attempts <= 1], ["dead", true]);
  assert.equal(queue.metrics.counter("cancelled"), 1);
  assert.equal(queue.metrics.counter("dead_lettered"), 0);
  await assert.rejects(queue.cancel("x" as never), TypeError);
});
