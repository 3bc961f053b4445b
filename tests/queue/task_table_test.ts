import assert from "node:assert/strict";
import { TaskTable } from "../../lib/queue/task_table.ts";
import {
  entryOf,
  type TaskEntry,
  type TaskState,
} from "../../lib/queue/types.ts";
import { recordOf } from "./_support.ts";

function entry(
  id: string,
  state: TaskState,
  fields: { key?: string; local?: boolean } = {},
): TaskEntry {
  const record = recordOf(id);
  record.idempotencyKey = fields.key ?? null;
  return entryOf(record, state, fields.local ?? true, 0);
}

Deno.test("TaskTable.move() follows the life cycle and refuses every other move", () => {
  const table = new TaskTable();
  const a = entry("a", "reserved");
  table.add(a);
  for (
    const to of [
      "queued",
      "dispatched",
      "running",
      "settling",
      "remote",
      "queued",
    ] as const
  ) {
    table.move(a, to);
    assert.equal(a.state, to);
  }
  assert.throws(
    () => table.move(a, "running"),
    /Cannot move task a to running: it is queued/,
  );
  assert.throws(() => table.move(a, "reserved"), /it is queued/);
  table.move(a, "dispatched");
  assert.throws(() => table.move(a, "queued"), /it is dispatched/);
  assert.throws(() => table.move(a, "remote"), /it is dispatched/);
  const stray = entry("stray", "queued");
  assert.throws(() => table.move(stray, "dispatched"), /not in the table/);
});

Deno.test("TaskTable.add() refuses a duplicate id and a state a task cannot start in", () => {
  const table = new TaskTable();
  table.add(entry("a", "queued"));
  assert.throws(() => table.add(entry("a", "queued")), /already in the table/);
  assert.throws(() => table.add(entry("b", "running")), /not a first state/);
  assert.equal(table.size, 1);
});

Deno.test("TaskTable keeps counts, local outstanding and the key index in step with its entries", () => {
  const table = new TaskTable();
  const a = entry("a", "reserved", { key: "k1" });
  const b = entry("b", "queued", { key: "k2", local: false });
  const c = entry("c", "remote", { key: "k1" });
  table.add(a);
  table.add(b);
  table.add(c);
  assert.equal(table.byKey("k1"), a, "the first live entry keeps its key");
  assert.equal(table.localOutstanding, 2);
  assert.equal(table.count("reserved"), 1);
  assert.equal(table.holding, 1);
  table.move(a, "queued");
  table.move(a, "dispatched");
  assert.equal(table.holding, 2);
  assert.deepEqual(table.holders().map((e) => e.id).sort(), ["a", "b"]);
  assert.equal(table.remove(a), true);
  assert.equal(table.remove(a), false);
  assert.equal(table.byKey("k1"), undefined);
  assert.equal(table.localOutstanding, 1);
  assert.equal(table.count("dispatched"), 0);
  assert.deepEqual(table.entries(["remote"]).map((e) => e.id), ["c"]);
});

Deno.test("TaskTable.until() resolves on the change that makes its check true, and rejects on abort", async () => {
  const table = new TaskTable();
  const a = entry("a", "queued");
  table.add(a);
  let resolved = false;
  const idle = table.until(() => table.size === 0).then(
    () => (resolved = true),
  );
  table.move(a, "dispatched");
  await Promise.resolve();
  assert.equal(resolved, false);
  table.remove(a);
  await idle;
  assert.equal(resolved, true);
  const controller = new AbortController();
  table.add(entry("b", "queued"));
  const waiting = table.until(() => table.size === 0, controller.signal);
  controller.abort(new Error("gave up"));
  await assert.rejects(waiting, /gave up/);
});
