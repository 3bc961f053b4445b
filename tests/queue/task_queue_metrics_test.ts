import assert from "node:assert/strict";
import { QueueFullError } from "../../lib/channel.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { TaskFailedError } from "../../lib/queue/types.ts";
import { faultyHandlers } from "../../lib/handlers/faults.ts";
import { tempDir } from "../_helpers.ts";

const handlers = new URL("../fixtures/queue_handlers.ts", import.meta.url);

Deno.test("TaskQueue metrics add up exactly after a run with faults and rejections", async () => {
  await using queue = await TaskQueue.open({
    handlers: faultyHandlers({
      transientErrorRate: 0.2,
      permanentErrorRate: 0.1,
      seed: 3,
    }),
    workers: 1,
    concurrency: 4,
    capacity: 8,
    prefetch: 0,
    overflow: "reject",
    retry: { maxAttempts: 3, baseMs: 1, capMs: 4, seed: 1 },
  });
  let submitted = 0;
  let rejected = 0;
  const results = { ok: 0, failed: 0 };
  const firsts: Promise<void>[] = [];
  await Promise.all(Array.from({ length: 30 }, async (_, producer) => {
    for (let i = 0; i < 40; i++) {
      submitted++;
      // Every tenth submission repeats a key, so deduplication has work.
      const key = i % 10 === 9 ? `p${producer}-0` : `p${producer}-${i}`;
      try {
        const handle = await queue.submit({
          type: "noop",
          idempotencyKey: key,
        });
        if (handle.deduplicated) continue;
        firsts.push(handle.result.then(
          () => void results.ok++,
          (error) => {
            assert.ok(error instanceof TaskFailedError);
            results.failed++;
          },
        ));
      } catch (error) {
        assert.ok(error instanceof QueueFullError, String(error));
        rejected++;
      }
    }
  }));
  await queue.drain();
  await Promise.all(firsts);
  const c = (name: Parameters<typeof queue.metrics.counter>[0]): number =>
    queue.metrics.counter(name);

  assert.ok(rejected > 0, "the run exercised rejections");
  assert.ok(
    c("retried") > 0 && c("dead_lettered") > 0,
    "the run exercised faults",
  );
  // Every submission was accepted, rejected, or answered by a duplicate.
  assert.equal(submitted, c("enqueued") + c("rejected") + c("deduplicated"));
  assert.equal(c("rejected"), rejected);
  assert.equal(queue.channelStats().rejections, rejected);
  // Every accepted task ended succeeded or dead-lettered.
  assert.equal(c("enqueued"), c("succeeded") + c("dead_lettered"));
  assert.equal(results.ok, c("succeeded"));
  assert.equal(results.failed, c("dead_lettered"));
  // Every attempt started either succeeded or failed...
  assert.equal(
    c("dequeued"),
    c("succeeded") + c("failed_transient") + c("failed_permanent"),
  );
  // ...and every failed attempt was either retried or dead-lettered.
  assert.equal(
    c("failed_transient") + c("failed_permanent"),
    c("retried") + c("dead_lettered"),
  );
  const snapshot = queue.metrics.snapshot();
  assert.equal(snapshot.gauges.queue_depth, 0);
  assert.ok(snapshot.gauges.queue_depth_max <= 8);
  assert.equal(snapshot.gauges.workers_alive, 1);
  assert.equal(snapshot.latency.run.count, c("dequeued"));
  assert.ok(
    snapshot.utilization.overall > 0 && snapshot.utilization.overall <= 1,
  );
});

/** Parses Prometheus text: returns samples, and checks HELP/TYPE precede each family. */
function parsePrometheus(text: string): Map<string, number> {
  const described = new Map<string, { help: boolean; type?: string }>();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      const entry = described.get(meta[2]!) ?? { help: false };
      if (meta[1] === "HELP") entry.help = true;
      else entry.type = meta[3]!;
      described.set(meta[2]!, entry);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(sample, `not a valid sample line: ${line}`);
    const name = sample[1]!;
    const family = [...described.keys()].find((f) =>
      name === f || name === `${f}_sum` || name === `${f}_count`
    );
    assert.ok(family, `${name} has no HELP/TYPE before it`);
    assert.ok(
      described.get(family)!.help && described.get(family)!.type,
      family,
    );
    if (described.get(family)!.type === "counter") {
      assert.match(name, /_total$/);
    }
    const series = name + (sample[2] ?? "");
    assert.ok(!samples.has(series), `duplicate series ${series}`);
    samples.set(series, Number(sample[3]));
  }
  return samples;
}

Deno.test("TaskQueue serves /metrics, and /healthz flips to 503 while draining", async () => {
  await using tmp = await tempDir();
  const sab = new SharedArrayBuffer(8);
  const cells = new Int32Array(sab);
  const metricsFile = `${tmp.path}/final.json`;
  const queue = await TaskQueue.open({
    handlers,
    workers: 1,
    metricsPort: 0,
    metricsFile,
  });
  const base = `http://127.0.0.1:${queue.metricsPort}`;
  try {
    const ok = await queue.submit({ type: "echo", payload: 1 });
    await ok.result;
    const held = await queue.submit({ type: "hold", payload: { sab } });
    const healthy = await fetch(`${base}/healthz`);
    assert.equal(healthy.status, 200);
    await healthy.body?.cancel();

    const response = await fetch(`${base}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /text\/plain/);
    const samples = parsePrometheus(await response.text());
    assert.equal(samples.get("sluice_succeeded_total"), 1);
    assert.equal(samples.get("sluice_enqueued_total"), 2);
    assert.equal(samples.get("sluice_workers_alive"), 1);

    while (Atomics.load(cells, 0) === 0) {
      const wait = Atomics.waitAsync(cells, 0, 0, 10_000);
      if (wait.async) await wait.value;
    }
    const closing = queue.close({ deadline: 10_000 });
    const draining = await fetch(`${base}/healthz`);
    assert.equal(draining.status, 503);
    assert.equal((await draining.text()).trim(), "draining");
    Atomics.store(cells, 1, 1);
    Atomics.notify(cells, 1);
    assert.equal((await closing).drained, true);
    await held.result;
  } finally {
    await queue.close();
  }
  const final = JSON.parse(await Deno.readTextFile(metricsFile));
  assert.equal(final.counters.succeeded, 2);
  // Taken before the workers stop, so their busy time is in it.
  assert.equal(final.gauges.workers_alive, 1);
  assert.ok(final.utilization.overall > 0, "utilization was recorded");
});
