/**
 * Handlers that misbehave: they throw values that are not errors, return
 * values a store cannot keep faithfully, or exhaust memory.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { TaskFailedError } from "../../lib/queue/types.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import { tempDir } from "../_helpers.ts";
import { lines, restartAndDrain } from "./_support.ts";

const handlers = new URL("../fixtures/hostile.ts", import.meta.url);
const CHILD = fileURLToPath(
  new URL("../fixtures/lifecycle_child.ts", import.meta.url),
);

Deno.test("TaskQueue fails only the task, with a readable error, when a handler throws something that is not an Error", async () => {
  await using tmp = await tempDir();
  await using queue = await TaskQueue.open({
    db: `${tmp.path}/t.db`,
    handlers,
    workers: 1,
    retry: { maxAttempts: 1 },
    logger: { level: "silent" },
  });
  const expected: Record<string, RegExp> = {
    "null-prototype": /handler threw \{"detail":"no prototype"\}/,
    "throwing-toString": /handler threw \[object Object\]/,
    string: /a plain string/,
    undefined: /handler threw undefined/,
    circular: /handler threw \[object Object\]/,
    "throwing-getters": /handler threw/,
  };
  for (const [kind, message] of Object.entries(expected)) {
    const handle = await queue.submit({ type: "throwOdd", payload: { kind } });
    const error = await handle.result.catch((e: unknown) => e);
    assert.ok(error instanceof TaskFailedError, `${kind}: ${String(error)}`);
    assert.match(error.message, message, kind);
    const record = await queue.getTask(handle.id);
    assert.equal(record?.status, "dead", kind);
    assert.match(record?.lastError ?? "", message, kind);
  }
  const after = await queue.submit({ type: "echo", payload: "still here" });
  assert.equal(await after.result, "still here");
  assert.equal(queue.metrics.counter("workers_replaced"), 0);
});

Deno.test("TaskQueue dead-letters a result a durable store cannot keep faithfully, naming what and where", async () => {
  await using tmp = await tempDir();
  await using durable = await TaskQueue.open({
    db: `${tmp.path}/t.db`,
    handlers,
    workers: 1,
    logger: { level: "silent" },
  });
  const cases: Record<string, RegExp> = {
    map: /not plain JSON data \(Map at result\.items\)/,
    nan: /not plain JSON data \(NaN at result\.ratio\)/,
    bigint: /not plain JSON data \(BigInt at result\.big\)/,
    date: /not plain JSON data \(Date at result\)/,
  };
  for (const [kind, message] of Object.entries(cases)) {
    const handle = await durable.submit({
      type: "returnOdd",
      payload: { kind },
    });
    const error = await handle.result.catch((e: unknown) => e);
    assert.ok(error instanceof TaskFailedError, kind);
    assert.equal(error.errorClass, "permanent");
    assert.equal(error.attempts, 1, "a permanent error is not retried");
    assert.match(error.message, message);
  }
  // The memory store keeps what structured clone keeps.
  await using memory = await TaskQueue.open({ handlers, workers: 1 });
  const map = await memory.submit({
    type: "returnOdd",
    payload: { kind: "map" },
  });
  const value = await map.result as { items: Map<string, number> };
  assert.equal(value.items.get("a"), 1);
});

Deno.test("TaskQueue charges only the tasks that were running when a handler exhausts memory and the process aborts", async () => {
  await using tmp = await tempDir();
  const db = `${tmp.path}/tasks.db`;
  // 2 workers × 1 slot: one runs exhaustMemory, the other a gated task.
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--max-old-space-size=96",
      CHILD,
      db,
      "-",
      tmp.path,
      "6",
      "exhaustMemory",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.notEqual(child.code, 0, "the process aborted");
  assert.match(
    new TextDecoder().decode(child.stderr),
    /out of memory|heap limit/i,
  );
  const started = new Set(await lines(`${tmp.path}/starts.log`));
  const store = SqliteTaskStore.open(db);
  try {
    const rows = await store.list();
    assert.equal(rows.length, 6);
    const hog = rows.find((r) => r.type === "exhaustMemory")!;
    assert.equal(hog.attempts, 1, "the handler that ran out was charged");
    for (const row of rows) {
      if (row === hog) continue;
      const key = (row.payload as { key: string }).key;
      assert.equal(row.attempts, started.has(key) ? row.attempts : 0, key);
      assert.ok(row.attempts <= 1);
    }
    const charged = rows.filter((r) => r.attempts > 0).length;
    assert.ok(charged <= 2, `${charged} charged, with 2 slots`);
    // With maxAttempts 1, the hog is dead-lettered once its lease runs out;
    // the tasks that never started run.
    await restartAndDrain(store, tmp.path, handlers);
    assert.equal((await store.get(hog.id))?.status, "dead");
    const { counts } = await store.status(Date.now());
    assert.equal(counts.succeeded + counts.dead, 6);
    assert.ok(counts.succeeded >= 4);
  } finally {
    await store.close();
  }
});
