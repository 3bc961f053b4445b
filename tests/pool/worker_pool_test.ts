import assert from "node:assert/strict";
import {
  PoolClosedError,
  type PoolEvent,
  type PoolResult,
  type PoolTask,
  WorkerPool,
} from "../../lib/pool/worker_pool.ts";
import { tempDir, waitFor, withDeadline } from "../_helpers.ts";

const BASIC = new URL("../fixtures/basic.ts", import.meta.url);
const CRASH = new URL("../fixtures/crash.ts", import.meta.url);
const HANG = new URL("../fixtures/hang.ts", import.meta.url);
const FAIL = new URL("../fixtures/fail.ts", import.meta.url);
const BAD = new URL("../fixtures/bad_module.ts", import.meta.url);
const DEADLINE = 60_000;

let nextId = 0;
function task(type: string, payload: unknown = null, extra = {}): PoolTask {
  return {
    id: `t${++nextId}`,
    type,
    payload,
    attempt: 1,
    idempotencyKey: null,
    ...extra,
  };
}

function value(result: PoolResult): unknown {
  if (!result.ok) {
    assert.fail(`task failed: ${result.error.name}: ${result.error.message}`);
  }
  return result.value;
}

function failure(result: PoolResult): PoolResult & { ok: false } {
  if (result.ok) assert.fail(`task succeeded with ${String(result.value)}`);
  return result;
}

/** Resolves with the first event of `type` the pool reports. */
function eventRecorder(): {
  events: PoolEvent[];
  onEvent: (event: PoolEvent) => void;
  next: (type: PoolEvent["type"]) => Promise<PoolEvent>;
} {
  const events: PoolEvent[] = [];
  const waiters: { type: string; resolve: (e: PoolEvent) => void }[] = [];
  return {
    events,
    onEvent(event: PoolEvent): void {
      events.push(event);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.type === event.type) {
          waiters[i]!.resolve(event);
          waiters.splice(i, 1);
        }
      }
    },
    next(type: PoolEvent["type"]): Promise<PoolEvent> {
      const seen = events.find((e) => e.type === type);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ type, resolve }));
    },
  };
}

Deno.test("WorkerPool.start() throws RangeError when workers or concurrency is below 1", async () => {
  for (const workers of [0, -1, 1.5]) {
    await assert.rejects(
      WorkerPool.start({ handlers: BASIC, workers }),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message.includes("workers") &&
        error.message.includes(String(workers)),
    );
  }
  await assert.rejects(
    WorkerPool.start({ handlers: BASIC, workers: 1, concurrency: 0 }),
    (error: unknown) =>
      error instanceof RangeError && /concurrency.*0/.test(error.message),
  );
  await assert.rejects(
    WorkerPool.start({ handlers: BASIC, workers: 1, timeoutMs: -1 }),
    (error: unknown) =>
      error instanceof RangeError && /timeoutMs.*-1/.test(error.message),
  );
});

Deno.test("WorkerPool.start() throws TypeError when the handler URL is relative", async () => {
  await assert.rejects(
    WorkerPool.start({ handlers: "../fixtures/basic.ts", workers: 1 }),
    (error: unknown) =>
      error instanceof TypeError &&
      error.message.includes("../fixtures/basic.ts"),
  );
});

Deno.test("WorkerPool.start() rejects with the module's error when the handler module fails to load", async () => {
  const error = await withDeadline(
    WorkerPool.start({ handlers: BAD, workers: 2 }).then(
      () => assert.fail("start resolved"),
      (e: unknown) => e,
    ),
    DEADLINE,
    "start() to reject",
  );
  assert.ok(error instanceof Error);
  assert.match(error.message, /^Cannot start worker pool: /);
  assert.match(error.message, /bad_module fixture/);
  assert.ok(error.cause instanceof Error);
  assert.match(error.cause.message, /bad_module fixture/);
});

Deno.test("WorkerPool.run() runs handlers on distinct worker threads when tasks run at once", async () => {
  await using pool = await WorkerPool.start({ handlers: BASIC, workers: 2 });
  // Both tasks block their thread until both have arrived: they can only
  // finish if they run on two threads at the same time.
  const sab = new SharedArrayBuffer(8);
  const payload = { sab, parties: 2, timeoutMs: 5_000 };
  const results = await withDeadline(
    Promise.all([
      pool.run(task("barrier", payload)),
      pool.run(task("barrier", payload)),
    ]),
    DEADLINE,
    "barrier tasks",
  );
  const names = results.map(value);
  assert.equal(new Set(names).size, 2);
  for (const name of names) assert.match(String(name), /^sluice-worker-\d+$/);
  assert.deepEqual(
    new Set(results.map((r) => r.workerId)),
    new Set(pool.stats().map((s) => s.id)),
  );
});

Deno.test("WorkerPool.run() runs C tasks at once on one worker when concurrency is C", async () => {
  await using pool = await WorkerPool.start({
    handlers: BASIC,
    workers: 1,
    concurrency: 3,
  });
  const payload = { key: "c3", parties: 3 };
  const runs = [1, 2, 3].map(() => pool.run(task("gate", payload)));
  assert.equal(pool.inFlight, 3);
  assert.equal(pool.freeSlots, 0);
  const results = await withDeadline(Promise.all(runs), DEADLINE, "gate");
  assert.deepEqual(results.map(value), [3, 3, 3]);
});

Deno.test("WorkerPool.run() waits for a slot in FIFO order when every slot is busy", async () => {
  await using pool = await WorkerPool.start({ handlers: BASIC, workers: 1 });
  const order: number[] = [];
  const runs = [0, 1, 2, 3].map((i) =>
    pool.run(task("echo", i)).then((r) => order.push(value(r) as number))
  );
  // The pool holds only what its slots hold; the others wait in run().
  assert.equal(pool.inFlight, 1);
  assert.equal(pool.freeSlots, 0);
  await withDeadline(Promise.all(runs), DEADLINE, "queued tasks");
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.equal(pool.freeSlots, 1);
});

Deno.test("WorkerPool.dispatch() throws RangeError when no slot is free", async () => {
  await using pool = await WorkerPool.start({ handlers: HANG, workers: 1 });
  const settled = Promise.withResolvers<PoolResult>();
  pool.dispatch(task("waitForAbort"), {
    settled: (_task, result) => settled.resolve(result),
  });
  assert.throws(
    () => pool.dispatch(task("echo", 1), { settled: () => {} }),
    RangeError,
  );
  assert.equal(pool.inFlight, 1);
  await pool.terminate();
  assert.equal(failure(await settled.promise).error.name, "WorkerCrashedError");
});

Deno.test("WorkerPool.dispatch() reports a handler still running as started, a quick one through its result, and started false when the worker never took the task", async () => {
  await using pool = await WorkerPool.start({
    handlers: BASIC,
    workers: 1,
    concurrency: 2,
    startReportMs: 1,
  });
  const seen: string[] = [];
  const listener = (done: (r: PoolResult) => void) => ({
    started: (t: PoolTask, workerId: number) =>
      seen.push(`started ${t.id} on ${workerId}`),
    settled: (t: PoolTask, result: PoolResult) => {
      seen.push(`settled ${t.id}`);
      done(result);
    },
  });
  // A handler that outlives the report interval is reported started.
  const slow = task("sleep", { ms: 100 });
  const slowDone = Promise.withResolvers<PoolResult>();
  pool.dispatch(slow, listener(slowDone.resolve));
  const slowResult = await slowDone.promise;
  assert.equal(slowResult.started, true);
  assert.deepEqual(seen, [
    `started ${slow.id} on ${pool.stats()[0]!.id}`,
    `settled ${slow.id}`,
  ]);

  // A quick one is known to have started from its result.
  const quick = task("echo", 7);
  const quickDone = Promise.withResolvers<PoolResult>();
  pool.dispatch(quick, listener(quickDone.resolve));
  const result = await quickDone.promise;
  assert.equal(value(result), 7);
  assert.equal(result.started, true);
  assert.ok(result.runMs >= 0);

  // Terminated before the worker could read the run message.
  const never = Promise.withResolvers<PoolResult>();
  let started = false;
  pool.dispatch(task("echo", 8), {
    started: () => (started = true),
    settled: (_t, r) => never.resolve(r),
  });
  await pool.terminate();
  const lost = failure(await never.promise);
  assert.equal(lost.error.name, "WorkerCrashedError");
  assert.equal(lost.started, false);
  assert.equal(started, false);
});

Deno.test("WorkerPool.waitForSlot() resolves when a slot frees and rejects when its signal aborts", async () => {
  await using pool = await WorkerPool.start({ handlers: BASIC, workers: 1 });
  const run = pool.run(task("sleep", { ms: 20 }));
  const aborted = new AbortController();
  const cancelled = pool.waitForSlot(aborted.signal);
  aborted.abort(new Error("stop waiting"));
  await assert.rejects(cancelled, /stop waiting/);
  await withDeadline(pool.waitForSlot(), DEADLINE, "a free slot");
  assert.equal(pool.freeSlots, 1);
  value(await run);
});

Deno.test("WorkerPool.run() passes the task's context and handles string export names", async () => {
  await using pool = await WorkerPool.start({
    handlers: BASIC,
    workers: 1,
    logLevel: "silent",
  });
  const ctx = value(
    await pool.run({
      id: "ctx-1",
      type: "logAll",
      payload: null,
      attempt: 3,
      idempotencyKey: "key-1",
    }),
  );
  assert.deepEqual(ctx, {
    taskId: "ctx-1",
    attempt: 3,
    idempotencyKey: "key-1",
    type: "logAll",
  });
  assert.equal(value(await pool.run(task("image.variant", "a"))), "variant:a");
  assert.equal(value(await pool.run(task("add", { a: 2, b: 40 }))), 42);
});

Deno.test("WorkerPool.run() reports a permanent error naming the type when the task type is unknown", async () => {
  await using pool = await WorkerPool.start({ handlers: BASIC, workers: 1 });
  const { error } = failure(await pool.run(task("nope")));
  assert.equal(error.name, "PermanentError");
  assert.equal(error.errorClass, "permanent");
  assert.match(error.message, /"nope"/);
  assert.match(error.message, /echo/);
  assert.match(error.message, /threadName/);
});

Deno.test("WorkerPool.run() reports handler failures as results when handlers throw", async () => {
  await using pool = await WorkerPool.start({ handlers: FAIL, workers: 1 });
  const cases: [string, string, string, RegExp][] = [
    ["transient", "TransientError", "transient", /503/],
    ["permanent", "PermanentError", "permanent", /bad input/],
    ["plain", "Error", "transient", /plain failure/],
    ["throwString", "Error", "transient", /a bare string/],
  ];
  for (const [type, name, errorClass, message] of cases) {
    const { error } = failure(await pool.run(task(type)));
    assert.equal(error.name, name, type);
    assert.equal(error.errorClass, errorClass, type);
    assert.match(error.message, message);
  }
});

Deno.test("WorkerPool.run() settles WorkerCrashedError and replaces the worker when a worker dies", async (t) => {
  for (const type of ["throwLater", "closeSelf"]) {
    await t.step(type, async () => {
      const recorder = eventRecorder();
      await using pool = await WorkerPool.start({
        handlers: CRASH,
        workers: 2,
        onEvent: recorder.onEvent,
      });
      const before = pool.stats().map((s) => s.id);
      const result = await withDeadline(pool.run(task(type)), DEADLINE, type);
      const { error } = failure(result);
      assert.equal(error.name, "WorkerCrashedError");
      assert.equal(error.errorClass, "transient");
      const event = await withDeadline(
        recorder.next("worker-replaced"),
        DEADLINE,
        "worker-replaced",
      );
      assert.equal(event.type, "worker-replaced");
      if (event.type === "worker-replaced") {
        assert.equal(event.workerId, result.workerId);
        assert.equal(event.reason, type === "closeSelf" ? "exited" : "crashed");
        assert.ok(!before.includes(event.replacementId));
      }
      await waitFor(() => pool.stats().every((s) => s.alive), {
        what: "two live workers",
      });
      assert.equal(pool.stats().length, 2);
      assert.equal(pool.freeSlots, 2);
      const later = await Promise.all(
        [1, 2, 3, 4].map((i) => pool.run(task("echo", i))),
      );
      assert.deepEqual(later.map(value), [1, 2, 3, 4]);
    });
  }
});

Deno.test("WorkerPool.run() settles TaskTimeoutError and replaces the worker when a handler ignores the abort", async () => {
  const recorder = eventRecorder();
  await using pool = await WorkerPool.start({
    handlers: HANG,
    workers: 1,
    concurrency: 2,
    timeoutMs: 100,
    graceMs: 50,
    onEvent: recorder.onEvent,
  });
  const [hung] = pool.stats();
  const other = pool.run(task("waitForAbort", null, { timeoutMs: 0 }));
  const { error } = failure(
    await withDeadline(pool.run(task("busyLoop")), DEADLINE, "timeout"),
  );
  assert.equal(error.name, "TaskTimeoutError");
  assert.equal(error.errorClass, "transient");
  const event = await withDeadline(
    recorder.next("worker-replaced"),
    DEADLINE,
    "worker-replaced",
  );
  assert.ok(event.type === "worker-replaced" && event.reason === "timed-out");
  assert.equal(event.workerId, hung?.id);
  const { error: otherError } = failure(await other);
  assert.equal(otherError.name, "WorkerCrashedError");
  await waitFor(() => pool.stats()[0]?.alive === true, {
    what: "a new worker",
  });
  assert.equal(value(await pool.run(task("echo", "after"))), "after");
});

Deno.test("WorkerPool.run() settles TaskTimeoutError without replacing the worker when the handler honours the signal", async () => {
  const recorder = eventRecorder();
  await using pool = await WorkerPool.start({
    handlers: HANG,
    workers: 1,
    graceMs: 5_000,
    onEvent: recorder.onEvent,
  });
  const [before] = pool.stats();
  const { error } = failure(
    await withDeadline(
      pool.run(task("waitForAbort", null, { timeoutMs: 30 })),
      DEADLINE,
      "timeout",
    ),
  );
  assert.equal(error.name, "TaskTimeoutError");
  assert.match(error.message, /30 ms/);
  await waitFor(() => pool.inFlight === 0, { what: "the handler to return" });
  assert.deepEqual(recorder.events.map((e) => e.type), ["task-timed-out"]);
  const [after] = pool.stats();
  assert.equal(after?.id, before?.id);
  assert.equal(after?.alive, true);
  assert.equal(value(await pool.run(task("echo", 1))), 1);
});

Deno.test("WorkerPool.run() throws TypeError and keeps working when the payload is not cloneable", async () => {
  await using pool = await WorkerPool.start({ handlers: BASIC, workers: 1 });
  await assert.rejects(
    pool.run(task("echo", { f: () => 1 })),
    (error: unknown) =>
      error instanceof TypeError &&
      error.message === "Cannot run task: payload is not structured-cloneable",
  );
  await assert.rejects(
    pool.run(task("echo", new Map([["k", Symbol("s")]]))),
    TypeError,
  );
  assert.equal(pool.inFlight, 0);
  assert.equal(value(await pool.run(task("echo", "next"))), "next");
});

Deno.test("WorkerPool.run() reports a permanent error when the result is not cloneable", async () => {
  await using pool = await WorkerPool.start({ handlers: BASIC, workers: 1 });
  const runs = [
    pool.run(task("echo", 1)),
    pool.run(task("uncloneable")),
  ];
  const [ok, bad] = await Promise.all(runs);
  assert.equal(value(ok!), 1);
  const { error } = failure(bad!);
  assert.equal(error.errorClass, "permanent");
  assert.equal(error.message, "Cannot return result: not structured-cloneable");
});

Deno.test("WorkerPool.run() transfers ArrayBuffers in payloads and results", async () => {
  await using pool = await WorkerPool.start({ handlers: BASIC, workers: 1 });
  const buffer = new Uint8Array(1024).fill(7).buffer;
  const measured = value(await pool.run(task("measure", buffer)));
  assert.deepEqual(measured, { byteLength: 1024, first: 7 });
  assert.equal(buffer.byteLength, 0);
  assert.equal(buffer.detached, true);

  const bytes = new Uint8Array(16).fill(9);
  const inner = value(await pool.run(task("measure", { data: bytes })));
  assert.deepEqual(inner, { byteLength: 16, first: 9 });
  assert.equal(bytes.byteLength, 0);

  const made = value(
    await pool.run(task("makeBuffer", { size: 2048, fill: 5 })),
  ) as { buffer: ArrayBuffer; bytes: Uint8Array };
  assert.ok(made.buffer instanceof ArrayBuffer);
  assert.equal(made.buffer.byteLength, 2048);
  assert.equal(new Uint8Array(made.buffer)[2047], 5);
  assert.deepEqual([...made.bytes], [5, 5, 5, 5]);
});

Deno.test("WorkerPool.close() lets in-flight tasks finish and refuses runs waiting for a slot", async () => {
  const pool = await WorkerPool.start({
    handlers: BASIC,
    workers: 2,
    concurrency: 2,
  });
  const runs = Promise.allSettled(
    [1, 2, 3, 4, 5, 6].map(() => pool.run(task("sleep", { ms: 10 }))),
  );
  assert.equal(pool.inFlight, 4);
  const closed = pool.close();
  await assert.rejects(pool.run(task("echo", 1)), PoolClosedError);
  await withDeadline(closed, DEADLINE, "close");
  const results = await runs;
  const ok = results.filter((r) => r.status === "fulfilled" && r.value.ok);
  assert.equal(ok.length, 4);
  const refused = results.filter((r) =>
    r.status === "rejected" && r.reason instanceof PoolClosedError
  );
  assert.equal(refused.length, 2);
  assert.equal(pool.inFlight, 0);
  assert.equal(pool.stats().filter((s) => s.alive).length, 0);
});

Deno.test("WorkerPool.terminate() settles in-flight tasks as WorkerCrashedError", async () => {
  const pool = await WorkerPool.start({
    handlers: HANG,
    workers: 1,
    concurrency: 2,
  });
  const runs = [pool.run(task("waitForAbort")), pool.run(task("echo", 1))];
  await pool.terminate();
  for (const result of await Promise.all(runs)) {
    assert.equal(failure(result).error.name, "WorkerCrashedError");
  }
  await assert.rejects(pool.waitForSlot(), PoolClosedError);
});

Deno.test("WorkerPool.utilization() counts the time workers are busy", async () => {
  await using pool = await WorkerPool.start({ handlers: HANG, workers: 1 });
  value(await pool.run(task("busyLoop", { ms: 40 })));
  const [stats] = pool.stats();
  assert.ok((stats?.busyMs ?? 0) >= 40, `busyMs ${stats?.busyMs}`);
  assert.equal(stats?.tasks, 1);
  const utilization = pool.utilization();
  assert.ok(utilization > 0 && utilization <= 1, `utilization ${utilization}`);
});

Deno.test("WorkerPool.start() works when imported from a script in another directory", async () => {
  await using dir = await tempDir();
  const mod = new URL("../../lib/pool/worker_pool.ts", import.meta.url).href;
  const script = `${dir.path}/run_pool.ts`;
  await Deno.writeTextFile(
    script,
    `import { WorkerPool } from ${JSON.stringify(mod)};
const pool = await WorkerPool.start({
  handlers: ${JSON.stringify(BASIC.href)},
  workers: 2,
});
const results = await Promise.all([1, 2, 3].map((a) =>
  pool.run({ id: String(a), type: "add", payload: { a, b: 10 }, attempt: 1, idempotencyKey: null })
));
await pool.close();
console.log(JSON.stringify(results.map((r) => r.ok ? r.value : r.error.message)));
`,
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", script],
    cwd: dir.path,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  assert.deepEqual(JSON.parse(lines.at(-1)!), [11, 12, 13]);
});

Deno.test("WorkerPool.dispatch() sends one message per worker per turn, not one per task", async () => {
  await using pool = await WorkerPool.start({
    handlers: BASIC,
    workers: 2,
    concurrency: 100,
  });
  const results = Array.from(
    { length: 200 },
    (_, i) =>
      pool.run({
        id: `t${i}`,
        type: "echo",
        payload: i,
        attempt: 1,
        idempotencyKey: null,
      }),
  );
  const settled = await Promise.all(results);
  assert.ok(settled.every((r) => r.ok));
  const stats = pool.stats();
  assert.equal(stats.reduce((sum, w) => sum + w.tasks, 0), 200);
  // 200 tasks dispatched in one turn over 2 workers: one message each.
  assert.deepEqual(stats.map((w) => w.batches), [1, 1]);
});

Deno.test("WorkerPool retries a worker position with backoff when a replacement cannot load the module", async () => {
  await using dir = await tempDir();
  const module = `${dir.path}/handlers.js`;
  const good = "export const echo = (x) => x;\n" +
    "export const closeSelf = () => { globalThis.close(); return new Promise(() => {}); };\n";
  await Deno.writeTextFile(module, good);
  const recorder = eventRecorder();
  await using pool = await WorkerPool.start({
    handlers: new URL(`file://${module}`),
    workers: 1,
    onEvent: recorder.onEvent,
  });
  // The module breaks, then the worker dies: its replacement cannot load.
  await Deno.writeTextFile(module, "throw new Error('broken module');\n");
  const crashed = await pool.run(task("closeSelf"));
  assert.equal(failure(crashed).error.name, "WorkerCrashedError");
  const failed = await withDeadline(
    recorder.next("worker-init-failed"),
    DEADLINE,
    "the failed load",
  );
  assert.ok(failed.type === "worker-init-failed" && failed.retryInMs > 0);
  assert.equal(pool.freeSlots, 0);
  // Once the module loads again, the position comes back.
  await Deno.writeTextFile(module, good);
  const result = await withDeadline(
    pool.run(task("echo", "back")),
    DEADLINE,
    "a task on the respawned worker",
  );
  assert.equal(value(result), "back");
});
