import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { writeSampleObjects } from "../../input/sample_objects.ts";
import type { RunSummary } from "../../lib/cli/run.ts";
import { tempDir } from "../_helpers.ts";
import { cli, HANDLERS, ok, status, taskFile } from "./_cli.ts";

const INPUT = fileURLToPath(new URL("../../input/", import.meta.url));

/** `run` of `file` on `db` with one worker, then `extra`. */
function runArgs(file: string, db: string, ...extra: string[]): string[] {
  return ["run", "--tasks", file, "--db", db, "--workers", "1", ...extra];
}

Deno.test("cli.ts run counts tasks apart from submissions, as status does, and exits 1 when a task is dead", async () => {
  await using dir = await tempDir();
  // 40 submissions of 32 keys: 8 are deduplicated, not more tasks.
  const items: unknown[] = Array.from(
    { length: 40 },
    (_, i) => ({ type: "noop", payload: i % 32, idempotencyKey: `k${i % 32}` }),
  );
  items.push(
    { type: "compute", payload: { operation: "double", value: 2 } },
    { type: "fail", payload: { error_message: "no" } },
  );
  const file = await taskFile(`${dir.path}/tasks.json`, items);
  const db = `${dir.path}/run.db`;
  const result = await cli(runArgs(file, db, "--json"));
  assert.equal(result.code, 1, "a dead task makes the exit code 1");
  const summary = JSON.parse(result.stdout) as RunSummary;
  assert.equal(summary.submissions, 42);
  assert.equal(summary.accepted, 42);
  assert.equal(summary.deduplicated, 8);
  assert.equal(summary.tasks, 34);
  assert.equal(summary.succeeded, 33);
  assert.equal(summary.dead, 1);
  assert.equal(summary.rejected, 0);
  assert.equal(summary.invalid, 0);
  assert.ok(summary.seconds > 0);
  assert.ok(summary.tasks_per_s > 0);
  assert.ok(summary.p95_ms >= 0);

  const after = await status(db);
  assert.equal(after.total, summary.tasks);
  assert.equal(after.counts.succeeded, summary.succeeded);
  assert.equal(after.counts.dead, summary.dead);

  const text = await cli(runArgs(file, ":memory:"));
  assert.equal(text.code, 1);
  assert.match(
    text.stdout,
    /^42 submissions: 42 accepted \(34 tasks, 8 deduplicated\), 0 rejected\n34 tasks ran in /,
  );
  assert.match(text.stdout, /succeeded 33 {2}dead 1 {2}retried 0\n$/);
});

Deno.test("cli.ts run with --overflow reject reports accepted and rejected, and the rate over tasks run", async () => {
  await using dir = await tempDir();
  const file = await taskFile(
    `${dir.path}/tasks.json`,
    Array.from({ length: 50 }, () => ({
      type: "sleep",
      payload: { duration_ms: 20 },
    })),
  );
  const args = runArgs(
    file,
    ":memory:",
    "--capacity",
    "1",
    "--overflow",
    "reject",
  );
  const result = await cli([...args, "--format", "json"]);
  assert.equal(result.code, 0, "rejections alone do not fail the run");
  const s = JSON.parse(result.stdout) as RunSummary;
  assert.equal(s.submissions, 50);
  assert.ok(s.rejected > 0, "some submissions were rejected");
  assert.equal(s.accepted + s.rejected, 50);
  assert.equal(s.tasks, s.accepted);
  assert.equal(s.succeeded, s.tasks);
  // The rate counts only what ran, never the rejected submissions.
  const expected = s.succeeded / s.seconds;
  assert.ok(
    Math.abs(s.tasks_per_s - expected) <= 0.05 + expected * 0.01,
    `${s.tasks_per_s} tasks/s for ${s.succeeded} tasks in ${s.seconds} s`,
  );

  const text = await ok(args);
  assert.match(
    text,
    /^50 submissions: (\d+) accepted \(\1 tasks, 0 deduplicated\), (\d+) rejected\n\1 tasks ran in /,
  );
});

Deno.test("cli.ts run counts items the queue refuses as invalid, names the first, and exits 1", async () => {
  await using dir = await tempDir();
  const file = await taskFile(`${dir.path}/tasks.json`, [
    { type: "noop" },
    { type: "noop", maxAttempts: 0 },
  ]);
  const result = await cli(runArgs(file, ":memory:", "--json"));
  assert.equal(result.code, 1);
  const s = JSON.parse(result.stdout) as RunSummary;
  assert.equal(s.submissions, 2);
  assert.equal(s.invalid, 1);
  assert.equal(s.accepted, 1);
  assert.equal(s.succeeded, 1);
  assert.match(result.stderr, /error: Cannot submit tasks\[1\]: .*maxAttempts/);
});

Deno.test("cli.ts run --handlers runs the task types of a handler module", async () => {
  await using dir = await tempDir();
  const file = await taskFile(`${dir.path}/tasks.json`, [
    { type: "shout", payload: { text: "hi" } },
  ]);
  const db = `${dir.path}/h.db`;
  const summary = JSON.parse(
    await ok([
      "run",
      "--tasks",
      file,
      "--db",
      db,
      "--handlers",
      HANDLERS,
      "--json",
    ]),
  ) as RunSummary;
  assert.equal(summary.succeeded, 1);
  const [task] = JSON.parse(
    await ok(["export", "--db", db, "--format", "json"]),
  ) as { result: unknown }[];
  assert.equal(task!.result, "HI");

  // The built-ins have no "shout", and a run has no other process to
  // leave it to: it is refused at submit, naming the type, on a database
  // file as on memory.
  const builtin = await cli(runArgs(file, `${dir.path}/b.db`, "--json"));
  assert.equal(builtin.code, 1);
  const refused = JSON.parse(builtin.stdout) as RunSummary;
  assert.deepEqual([refused.invalid, refused.dead], [1, 0]);
  assert.match(builtin.stderr, /unknown task type "shout"/);
});

Deno.test("cli.ts run on input/sample_tasks_small.json succeeds with the committed source objects", async () => {
  await using dir = await tempDir();
  // A copy, so that the variants are not written into the checkout.
  const objects = `${dir.path}/objects`;
  await Deno.mkdir(`${objects}/img`, { recursive: true });
  for await (const entry of Deno.readDir(`${INPUT}objects/img`)) {
    await Deno.copyFile(
      `${INPUT}objects/img/${entry.name}`,
      `${objects}/img/${entry.name}`,
    );
  }
  const summary = JSON.parse(
    await ok([
      "run",
      "--tasks",
      `${INPUT}sample_tasks_small.json`,
      "--objects",
      objects,
      "--db",
      ":memory:",
      "--json",
    ]),
  ) as RunSummary;
  assert.equal(summary.tasks, 5);
  assert.equal(summary.succeeded, 5);
  assert.equal(summary.dead, 0);
  const variants = [];
  for await (const entry of Deno.readDir(`${objects}/variants/img`)) {
    variants.push(entry.name);
  }
  assert.equal(variants.length, 5);
});

Deno.test("writeSampleObjects() writes the committed sample objects byte for byte", async () => {
  await using dir = await tempDir();
  assert.equal(await writeSampleObjects(dir.path), 5);
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${INPUT}objects/img`)) {
    names.push(entry.name);
  }
  assert.deepEqual(names.sort(), ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]);
  for (const name of names) {
    assert.deepEqual(
      await Deno.readFile(`${dir.path}/img/${name}`),
      await Deno.readFile(`${INPUT}objects/img/${name}`),
      name,
    );
  }
});
