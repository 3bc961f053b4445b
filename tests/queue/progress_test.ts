/**
 * `ctx.progress` and `ctx.checkpoint` through the whole path: worker →
 * pool → queue → group commit → store, on the memory store, SQLite and
 * (when SLUICE_TEST_PG is set) PostgreSQL.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import type { TaskEventMap } from "../../lib/queue/events.ts";
import { MemoryTaskStore } from "../../lib/store/memory_store.ts";
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import type { TaskStore } from "../../lib/store/store.ts";
import { tempDir, withDeadline } from "../_helpers.ts";

const HANDLERS = new URL("../fixtures/progress_handlers.ts", import.meta.url);
const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;

/** A store to run on, and how to remove what it left. */
interface Backend extends AsyncDisposable {
  store: TaskStore;
}

const BACKENDS: { name: string; open(dir: string): Promise<Backend> }[] = [
  {
    name: "memory",
    open: () => {
      const store = new MemoryTaskStore();
      return Promise.resolve({
        store,
        [Symbol.asyncDispose]: () => store.close(),
      });
    },
  },
  {
    name: "sqlite",
    open: (dir) => {
      const store = SqliteTaskStore.open(`${dir}/tasks.db`);
      return Promise.resolve({
        store,
        [Symbol.asyncDispose]: () => store.close(),
      });
    },
  },
  ...(PG === undefined ? [] : [{
    name: "postgres",
    open: async () => {
      const schema = `sluice_progress_${
        crypto.randomUUID().replaceAll("-", "").slice(0, 12)
      }`;
      const store = await PostgresTaskStore.open(PG, { schema, max: 2 });
      return {
        store,
        [Symbol.asyncDispose]: async () => {
          await store.close();
          await PostgresTaskStore.drop(PG, { schema });
        },
      };
    },
  }]),
];

function open(store: TaskStore): Promise<TaskQueue> {
  return TaskQueue.open({
    db: store,
    handlers: HANDLERS,
    workers: 1,
    retry: { maxAttempts: 3, baseMs: 1, capMs: 1, jitter: "none" },
    pollIntervalMs: 10,
    logger: { level: "error" },
  });
}

/** Resolves with the first event `name` for which `match` holds. */
function next<K extends keyof TaskEventMap>(
  queue: TaskQueue,
  name: K,
  match: (event: TaskEventMap[K]) => boolean = () => true,
): Promise<TaskEventMap[K]> {
  const { promise, resolve } = Promise.withResolvers<TaskEventMap[K]>();
  const off = queue.on(name, (event) => {
    if (!match(event)) return;
    off();
    resolve(event);
  });
  return withDeadline(promise, 30_000, `a ${name} event`);
}

for (const backend of BACKENDS) {
  Deno.test(`[${backend.name}] ctx.checkpoint() lets a chunked handler that fails halfway resume from its last checkpoint on the retry`, async () => {
    await using tmp = await tempDir();
    await using db = await backend.open(tmp.path);
    await using queue = await open(db.store);
    const retried = next(queue, "retry");
    const handle = await queue.submit({
      type: "chunked",
      payload: { chunks: 6, failAfter: 4, stop: "fail", dir: tmp.path },
    });
    const retry = await retried;
    assert.equal(retry.errorName, "TransientError");
    assert.deepEqual(
      await handle.result,
      { resumedFrom: 4, sum: 21, attempt: 2 },
      "the second attempt starts at chunk 4 with the first attempt's sum",
    );
    const chunks = (await Deno.readTextFile(`${tmp.path}/chunks.log`))
      .trim().split("\n");
    assert.deepEqual(chunks, ["0", "1", "2", "3", "4", "5"], "no chunk twice");
    const record = await queue.getTask(handle.id);
    assert.equal(record?.status, "succeeded");
    assert.deepEqual(record?.checkpoint, { next: 6, sum: 21 });
    assert.deepEqual(record?.progress, { done: 6, of: 6 });
  });

  Deno.test(`[${backend.name}] ctx.progress() is visible through getTask() and a progress event while the handler runs`, async () => {
    await using tmp = await tempDir();
    await using db = await backend.open(tmp.path);
    await using queue = await open(db.store);
    const gate = `gate-${crypto.randomUUID()}`;
    const reported = next(queue, "progress", (e) => e.progress === 0.75);
    const handle = await queue.submit({
      type: "gated",
      payload: { gate, values: [0.25, 0.5, 0.75] },
    });
    const event = await reported;
    assert.deepEqual(
      [event.id, event.type, event.attempt],
      [handle.id, "gated", 1],
    );
    const running = await queue.getTask(handle.id);
    assert.equal(running?.status, "running");
    assert.equal(running?.progress, 0.75);
    const channel = new BroadcastChannel(gate);
    channel.postMessage("done");
    channel.close();
    assert.equal(await handle.result, "done");
    assert.equal((await queue.getTask(handle.id))?.progress, 0.75);
  });
}

Deno.test("ctx.progress() and ctx.checkpoint() refuse a non-JSON value with a TypeError and a value over 4096 bytes with a RangeError", async () => {
  await using tmp = await tempDir();
  await using store = SqliteTaskStore.open(`${tmp.path}/tasks.db`);
  await using queue = await open(store);
  const handle = await queue.submit({ type: "misreports" });
  const results = await handle.result as Record<
    string,
    { name: string; message: string } | null
  >;
  for (const call of ["progress", "checkpoint"]) {
    const action = call === "progress"
      ? "report progress of task"
      : "checkpoint task";
    const what = call === "progress" ? "progress" : "state";
    assert.deepEqual(results[`${call}.map`], {
      name: "TypeError",
      message:
        `Cannot ${action} ${handle.id}: ${what} is not plain JSON data (Map at ${what})`,
    });
    assert.deepEqual(results[`${call}.nan`], {
      name: "TypeError",
      message:
        `Cannot ${action} ${handle.id}: ${what} is not plain JSON data (NaN at ${what}.ratio)`,
    });
    assert.equal(results[`${call}.undefined`]?.name, "TypeError");
    assert.match(results[`${call}.nul`]?.message ?? "", /U\+0000/);
    assert.deepEqual(results[`${call}.big`], {
      name: "RangeError",
      message:
        `Cannot ${action} ${handle.id}: ${what} must be at most 4096 bytes of JSON, got at least 5011`,
    });
  }
  assert.equal(results["fits"], null);
  assert.equal(results["checkpointed"], null, "undefined on a first attempt");
  const record = await queue.getTask(handle.id);
  assert.equal(record?.checkpoint, "y".repeat(4094));
  assert.equal(record?.progress, "y".repeat(4094));
});

Deno.test("ctx.checkpoint() rejects when the pool's caller keeps no checkpoints", async () => {
  const { WorkerPool } = await import("../../lib/pool/worker_pool.ts");
  await using pool = await WorkerPool.start({ handlers: HANDLERS, workers: 1 });
  const result = await pool.run({
    id: "c",
    type: "chunked",
    payload: { chunks: 2 },
    attempt: 1,
    idempotencyKey: null,
  });
  assert.equal(result.ok, false);
  assert.match(
    !result.ok ? result.error.message : "",
    /Cannot checkpoint task c: nothing keeps checkpoints/,
  );
});
