import assert from "node:assert/strict";
import { Logger } from "../../lib/log.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { TaskFailedError } from "../../lib/queue/types.ts";
import { SqliteError } from "../../lib/store/sqlite/sqlite_error.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import { tempDir, waitFor, withDeadline } from "../_helpers.ts";

const handlers = new URL("../fixtures/queue_handlers.ts", import.meta.url);
const child = new URL("../fixtures/crash_child.ts", import.meta.url).pathname;

async function effectDir(root: string): Promise<string> {
  const dir = `${root}/effects-root`;
  await Deno.mkdir(`${dir}/effects`, { recursive: true });
  return dir;
}

async function executions(dir: string): Promise<string[]> {
  try {
    const text = await Deno.readTextFile(`${dir}/executions.log`);
    return text.split("\n").filter((line) => line !== "");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

Deno.test("TaskQueue keeps accepted tasks and results in SQLite across restarts", async () => {
  await using tmp = await tempDir();
  const db = `${tmp.path}/tasks.db`;
  const dir = await effectDir(tmp.path);
  const payload = { dir, key: "report-42" };
  let firstId: string;
  {
    await using queue = await TaskQueue.open({ db, handlers, workers: 1 });
    assert.equal(queue.store.durable, true);
    const handle = await queue.submit({
      type: "effect",
      payload,
      idempotencyKey: "report-42",
    });
    firstId = handle.id;
    assert.equal(await handle.result, "report-42");
  }
  {
    await using queue = await TaskQueue.open({ db, handlers, workers: 1 });
    const record = await queue.getTask(firstId);
    assert.equal(record?.status, "succeeded");
    assert.equal(record?.result, "report-42");
    const again = await queue.submit({
      type: "effect",
      payload,
      idempotencyKey: "report-42",
    });
    assert.equal(again.deduplicated, true);
    assert.equal(again.id, firstId);
    assert.equal(await again.result, "report-42");
    assert.equal(queue.metrics.counter("deduplicated"), 1);
  }
  assert.deepEqual(
    await executions(dir),
    ["report-42"],
    "the handler ran once",
  );
});

Deno.test("TaskQueue runs a key once when 100 producers submit it at once", async () => {
  await using tmp = await tempDir();
  const dir = await effectDir(tmp.path);
  await using queue = await TaskQueue.open({
    db: `${tmp.path}/t.db`,
    handlers,
    workers: 2,
  });
  const payload = { dir, key: "same", delayMs: 5 };
  const handles = await Promise.all(
    Array.from(
      { length: 100 },
      () => queue.submit({ type: "effect", payload, idempotencyKey: "same" }),
    ),
  );
  assert.equal(new Set(handles.map((h) => h.id)).size, 1);
  assert.equal(handles.filter((h) => h.deduplicated).length, 99);
  const results = await Promise.all(handles.map((h) => h.result));
  assert.ok(results.every((r) => r === "same"));
  assert.deepEqual(await executions(dir), ["same"]);
  const { counts } = await queue.store.status(Date.now());
  assert.equal(counts.succeeded, 1);
});

Deno.test("TaskQueue schedules retries through run_at and dead-letters in the store", async () => {
  await using tmp = await tempDir();
  const db = `${tmp.path}/t.db`;
  await using queue = await TaskQueue.open({
    db,
    handlers,
    workers: 1,
    retry: { maxAttempts: 3, baseMs: 20, capMs: 40, jitter: "none" },
  });
  const ok = await queue.submit({ type: "flaky", payload: { failures: 2 } });
  const dead = await queue.submit({ type: "flaky", payload: { failures: 9 } });
  assert.equal(await ok.result, 3);
  const error = await dead.result.catch((e) => e);
  assert.ok(error instanceof TaskFailedError);
  const record = await queue.getTask(dead.id);
  assert.equal(record?.status, "dead");
  assert.equal(record?.attempts, 3);
  assert.equal(record?.errorClass, "transient");
  assert.match(record?.lastError ?? "", /attempt 3 fails on purpose/);
  // Backoff is 20 ms then 40 ms, with no worker sleeping through it.
  assert.ok(
    record!.updatedAt - record!.createdAt >= 60,
    "retries waited for run_at",
  );
  assert.deepEqual((await queue.deadLetters()).map((r) => r.id), [dead.id]);
});

Deno.test("TaskQueue logs which SQLite driver it opened", async () => {
  await using tmp = await tempDir();
  const lines: string[] = [];
  const logger = new Logger({
    level: "info",
    sink: (line) => lines.push(line),
  });
  await using _queue = await TaskQueue.open({
    db: `${tmp.path}/t.db`,
    handlers,
    workers: 1,
    logger,
  });
  const opened = lines.map((l) => JSON.parse(l)).find((l) =>
    l.event === "store_opened"
  );
  assert.ok(opened, lines.join("\n"));
  assert.match(opened.store, /^sqlite-(ffi|builtin)$/);
});

Deno.test("TaskQueue refuses bad durable input and leaves the database unharmed", async (t) => {
  await using tmp = await tempDir();
  const db = `${tmp.path}/t.db`;

  await t.step("a database path in a missing directory", async () => {
    await assert.rejects(
      TaskQueue.open({
        db: `${tmp.path}/missing/dir/t.db`,
        handlers,
        workers: 1,
      }),
      SqliteError,
    );
  });

  await t.step("a corrupt database file", async () => {
    const path = `${tmp.path}/corrupt.db`;
    const garbage = crypto.getRandomValues(new Uint8Array(8192));
    await Deno.writeFile(path, garbage);
    await assert.rejects(
      TaskQueue.open({ db: path, handlers, workers: 1 }),
      SqliteError,
    );
    assert.deepEqual(
      await Deno.readFile(path),
      garbage,
      "the file is untouched",
    );
  });

  await t.step("bad payloads, keys and limits", async () => {
    await using queue = await TaskQueue.open({ db, handlers, workers: 1 });
    await assert.rejects(
      queue.submit({ type: "effect", payload: { n: 1n } }),
      /payload is not plain JSON data/,
    );
    await assert.rejects(
      queue.submit({ type: "effect", payload: {}, maxAttempts: -1 }),
      /maxAttempts must be an integer >= 1, got -1/,
    );
    await assert.rejects(
      TaskQueue.open({ db, handlers, workers: 1, retry: { maxAttempts: -1 } }),
      RangeError,
    );
    const dir = await effectDir(tmp.path);
    const key = `'); DROP TABLE tasks; -- "quoted"`;
    const handle = await queue.submit({
      type: "effect",
      payload: { dir, key: "sql" },
      idempotencyKey: key,
    });
    assert.equal(await handle.result, "sql");
    assert.equal((await queue.store.getByKey(key))?.id, handle.id);
  });

  const store = SqliteTaskStore.open(db, { readonly: true });
  try {
    const { counts } = await store.status(Date.now());
    assert.equal(counts.succeeded, 1, "only the good task was stored");
  } finally {
    await store.close();
  }
});

Deno.test("TaskQueue recovers from SIGKILL: every task succeeds once, none lost", async () => {
  await using tmp = await tempDir();
  const db = `${tmp.path}/t.db`;
  const dir = await effectDir(tmp.path);
  const count = 2000;
  const args = (
    mode: string,
  ): string[] => ["run", "-A", child, db, dir, String(count), mode];

  const first = new Deno.Command(Deno.execPath(), {
    args: args("submit"),
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdout = first.stdout.pipeThrough(new TextDecoderStream());
  let accepted = false;
  const reading = (async () => {
    for await (const chunk of stdout) {
      if (chunk.includes(`accepted ${count}`)) accepted = true;
    }
  })();
  try {
    await waitFor(
      async () => accepted && (await executions(dir)).length >= 300,
      {
        timeoutMs: 60_000,
        what: "the first process to accept all tasks and run 300",
      },
    );
  } finally {
    first.kill("SIGKILL");
    await first.status;
    await reading;
  }
  const before = await executions(dir);
  assert.ok(
    before.length < count,
    `killed mid-run (${before.length} executions)`,
  );

  const second = await new Deno.Command(Deno.execPath(), {
    args: args("resume"),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(second.code, 0);
  const counts = JSON.parse(
    new TextDecoder().decode(second.stdout).trim().split("\n").at(-1)!,
  );
  assert.deepEqual(counts, {
    queued: 0,
    running: 0,
    succeeded: count,
    failed: 0,
    dead: 0,
  });

  const effects = [...Deno.readDirSync(`${dir}/effects`)].map((e) => e.name);
  assert.equal(effects.length, count, "each key's effect exists once");
  const runs = await executions(dir);
  const unique = new Set(runs);
  assert.equal(unique.size, count, "no key was lost");
  // At-least-once: only tasks in flight at the kill can have run twice.
  assert.ok(
    runs.length - count <= 2 * 8 + 32,
    `${runs.length - count} repeated runs`,
  );
});

Deno.test("TaskQueue runs a key once when two queues on one database submit it", async () => {
  await using tmp = await tempDir();
  const db = `${tmp.path}/t.db`;
  const dir = await effectDir(tmp.path);
  // Two connections to one file, as two processes would have: one runs
  // tasks, the other only submits and learns results by polling.
  await using runner = await TaskQueue.open({
    db,
    handlers,
    workers: 1,
    pollIntervalMs: 10,
  });
  await using producer = await TaskQueue.open({
    db,
    handlers,
    consume: false,
    pollIntervalMs: 10,
  });
  const payload = { dir, key: "shared", delayMs: 20 };
  const handles = await Promise.all([
    ...Array.from(
      { length: 10 },
      () =>
        runner.submit({ type: "effect", payload, idempotencyKey: "shared" }),
    ),
    ...Array.from(
      { length: 10 },
      () =>
        producer.submit({ type: "effect", payload, idempotencyKey: "shared" }),
    ),
  ]);
  assert.equal(
    new Set(handles.map((h) => h.id)).size,
    1,
    "one task for the key",
  );
  const results = await withDeadline(
    Promise.all(handles.map((h) => h.result)),
    10_000,
    "every handle's result",
  );
  assert.ok(results.every((r) => r === "shared"));
  assert.deepEqual(await executions(dir), ["shared"]);
});
