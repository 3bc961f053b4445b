import assert from "node:assert/strict";
import { QueueFullError } from "../../lib/channel.ts";
import { PermanentError } from "../../lib/errors.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { QueueClosedError, TaskFailedError } from "../../lib/queue/types.ts";
import { isPending, tempDir, waitFor, withDeadline } from "../_helpers.ts";
import { FlakyStore } from "../fixtures/flaky_store.ts";
import { Logger } from "../../lib/log.ts";
import { MemoryTaskStore } from "../../lib/store/memory_store.ts";

const handlers = new URL("../fixtures/queue_handlers.ts", import.meta.url);

/** A gate shared with `hold` handlers: started count and release flag. */
class Gate {
  readonly sab = new SharedArrayBuffer(12);
  readonly cells = new Int32Array(this.sab);
  get started(): number {
    return Atomics.load(this.cells, 0);
  }
  /** Resolves once at least `n` holders have started. */
  async waitStarted(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (let seen = this.started; seen < n; seen = this.started) {
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`Cannot wait for ${n} holders: ${seen} started`);
      }
      const wait = Atomics.waitAsync(this.cells, 0, seen, left);
      if (wait.async) await wait.value;
    }
  }
  release(): void {
    Atomics.store(this.cells, 1, 1);
    Atomics.notify(this.cells, 1);
  }
}

Deno.test("TaskQueue.submit() runs a task and resolves its result", async () => {
  await using queue = await TaskQueue.open({ handlers, workers: 1 });
  const handle = await queue.submit({
    type: "echo",
    payload: { hello: "world" },
  });
  assert.equal(typeof handle.id, "string");
  assert.equal(handle.deduplicated, false);
  assert.deepEqual(await handle.result, { hello: "world" });
  assert.equal(queue.metrics.counter("succeeded"), 1);
});

Deno.test("TaskQueue.submitMany() returns one handle per task, in order", async () => {
  await using queue = await TaskQueue.open({ handlers, workers: 2 });
  const handles = await queue.submitMany(
    Array.from({ length: 500 }, (_, i) => ({ type: "echo", payload: i })),
  );
  assert.equal(new Set(handles.map((h) => h.id)).size, 500);
  assert.deepEqual(await Promise.all(handles.map((h) => h.result)), [
    ...Array(500).keys(),
  ]);
  await queue.drain();
  assert.equal(queue.metrics.counter("enqueued"), 500);
  assert.equal(queue.metrics.counter("succeeded"), 500);
  // Each task is inserted (claimed) and settled: 1,000 state changes,
  // grouped into far fewer transactions than tasks.
  assert.ok(
    queue.commitCount < 500,
    `group commit: ${queue.commitCount} commits`,
  );
});

Deno.test("TaskQueue runs handlers on at least 2 worker threads", async () => {
  await using queue = await TaskQueue.open({ handlers, workers: 2 });
  const sab = new SharedArrayBuffer(8);
  // Both tasks must be running at once to pass the barrier.
  const handles = await queue.submitMany([
    { type: "barrier", payload: { sab, parties: 2, timeoutMs: 10_000 } },
    { type: "barrier", payload: { sab, parties: 2, timeoutMs: 10_000 } },
  ]);
  const names = await Promise.all(handles.map((h) => h.result));
  assert.equal(new Set(names).size, 2, `threads: ${names}`);
});

Deno.test("TaskQueue.submit() waits when the channel is full under block", async () => {
  const gate = new Gate();
  await using queue = await TaskQueue.open({
    handlers,
    workers: 1,
    capacity: 4,
    prefetch: 0,
  });
  const first = await queue.submit({
    type: "hold",
    payload: { sab: gate.sab, value: 0 },
  });
  await gate.waitStarted(1);
  const queued = await Promise.all(
    [1, 2, 3, 4].map((i) =>
      queue.submit({ type: "hold", payload: { sab: gate.sab, value: i } })
    ),
  );
  assert.equal(queue.depth, 4);
  const fifth = queue.submit({
    type: "hold",
    payload: { sab: gate.sab, value: 5 },
  });
  assert.equal(await isPending(fifth), true);
  gate.release();
  const last = await withDeadline(fifth, 10_000, "the blocked submit");
  assert.deepEqual(
    await Promise.all([first, ...queued, last].map((h) => h.result)),
    [0, 1, 2, 3, 4, 5],
  );
  assert.equal(queue.metrics.counter("rejected"), 0);
  assert.ok(queue.channelStats().blockedSends >= 1);
});

Deno.test("TaskQueue.submit() throws QueueFullError under reject and counts it", async () => {
  const gate = new Gate();
  await using queue = await TaskQueue.open({
    handlers,
    workers: 1,
    capacity: 4,
    prefetch: 0,
    overflow: "reject",
  });
  const accepted = [
    await queue.submit({ type: "hold", payload: { sab: gate.sab } }),
  ];
  await gate.waitStarted(1);
  for (let i = 0; i < 4; i++) {
    accepted.push(
      await queue.submit({ type: "hold", payload: { sab: gate.sab } }),
    );
  }
  const error = await queue.submit({
    type: "hold",
    payload: { sab: gate.sab, value: "x" },
  })
    .catch((e) => e);
  assert.ok(error instanceof QueueFullError, String(error));
  assert.equal((error.value as { type: string }).type, "hold");
  assert.equal(queue.metrics.counter("rejected"), 1);
  gate.release();
  await Promise.all(accepted.map((h) => h.result));
  assert.equal(queue.metrics.counter("succeeded"), 5);
  assert.equal(queue.metrics.counter("enqueued"), 5);
});

Deno.test("TaskQueue.close() lets tasks in flight finish and refuses new ones", async () => {
  const gate = new Gate();
  const queue = await TaskQueue.open({ handlers, workers: 2 });
  const handles = await queue.submitMany(
    Array.from(
      { length: 10 },
      (_, i) => ({ type: "hold", payload: { sab: gate.sab, value: i } }),
    ),
  );
  await gate.waitStarted(2);
  const closing = queue.close({ deadline: 10_000 });
  assert.equal(queue.closed, true);
  await assert.rejects(queue.submit({ type: "echo" }), QueueClosedError);
  gate.release();
  const report = await closing;
  assert.deepEqual(report, { drained: true, unfinished: 0, unfinishedIds: [] });
  assert.deepEqual(await Promise.all(handles.map((h) => h.result)), [
    ...Array(10).keys(),
  ]);
});

Deno.test("TaskQueue.close() reports what did not finish by the deadline", async () => {
  const gate = new Gate();
  const queue = await TaskQueue.open({ handlers, workers: 1 });
  const handles = await queue.submitMany(
    Array.from(
      { length: 3 },
      () => ({ type: "hold", payload: { sab: gate.sab } }),
    ),
  );
  await gate.waitStarted(1);
  const report = await queue.close({ deadline: 50 });
  assert.equal(report.drained, false);
  assert.equal(report.unfinished, 3);
  assert.deepEqual(
    report.unfinishedIds.toSorted(),
    handles.map((h) => h.id).toSorted(),
  );
  for (const handle of handles) {
    await assert.rejects(handle.result, QueueClosedError);
  }
});

Deno.test("TaskQueue retries transient failures and succeeds", async () => {
  await using queue = await TaskQueue.open({
    handlers,
    workers: 1,
    retry: { maxAttempts: 3, baseMs: 1, capMs: 5, seed: 1 },
  });
  const handle = await queue.submit({
    type: "flaky",
    payload: { failures: 2 },
  });
  assert.equal(await handle.result, 3);
  assert.equal(queue.metrics.counter("retried"), 2);
  assert.equal(queue.metrics.counter("failed_transient"), 2);
  const record = await queue.getTask(handle.id);
  assert.equal(record?.status, "succeeded");
  assert.equal(record?.attempts, 3);
});

Deno.test("TaskQueue dead-letters exhausted tasks and requeues them", async () => {
  await using dir = await tempDir();
  await using queue = await TaskQueue.open({
    handlers,
    workers: 1,
    retry: { maxAttempts: 2, baseMs: 1, capMs: 2, seed: 1 },
  });
  const flaky = await queue.submit({ type: "flaky", payload: { failures: 5 } });
  const error = await flaky.result.catch((e) => e);
  assert.ok(error instanceof TaskFailedError);
  assert.equal(error.attempts, 2);
  assert.equal(error.errorClass, "transient");
  const path = `${dir.path}/flag`;
  const missing = await queue.submit({ type: "needsFile", payload: { path } });
  const permanent = await missing.result.catch((e) => e);
  assert.ok(permanent instanceof TaskFailedError);
  assert.ok(permanent.cause instanceof PermanentError);
  assert.equal(permanent.attempts, 1, "permanent errors are not retried");
  const dead = await queue.deadLetters();
  assert.deepEqual(
    dead.map((r) => r.id).toSorted(),
    [flaky.id, missing.id].toSorted(),
  );
  assert.match(dead.find((r) => r.id === missing.id)!.lastError!, /is missing/);
  assert.equal(queue.metrics.counter("dead_lettered"), 2);

  await Deno.writeTextFile(path, "");
  assert.equal(await queue.requeue([missing.id]), 1);
  const deadline = performance.now() + 10_000;
  while ((await queue.getTask(missing.id))?.status !== "succeeded") {
    assert.ok(performance.now() < deadline, "requeued task did not succeed");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal((await queue.deadLetters()).length, 1);
});

Deno.test("TaskQueue.submit() with a live duplicate key runs the task once", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/effects`);
  await using queue = await TaskQueue.open({ handlers, workers: 2 });
  const payload = { dir: dir.path, key: "k1" };
  const handles = await Promise.all(
    Array.from(
      { length: 20 },
      () => queue.submit({ type: "effect", payload, idempotencyKey: "k1" }),
    ),
  );
  assert.equal(new Set(handles.map((h) => h.id)).size, 1);
  assert.equal(handles.filter((h) => !h.deduplicated).length, 1);
  for (const handle of handles) assert.equal(await handle.result, "k1");
  const log = await Deno.readTextFile(`${dir.path}/executions.log`);
  assert.equal(log, "k1\n");
  assert.equal(queue.metrics.counter("deduplicated"), 19);
});

Deno.test("TaskQueue refuses a task type or queue nothing can run when its memory store is its own, naming it", async () => {
  await using queue = await TaskQueue.open({ handlers, workers: 1 });
  await assert.rejects(
    queue.submit({ type: "nope" }),
    (error: Error) =>
      error instanceof TypeError &&
      /unknown task type "nope"/.test(error.message) &&
      /echo/.test(error.message),
  );
  await assert.rejects(
    queue.submit({ type: "echo", queue: "elsewhere" }),
    /queue "elsewhere" is not one this queue runs \(default\)/,
  );
  const handle = await queue.submit({ type: "echo", payload: 1 });
  assert.equal(await handle.result, 1);
});

Deno.test("TaskQueue refuses bad input with a clear error and stays usable", async () => {
  await assert.rejects(
    TaskQueue.open({ handlers, workers: 0 }),
    /workers must be an integer >= 1, got 0/,
  );
  await assert.rejects(
    TaskQueue.open({ handlers, concurrency: -1 }),
    RangeError,
  );
  await assert.rejects(TaskQueue.open({ handlers, capacity: 0 }), /capacity/);
  await assert.rejects(
    TaskQueue.open({ handlers, overflow: "drop" as never }),
    TypeError,
  );

  await using queue = await TaskQueue.open({ handlers, workers: 1 });
  await assert.rejects(
    queue.submit({ type: "echo", payload: { f: () => 1 } }),
    /payload is not structured-cloneable/,
  );
  await assert.rejects(
    queue.submit({ payload: 1 } as never),
    /type must be a non-empty string/,
  );
  await assert.rejects(
    queue.submitMany([{ type: "echo" }, { type: "" }]),
    /tasks\[1\]: type must be a non-empty string/,
  );
  assert.equal(
    queue.metrics.counter("enqueued"),
    0,
    "nothing from a bad batch is accepted",
  );
  const handle = await queue.submit({ type: "echo", payload: "still fine" });
  assert.equal(await handle.result, "still fine");
});

Deno.test("TaskQueue.drain() resolves after every task finished", async () => {
  await using queue = await TaskQueue.open({ handlers, workers: 2 });
  await queue.submitMany(
    Array.from({ length: 200 }, (_, i) => ({ type: "echo", payload: i })),
  );
  await queue.drain();
  assert.equal(queue.metrics.counter("succeeded"), 200);
  assert.equal(queue.depth, 0);
});

Deno.test("TaskQueue works when imported by file URL from another directory", async () => {
  await using dir = await tempDir();
  const mod = new URL("../../mod.ts", import.meta.url).href;
  const script = `${dir.path}/use_sluice.ts`;
  await Deno.writeTextFile(
    script,
    `import { TaskQueue } from ${JSON.stringify(mod)};
await using queue = await TaskQueue.open({ workers: 2 });
const handles = await queue.submitMany([
  { type: "compute", payload: { operation: "fibonacci", value: 90 } },
  { type: "compute", payload: { operation: "double", value: 21 } },
]);
console.log(JSON.stringify(await Promise.all(handles.map((h) => h.result))));
`,
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "--allow-sys", script],
    cwd: dir.path,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), [
    { result: "2880067194370816120" },
    { result: "42" },
  ]);
});

Deno.test("TaskQueue retries a settle with backoff while the store is down", async () => {
  const gate = new Gate();
  const store = new FlakyStore(new MemoryTaskStore());
  const lines: string[] = [];
  try {
    await using queue = await TaskQueue.open({
      handlers,
      workers: 1,
      db: store,
      logger: new Logger({ level: "warn", sink: (line) => lines.push(line) }),
    });
    const handle = await queue.submit({
      type: "hold",
      payload: { sab: gate.sab, value: 7 },
    });
    await gate.waitStarted(1);
    store.down = true;
    gate.release();
    await waitFor(() => store.failedCommits >= 2, {
      what: "two failed commits",
    });
    assert.equal(
      await isPending(handle.result),
      true,
      "no result before it is stored",
    );
    store.down = false;
    assert.equal(await withDeadline(handle.result, 10_000, "the result"), 7);
    assert.equal(gate.started, 1, "the handler ran once");
    assert.equal((await queue.getTask(handle.id))?.status, "succeeded");
    const events = lines.map((line) => JSON.parse(line));
    const outage = events.filter((e) => e.event === "store_unavailable");
    assert.ok(outage.length >= 2);
    assert.ok(
      outage[1].retry_in_ms >= outage[0].retry_in_ms / 2,
      "backoff grows",
    );
  } finally {
    await store.close();
  }
});

Deno.test("TaskQueue.submitMany() under reject accepts a batch whole or not at all", async () => {
  const gate = new Gate();
  await using queue = await TaskQueue.open({
    handlers,
    workers: 1,
    capacity: 4,
    prefetch: 0,
    overflow: "reject",
  });
  const first = await queue.submit({
    type: "hold",
    payload: { sab: gate.sab, value: 0 },
  });
  await gate.waitStarted(1);
  const batch = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      type: "hold",
      payload: { sab: gate.sab, value: i + 1 },
    }));
  const error = await queue.submitMany(batch(5)).catch((e) => e);
  assert.ok(error instanceof QueueFullError, String(error));
  assert.equal(queue.depth, 0, "nothing of the refused batch was accepted");
  assert.equal(queue.metrics.counter("enqueued"), 1);
  assert.equal(queue.metrics.counter("rejected"), 5);
  const handles = await queue.submitMany(batch(4));
  assert.equal(queue.depth, 4);
  gate.release();
  assert.deepEqual(
    await Promise.all([first, ...handles].map((h) => h.result)),
    [0, 1, 2, 3, 4],
  );
});

Deno.test("TaskQueue.close() past its deadline cancels running handlers through their signal", async () => {
  const gate = new Gate();
  const store = new MemoryTaskStore();
  try {
    const queue = await TaskQueue.open({
      handlers,
      workers: 1,
      db: store,
      graceMs: 5_000,
    });
    const handle = await queue.submit({
      type: "awaitAbort",
      payload: { sab: gate.sab },
    });
    await gate.waitStarted(1);
    const report = await queue.close({ deadline: 20 });
    assert.equal(report.drained, false);
    assert.deepEqual(report.unfinishedIds, [handle.id]);
    await assert.rejects(handle.result, QueueClosedError);
    assert.equal(
      Atomics.load(gate.cells, 2),
      1,
      "the handler saw a TaskCancelledError",
    );
    // Cancelled, not failed: handed back to the store, due at once, with
    // the attempt its start was charged taken back.
    assert.equal(queue.metrics.counter("failed_transient"), 0);
    const record = await store.get(handle.id);
    assert.equal(record?.status, "queued");
    assert.equal(record?.attempts, 0);
    assert.equal(record?.leaseUntil, null);
  } finally {
    await store.close();
  }
});
