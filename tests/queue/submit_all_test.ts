/**
 * `TaskQueue.submitAll`: the store failures and the store without
 * `insertAll` that a task file cannot cause (`cli.ts submit --file`, which
 * is `submitAll` over the file's slices, is tested in tests/cli/).
 *
 * @module
 */
import assert from "node:assert/strict";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import type { TaskStore } from "../../lib/store/store.ts";
import { tempDir } from "../_helpers.ts";

/** `n` no-op tasks, numbered from `from`. */
const noops = (n: number, from = 0): { type: string; payload: number }[] =>
  Array.from({ length: n }, (_, i) => ({ type: "noop", payload: from + i }));

/**
 * `inner` with its `insertAll` replaced (or removed, given `undefined`):
 * every other member is the inner store's own.
 */
function withInsertAll(
  inner: TaskStore,
  insertAll: TaskStore["insertAll"],
): TaskStore {
  return new Proxy(inner, {
    get(target, key): unknown {
      if (key === "insertAll") return insertAll;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("TaskQueue.submitAll() stores nothing when the store fails in a later batch", async () => {
  await using dir = await tempDir();
  await using inner = SqliteTaskStore.open(`${dir.path}/tasks.db`);
  let batches = 0;
  const store = withInsertAll(
    inner,
    (source, options) =>
      inner.insertAll(source, {
        ...options,
        onInserted: (outcomes) => {
          if (++batches === 3) throw new Error("Cannot commit: disk I/O error");
          options.onInserted(outcomes);
        },
      }),
  );
  await using queue = await TaskQueue.open({ db: store, consume: false });
  const source = [noops(100), noops(100, 100), noops(100, 200), noops(5)];
  await assert.rejects(queue.submitAll(source), /disk I\/O error/);
  assert.equal(batches, 3);
  assert.deepEqual(await inner.list(), []);
  const { counts, totals } = await inner.status(Date.now());
  assert.deepEqual([counts.queued, totals.submitted], [0, 0]);
  // The connection is usable afterwards: the transaction was rolled back.
  const ids = await queue.submitAll(source);
  assert.equal(ids.submitted, 305);
  assert.deepEqual(
    (await inner.list()).map((task) => task.id),
    [...ids],
  );
});

Deno.test("TaskQueue.submitAll() commits the whole source at once when the store has no insertAll", async () => {
  await using dir = await tempDir();
  await using inner = SqliteTaskStore.open(`${dir.path}/tasks.db`);
  const store = withInsertAll(inner, undefined);
  await using queue = await TaskQueue.open({ db: store, consume: false });
  await assert.rejects(
    queue.submitAll([noops(10), [{ type: "" }]]),
    /tasks\[10\]: type must be a non-empty string/,
  );
  assert.deepEqual(await inner.list(), []);
  const ids = await queue.submitAll([
    [{ type: "noop", idempotencyKey: "k" }],
    [{ type: "noop", idempotencyKey: "k" }, ...noops(2)],
  ]);
  assert.deepEqual([ids.length, ids.submitted, ids.deduplicated], [4, 3, 1]);
  assert.equal(ids.id(1), ids.id(0));
  assert.equal((await inner.status(Date.now())).counts.queued, 3);
});
