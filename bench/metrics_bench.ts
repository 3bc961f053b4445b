/**
 * One question: what does recording one task's metrics cost (count the
 * dequeue and the success, record wait/run/end-to-end latency, update the
 * queue depth twice), against keeping raw latencies in arrays?
 *
 * Each measured iteration records TASKS tasks; divide the reported time by
 * TASKS for the per-task cost. The target is at most 200 ns per task.
 *
 * @module
 */

import { Metrics } from "../lib/metrics/metrics.ts";

const TASKS = 10_000;

// Precomputed latencies so the measured loop does no random number work.
const WAIT_MS = new Float64Array(TASKS);
const RUN_MS = new Float64Array(TASKS);
for (let i = 0; i < TASKS; i++) {
  WAIT_MS[i] = (i * 7919) % 500 / 10;
  RUN_MS[i] = 1 + (i * 104_729) % 10_000 / 100;
}

Deno.bench({
  name: "arrays: push wait/run/e2e + object counters x10,000",
  group: "metrics per task",
  baseline: true,
  fn(b: Deno.BenchContext): void {
    const counters = { dequeued: 0, succeeded: 0 };
    const wait: number[] = [];
    const run: number[] = [];
    const endToEnd: number[] = [];
    let depth = TASKS;
    b.start();
    for (let i = 0; i < TASKS; i++) {
      counters.dequeued++;
      depth--;
      wait.push(WAIT_MS[i]!);
      run.push(RUN_MS[i]!);
      endToEnd.push(WAIT_MS[i]! + RUN_MS[i]!);
      counters.succeeded++;
    }
    b.end();
    if (endToEnd.length !== TASKS || depth !== 0) {
      throw new Error("Cannot bench: lost samples");
    }
  },
});

Deno.bench({
  name:
    "Metrics, caller's timestamp: recordDequeue + recordLatency + inc x10,000",
  group: "metrics per task",
  fn(b: Deno.BenchContext): void {
    const metrics = new Metrics();
    // One timestamp per batch, as the dispatcher reads once per turn.
    const now = performance.now();
    b.start();
    for (let i = 0; i < TASKS; i++) {
      metrics.recordDequeue(TASKS - i - 1, now);
      metrics.recordLatency(WAIT_MS[i]!, RUN_MS[i]!);
      metrics.inc("succeeded");
    }
    b.end();
    if (metrics.counter("succeeded") !== TASKS) {
      throw new Error("Cannot bench: lost counts");
    }
  },
});

Deno.bench({
  name: "Metrics, own clock: inc x2 + setDepth + recordLatency x10,000",
  group: "metrics per task",
  fn(b: Deno.BenchContext): void {
    const metrics = new Metrics();
    b.start();
    for (let i = 0; i < TASKS; i++) {
      metrics.inc("dequeued");
      metrics.setDepth(TASKS - i - 1);
      metrics.recordLatency(WAIT_MS[i]!, RUN_MS[i]!);
      metrics.inc("succeeded");
    }
    b.end();
    if (metrics.counter("succeeded") !== TASKS) {
      throw new Error("Cannot bench: lost counts");
    }
  },
});

Deno.bench({
  name: "performance.now() x10,000 (the clock read the first form avoids)",
  group: "metrics per task",
  fn(b: Deno.BenchContext): void {
    let sum = 0;
    b.start();
    for (let i = 0; i < TASKS; i++) sum += performance.now();
    b.end();
    if (!(sum > 0)) throw new Error("Cannot bench: clock returned nothing");
  },
});
