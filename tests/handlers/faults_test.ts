import assert from "node:assert/strict";
import { PermanentError, TransientError } from "../../lib/errors.ts";
import {
  type FaultPolicy,
  SIMULATED_IO_30MS,
  validateFaultPolicy,
  withFaults,
} from "../../lib/handlers/faults.ts";
import type { Handler, TaskContext } from "../../lib/handler.ts";
import { noop } from "../../lib/handlers/noop.ts";
import { ObjectStore } from "../../lib/objects.ts";
import { isPending, withDeadline } from "../_helpers.ts";

const objects = new ObjectStore("/nonexistent");

function context(
  taskId: string,
  attempt = 1,
  signal: AbortSignal = new AbortController().signal,
): TaskContext {
  return {
    signal,
    attempt,
    taskId,
    idempotencyKey: null,
    type: "noop",
    objects,
    log: {
      debug(): void {},
      info(): void {},
      warn(): void {},
      error(): void {},
    },
    checkpointed: undefined,
    progress(): void {},
    checkpoint: (): Promise<void> => Promise.resolve(),
  };
}

async function outcome(handler: Handler, ctx: TaskContext): Promise<string> {
  try {
    await handler(null as never, ctx);
    return "ok";
  } catch (error) {
    if (error instanceof TransientError) return "transient";
    if (error instanceof PermanentError) return "permanent";
    throw error;
  }
}

async function outcomes(policy: FaultPolicy, n: number): Promise<string[]> {
  const handler = withFaults(noop as Handler, policy, "noop");
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await outcome(handler, context(`task-${i}`)));
  }
  return out;
}

Deno.test("withFaults() injects about 20 % transient faults reproducibly when seeded", async () => {
  const policy = { transientErrorRate: 0.2, seed: 42 };
  const first = await outcomes(policy, 2000);
  const second = await outcomes(policy, 2000);
  assert.deepEqual(second, first);
  const rate = first.filter((o) => o === "transient").length / 2000;
  assert.ok(rate > 0.17 && rate < 0.23, `transient rate ${rate}`);
  assert.ok(first.every((o) => o === "ok" || o === "transient"));
  const other = await outcomes({ ...policy, seed: 43 }, 2000);
  assert.notDeepEqual(other, first);
});

Deno.test("withFaults() draws afresh for a retry of the same task", async () => {
  const handler = withFaults(
    noop as Handler,
    { transientErrorRate: 0.5 },
    "noop",
  );
  const byAttempt = [];
  for (let attempt = 1; attempt <= 40; attempt++) {
    byAttempt.push(await outcome(handler, context("same-task", attempt)));
  }
  assert.ok(new Set(byAttempt).size === 2, `outcomes: ${byAttempt}`);
  assert.equal(
    await outcome(handler, context("same-task", 7)),
    byAttempt[6],
  );
});

Deno.test("withFaults() splits transient and permanent faults by their rates", async () => {
  const results = await outcomes(
    { transientErrorRate: 0.3, permanentErrorRate: 0.3, seed: 5 },
    2000,
  );
  const count = (kind: string): number =>
    results.filter((o) => o === kind).length;
  for (const kind of ["transient", "permanent", "ok"]) {
    const expected = kind === "ok" ? 800 : 600;
    assert.ok(
      Math.abs(count(kind) - expected) < 100,
      `${kind}: ${count(kind)}`,
    );
  }
});

Deno.test("withFaults() applies the byType override when the type matches", async () => {
  const policy: FaultPolicy = {
    transientErrorRate: 0,
    byType: { flaky: { permanentErrorRate: 1 } },
  };
  const flaky = withFaults(noop as Handler, policy, "flaky");
  const steady = withFaults(noop as Handler, policy, "steady");
  const ctx = context("t1");
  await assert.rejects(
    async () => await flaky(null as never, ctx),
    (e) =>
      e instanceof PermanentError &&
      e.message === "Cannot run task: injected permanent fault",
  );
  assert.equal(await steady(null as never, ctx), null);
});

Deno.test("withFaults() waits the latency and rejects promptly when aborted", async () => {
  const handler = withFaults(noop as Handler, SIMULATED_IO_30MS, "noop");
  const started = performance.now();
  assert.equal(await handler(null as never, context("t1")), null);
  assert.ok(performance.now() - started >= 29, "waited the 30 ms");
  const slow = withFaults(noop as Handler, { latencyMs: 60_000 }, "noop");
  const controller = new AbortController();
  const running = Promise.resolve(
    slow(null as never, context("t2", 1, controller.signal)),
  );
  assert.equal(await isPending(running), true);
  controller.abort(new Error("cancelled"));
  await assert.rejects(
    withDeadline(running, 1000, "aborted fault delay"),
    /cancelled/,
  );
});

Deno.test("validateFaultPolicy() throws RangeError naming the field when a value is out of range", () => {
  validateFaultPolicy({});
  validateFaultPolicy({
    latencyMs: 30,
    jitterMs: 5,
    transientErrorRate: 0.5,
    seed: 3,
  });
  const cases: Array<[FaultPolicy, RegExp]> = [
    [
      { transientErrorRate: 1.5 },
      /transientErrorRate must be a number from 0 to 1, got 1\.5/,
    ],
    [{ permanentErrorRate: -0.1 }, /permanentErrorRate/],
    [{ latencyMs: -1 }, /latencyMs/],
    [{ jitterMs: Number.NaN }, /jitterMs/],
    [{ seed: 1.5 }, /seed must be an integer/],
    [{ transientErrorRate: 0.6, permanentErrorRate: 0.6 }, /must be at most 1/],
    [
      { byType: { fail: { transientErrorRate: 2 } } },
      /byType\["fail"\]\.transientErrorRate/,
    ],
    [
      { transientErrorRate: 0.6, byType: { x: { permanentErrorRate: 0.6 } } },
      /byType\["x"\]\.transientErrorRate \+ permanentErrorRate/,
    ],
  ];
  for (const [policy, pattern] of cases) {
    assert.throws(
      () => validateFaultPolicy(policy),
      (e) => e instanceof RangeError && pattern.test(e.message),
    );
    assert.throws(() => withFaults(noop as Handler, policy, "x"), RangeError);
  }
  assert.throws(() => withFaults(42 as never, {}, "x"), TypeError);
});
