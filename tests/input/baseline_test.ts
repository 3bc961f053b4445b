import assert from "node:assert/strict";
import { type BaselineTask, runBaseline } from "../../input/baseline.ts";

const sample = JSON.parse(
  await Deno.readTextFile(
    new URL("../../input/sample_tasks_small.json", import.meta.url),
  ),
) as BaselineTask[];

Deno.test("runBaseline() serializes processing across its 4 consumers", async () => {
  const done: number[] = [];
  const { processed, seconds } = await runBaseline(sample, {
    onProcessed: (_task, _enqueuedAt, doneAt) => done.push(doneAt),
  });
  assert.equal(processed, 5);
  assert.equal(done.length, 5);
  // The lock is held while processing, so no two 30 ms tasks overlap: the
  // run cannot be shorter than 5 × 30 ms, and each completion is at least
  // one processing time after the previous one.
  assert.ok(seconds >= 0.15, `expected >= 0.15 s, got ${seconds}`);
  for (let i = 1; i < done.length; i++) {
    assert.ok(
      done[i]! - done[i - 1]! >= 29,
      `tasks ${i - 1} and ${i} overlapped`,
    );
  }
});

Deno.test("runBaseline() processes every task once with many producers", async () => {
  const tasks = Array.from({ length: 12 }, (_, i) => ({
    image_key: `img/${i}.jpg`,
    size: "200x200",
  }));
  const seen: string[] = [];
  const { processed } = await runBaseline(tasks, {
    producers: 5,
    processMs: 0,
    onProcessed: (task) => seen.push(task.image_key),
  });
  assert.equal(processed, 12);
  assert.deepEqual(seen.toSorted(), tasks.map((t) => t.image_key).toSorted());
});

Deno.test("runBaseline() refuses a non-positive producer count", async () => {
  await assert.rejects(runBaseline(sample, { producers: 0 }), RangeError);
  await assert.rejects(runBaseline(sample, { consumers: 1.5 }), /consumers/);
});
