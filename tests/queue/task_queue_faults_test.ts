import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type FaultConfig,
  faultyHandlers,
  SIMULATED_IO_30MS,
} from "../../lib/handlers/faults.ts";
import { mulberry32, seedFrom } from "../../lib/_rng.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { TaskFailedError } from "../../lib/queue/types.ts";
import type { TaskStore } from "../../lib/store/store.ts";
import { tempDir, withDeadline } from "../_helpers.ts";

const TASKS = 500;
const RETRY = { maxAttempts: 3, baseMs: 1, capMs: 5, seed: 1 } as const;
const DEADLINE_MS = 30_000;
/** Dead-lettering is expected here: keep the output clean. */
const QUIET = { level: "silent" } as const;

type Fate = "succeeded" | "dead_transient" | "dead_permanent";

/** What one task goes through under `faults`, worked out from the seed alone. */
interface Expected {
  fate: Fate;
  attempts: number;
  transientFailures: number;
}

/**
 * Replays the fault draws of `withFaults` for a task identified by `key`:
 * per attempt, a PRNG seeded with `(seed, key, attempt)` draws the latency
 * first and the fault second. This is the documented contract the queue
 * run must agree with, draw for draw.
 */
function expectedFate(key: string, faults: FaultConfig): Expected {
  const transient = faults.transientErrorRate ?? 0;
  const permanent = faults.permanentErrorRate ?? 0;
  let transientFailures = 0;
  for (let attempt = 1; attempt <= RETRY.maxAttempts; attempt++) {
    const random = mulberry32(seedFrom(faults.seed ?? 1, key, attempt));
    random(); // latency draw
    const draw = random();
    if (draw < transient) {
      transientFailures++;
      continue;
    }
    if (draw < transient + permanent) {
      return { fate: "dead_permanent", attempts: attempt, transientFailures };
    }
    return { fate: "succeeded", attempts: attempt, transientFailures };
  }
  return {
    fate: "dead_transient",
    attempts: RETRY.maxAttempts,
    transientFailures,
  };
}

interface RunReport {
  counters: Record<
    | "enqueued"
    | "dequeued"
    | "succeeded"
    | "failed_transient"
    | "failed_permanent"
    | "retried"
    | "dead_lettered",
    number
  >;
  /** Fate of each task by its key, as the store and the handle report it. */
  fates: Map<string, Fate>;
  /** Attempts of each task by its key, from the store. */
  attempts: Map<string, number>;
  /** Counts by status in the store after the run. */
  counts: Record<string, number>;
}

/**
 * Runs `TASKS` keyed noop tasks under `faults` to the end and checks the
 * bookkeeping identities that hold for any seed.
 */
async function run(faults: FaultConfig, db: string): Promise<RunReport> {
  await using queue = await TaskQueue.open({
    workers: 2,
    concurrency: 8,
    handlers: faultyHandlers(faults),
    retry: RETRY,
    logger: QUIET,
    db,
  });
  const keys = Array.from({ length: TASKS }, (_, i) => `noop-${i}`);
  const handles = await queue.submitMany(
    keys.map((idempotencyKey) => ({ type: "noop", idempotencyKey })),
  );
  const settled = await withDeadline(
    Promise.allSettled(handles.map((h) => h.result)),
    DEADLINE_MS,
    `${TASKS} tasks under faults`,
  );
  await queue.drain();
  const store: TaskStore = queue.store;
  const status = await store.status(Date.now());
  const m = queue.metrics;
  const counters = {
    enqueued: m.counter("enqueued"),
    dequeued: m.counter("dequeued"),
    succeeded: m.counter("succeeded"),
    failed_transient: m.counter("failed_transient"),
    failed_permanent: m.counter("failed_permanent"),
    retried: m.counter("retried"),
    dead_lettered: m.counter("dead_lettered"),
  };
  const fates = new Map<string, Fate>();
  const attempts = new Map<string, number>();
  for (const [i, outcome] of settled.entries()) {
    const handle = handles[i]!;
    const record = await store.get(handle.id);
    assert.ok(record !== undefined, `record of ${keys[i]}`);
    attempts.set(keys[i]!, record.attempts);
    if (outcome.status === "fulfilled") {
      assert.equal(outcome.value, null);
      assert.equal(record.status, "succeeded");
      fates.set(keys[i]!, "succeeded");
      continue;
    }
    const error = outcome.reason;
    assert.ok(error instanceof TaskFailedError, String(error));
    assert.equal(record.status, "dead");
    assert.equal(record.errorClass, error.errorClass);
    assert.equal(record.attempts, error.attempts);
    fates.set(
      keys[i]!,
      error.errorClass === "transient" ? "dead_transient" : "dead_permanent",
    );
  }
  return { counters, fates, attempts, counts: status.counts };
}

/** The identities every run must satisfy, whatever the seed. */
function assertBooks(report: RunReport): void {
  const { counters: c, counts } = report;
  const tally = (fate: Fate): number =>
    [...report.fates.values()].filter((f) => f === fate).length;
  const deadTransient = tally("dead_transient");
  const deadPermanent = tally("dead_permanent");

  // Every task ends succeeded or dead-lettered; nothing is left over.
  assert.equal(counts.queued, 0);
  assert.equal(counts.running, 0);
  assert.equal(counts.failed, 0);
  assert.equal(counts.succeeded, c.succeeded);
  assert.equal(counts.dead, c.dead_lettered);
  // enqueued = succeeded + dead_lettered
  assert.equal(c.enqueued, TASKS);
  assert.equal(c.enqueued, c.succeeded + c.dead_lettered);
  // Every attempt either succeeds or fails:
  // dequeued = succeeded + failed_transient + failed_permanent
  assert.equal(
    c.dequeued,
    c.succeeded + c.failed_transient + c.failed_permanent,
  );
  // Each transient failure is retried unless it exhausted the task:
  // retried = failed_transient - dead_lettered(transient exhaustion)
  assert.equal(c.retried, c.failed_transient - deadTransient);
  // A permanent failure dead-letters at once: never retried.
  assert.equal(c.failed_permanent, deadPermanent);
  assert.equal(c.dead_lettered, deadTransient + deadPermanent);
  // Handle outcomes agree with the counters.
  assert.equal(tally("succeeded"), c.succeeded);
  // Attempts in the store add up to the attempts dispatched.
  const attempts = [...report.attempts.values()].reduce((a, b) => a + b, 0);
  assert.equal(attempts, c.dequeued);
}

/** Checks the run against the replayed draws, task by task. */
function assertMatchesSeed(report: RunReport, faults: FaultConfig): void {
  let transientFailures = 0;
  for (const [key, fate] of report.fates) {
    const expected = expectedFate(key, faults);
    assert.equal(fate, expected.fate, `fate of ${key}`);
    assert.equal(
      report.attempts.get(key),
      expected.attempts,
      `attempts of ${key}`,
    );
    transientFailures += expected.transientFailures;
  }
  assert.equal(report.fates.size, TASKS);
  assert.equal(report.counters.failed_transient, transientFailures);
}

Deno.test("TaskQueue ends every task succeeded or dead-lettered when 20 % of attempts fail transiently", async () => {
  await using dir = await tempDir("sluice-faults-");
  const faults: FaultConfig = { transientErrorRate: 0.2, seed: 7 };
  const first = await run(faults, join(dir.path, "first.db"));
  assertBooks(first);
  assertMatchesSeed(first, faults);
  assert.equal(first.counters.failed_permanent, 0);
  // Seed 7 over keys noop-0..noop-499: 121 transient failures, 4 tasks
  // exhausted (0.2³ × 500 expected), 117 retries.
  assert.equal(first.counters.dead_lettered, 4);
  assert.equal(first.counters.retried, 117);
  // About 0.2 of first attempts fail, and 0.2³ of tasks run out of attempts.
  assert.ok(
    first.counters.retried > TASKS * 0.15,
    `retried ${first.counters.retried}`,
  );
  assert.ok(first.counters.dead_lettered > 0, "some tasks exhausted");
  assert.ok(first.counters.dead_lettered < TASKS * 0.03);

  // The same seed over the same keys reproduces the run on a fresh store.
  const second = await run(faults, join(dir.path, "second.db"));
  assertBooks(second);
  assert.equal(second.counters.dead_lettered, first.counters.dead_lettered);
  assert.equal(second.counters.retried, first.counters.retried);
  assert.deepEqual(second.fates, first.fates);
});

Deno.test("TaskQueue never retries a permanent fault when 5 % of attempts fail permanently", async () => {
  await using dir = await tempDir("sluice-faults-");
  const faults: FaultConfig = {
    transientErrorRate: 0.2,
    permanentErrorRate: 0.05,
    seed: 7,
  };
  const report = await run(faults, join(dir.path, "tasks.db"));
  assertBooks(report);
  assertMatchesSeed(report, faults);
  const permanent =
    [...report.fates.values()].filter((f) => f === "dead_permanent").length;
  assert.ok(permanent > 0, "some permanent faults drawn");
  assert.equal(report.counters.failed_permanent, permanent);
});

Deno.test("TaskQueue runs each task for at least 30 ms when faults simulate 30 ms of I/O", async () => {
  const workers = 1;
  const concurrency = 8;
  const tasks = 40;
  await using queue = await TaskQueue.open({
    workers,
    concurrency,
    handlers: faultyHandlers(SIMULATED_IO_30MS),
  });
  const started = performance.now();
  const handles = await queue.submitMany(
    Array.from({ length: tasks }, () => ({ type: "noop" })),
  );
  const results = await withDeadline(
    Promise.all(handles.map((h) => h.result)),
    DEADLINE_MS,
    "simulated I/O tasks",
  );
  const wall = performance.now() - started;
  assert.deepEqual(results, Array(tasks).fill(null));
  const runTime = queue.metrics.runTime;
  assert.equal(runTime.count, tasks);
  assert.ok(runTime.min >= 30, `shortest run ${runTime.min} ms`);
  // At most `workers × concurrency` run at once, so 40 tasks need 5 waves
  // of 30 ms. A lower bound only: a slow machine may take longer.
  const waves = Math.ceil(tasks / (workers * concurrency));
  assert.ok(wall >= waves * 30, `wall ${wall} ms for ${waves} waves`);
});
