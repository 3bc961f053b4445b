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
