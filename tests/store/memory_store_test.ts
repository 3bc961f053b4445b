import assert from "node:assert/strict";
import { MemoryTaskStore } from "../../lib/store/memory_store.ts";
import type { CommitBatch } from "../../lib/store/store.ts";
import { storeConformance } from "./conformance.ts";

storeConformance("memory", () => new MemoryTaskStore(), { values: "clone" });

function batch(fields: Partial<CommitBatch>): CommitBatch {
  return {
    settles: [],
    inserts: [],
    claimDue: 0,
    leaseMs: 1_000,
    now: 0,
    ...fields,
  };
}

Deno.test("MemoryTaskStore.commit() keeps payloads by reference when they are not JSON", async () => {
  await using store = new MemoryTaskStore();
  const payload = { big: 1n, when: new Date(0), bytes: new Uint8Array([1]) };
  const { inserted } = await store.commit(batch({
    inserts: [{
      id: "a",
      type: "t",
      idempotencyKey: null,
      payload,
      maxAttempts: 1,
      runAt: 0,
    }],
  }));
  assert.equal(inserted[0]?.record.payload, payload);
  assert.equal((await store.get("a"))?.payload, payload);
  assert.equal(store.kind, "memory");
  assert.equal(store.durable, false);
});

Deno.test("MemoryTaskStore.commit() claims in runAt order when 20k tasks arrive out of order", async () => {
  await using store = new MemoryTaskStore();
  const count = 20_000;
  const inserts = Array.from({ length: count }, (_, i) => ({
    id: `t${i}`,
    type: "t",
    idempotencyKey: null,
    payload: i,
    maxAttempts: 1,
    // Mostly ascending, with every tenth task delayed or early.
    runAt: i % 10 === 0 ? (i * 7919) % count : i,
  }));
  await store.commit(batch({ inserts }));
  let last = -1;
  let claimedTotal = 0;
  for (;;) {
    const { claimed } = await store.commit(
      batch({ claimDue: 1_000, now: count }),
    );
    if (claimed.length === 0) break;
    for (const record of claimed) {
      assert.ok(record.runAt >= last, `${record.runAt} after ${last}`);
      last = record.runAt;
    }
    claimedTotal += claimed.length;
  }
  assert.equal(claimedTotal, count);
});

Deno.test("MemoryTaskStore.staleSettles() counts refused settles when versions are stale", async () => {
  await using store = new MemoryTaskStore();
  const { claimed } = await store.commit(batch({
    inserts: [{
      id: "a",
      type: "t",
      idempotencyKey: null,
      payload: null,
      maxAttempts: 2,
      runAt: 0,
    }],
    claimDue: 1,
  }));
  const stale = {
    id: "a",
    version: claimed[0]!.version - 1,
    outcome: { kind: "succeeded" as const, result: 1, outputKey: null },
  };
  const { settled } = await store.commit(batch({ settles: [stale] }));
  assert.deepEqual(settled, [false]);
  assert.equal(await store.staleSettles(), 1);
});

Deno.test("MemoryTaskStore keeps its internal sizes bounded by the tasks it holds when 200,000 tasks are inserted, run and pruned", async () => {
  await using store = new MemoryTaskStore();
  const TASKS = 200_000;
  const BATCH = 1_000;
  const policy = {
    succeeded: { maxCount: 500, maxAgeMs: 50 },
    dead: { maxCount: 100 },
  };
  let now = 0;
  let previous: { id: string; version: number }[] = [];
  let peak = 0;
  for (let round = 0; round * BATCH < TASKS; round++) {
    now += 10;
    // A keyed insert per task (half with a key window, half keeping the
    // key while retained), claimed by the same commit; the previous
    // round's tasks settle: most succeed, some retry later (out of runAt
    // order, so through the heap), some die.
    const inserts = Array.from({ length: BATCH }, (_, i) => {
      const n = round * BATCH + i;
      return {
        id: `t${n}`,
        type: "t",
        idempotencyKey: `k${n}`,
        payload: n,
        maxAttempts: 2,
        runAt: now - (n % 7),
        dedupeUntil: n % 2 === 0 ? now + 100 : null,
      };
    });
    const { claimed } = await store.commit(batch({
      now,
      settles: previous.map(({ id, version }, i) => ({
        id,
        version,
        charge: true,
        outcome: i % 10 === 0
          ? {
            kind: "retry" as const,
            runAt: now + 30 - (i % 13),
            error: "Cannot run: later",
            errorClass: "transient" as const,
          }
          : i % 10 === 1
          ? {
            kind: "dead" as const,
            error: "Cannot run: bad",
            errorClass: "permanent" as const,
          }
          : { kind: "succeeded" as const, result: i, outputKey: null },
      })),
      inserts,
      claimDue: 2 * BATCH,
    }));
    previous = claimed.map(({ id, version }) => ({ id, version }));
    if (round % 5 === 4) await store.requeue("all", now);
    let pruned;
    do {
      pruned = await store.prune(policy, now, 2_000);
    } while (pruned.succeeded + pruned.dead > 0);
    const sizes = store.internalSizes();
    const held = sizes["tasks"]!;
    peak = Math.max(peak, held);
    const { counts } = await store.status(now);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    assert.equal(held, total, `round ${round}`);
    assert.ok(sizes["keys"]! <= held, `keys ${JSON.stringify(sizes)}`);
    assert.equal(sizes["running"], counts.running);
    // Each index holds its live entries plus at most the dead ones the
    // compaction slack allows.
    const live = {
      ready: counts.queued + counts.failed,
      succeeded: counts.succeeded,
      dead: counts.dead,
    };
    for (const [name, n] of Object.entries(live)) {
      assert.ok(
        sizes[name]! <= 2 * n + 1024 + BATCH * 2,
        `${name}: ${sizes[name]} entries for ${n} live, round ${round}`,
      );
    }
  }
  // Retained: at most 500 succeeded and 100 dead, plus what is in flight.
  const { counts, totals } = await store.status(now);
  assert.ok(counts.succeeded <= 500);
  assert.ok(counts.dead <= 100);
  assert.ok(peak < 10 * BATCH, `peak ${peak} tasks held`);
  assert.ok(totals.succeeded > 150_000, `totals ${JSON.stringify(totals)}`);
  // Every key of a pruned task is free again.
  const { inserted } = await store.commit(batch({
    now: now + 1,
    inserts: [{
      id: "again",
      type: "t",
      idempotencyKey: "k0",
      payload: null,
      maxAttempts: 1,
      runAt: 0,
    }],
  }));
  assert.equal(inserted[0]?.inserted, true);
});
