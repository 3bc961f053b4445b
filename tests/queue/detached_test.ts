/**
 * `submitMany(tasks, { detached: true })`: a producer that only enqueues
 * holds nothing per task, and says so when a result is awaited, while the
 * tasks run elsewhere exactly as tracked ones do.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { QueueClosedError } from "../../lib/queue/types.ts";
import { tempDir, waitFor } from "../_helpers.ts";
import { BACKENDS } from "./_support.ts";

const handlers = new URL("../fixtures/queue_handlers.ts", import.meta.url);

for (const backend of BACKENDS) {
  Deno.test(`TaskQueue.submitMany() with detached forgets committed tasks that another queue runs on ${backend.name}`, async () => {
    await using tmp = await tempDir();
    await using db = backend.create(tmp.path);
    const producerStore = await db.open();
    const consumerStore = await db.open();
    try {
      const producer = await TaskQueue.open({
        db: producerStore,
        consume: false,
        logger: { level: "silent" },
      });
      const tasks = Array.from({ length: 50 }, (_, i) => ({
        type: "echo",
        payload: `d${i}`,
      }));
      const detached = await producer.submitMany(tasks, { detached: true });
      const tracked = await producer.submit({ type: "echo", payload: "t" });
      assert.equal(new Set(detached.map((h) => h.id)).size, 50);
      for (const handle of detached) {
        assert.equal(handle.deduplicated, false);
        await assert.rejects(handle.result, /submitted detached/);
      }
      // Nothing runs yet: closing rejects only the tracked handle, the
      // one task this producer still holds.
      const trackedResult = tracked.result.catch((error) => error);
      await producer.close({ deadline: 0 });
      assert.ok((await trackedResult) instanceof QueueClosedError);

      await using consumer = await TaskQueue.open({
        db: consumerStore,
        handlers,
        workers: 1,
        logger: { level: "silent" },
      });
      for (const [i, handle] of detached.entries()) {
        await waitFor(
          async () =>
            (await consumer.getTask(handle.id))?.status === "succeeded",
          { what: `task ${i} to succeed` },
        );
        assert.equal((await consumer.getTask(handle.id))?.result, `d${i}`);
      }
    } finally {
      await producerStore.close();
      await consumerStore.close();
    }
  });

  Deno.test(`TaskQueue.submitMany() with detached answers a duplicate of a stored task by its id on ${backend.name}`, async () => {
    await using tmp = await tempDir();
    await using db = backend.create(tmp.path);
    const store = await db.open();
    try {
      await using producer = await TaskQueue.open({
        db: store,
        consume: false,
        logger: { level: "silent" },
      });
      const task = { type: "echo", payload: "k", idempotencyKey: "key-1" };
      const [first] = await producer.submitMany([task], { detached: true });
      const [again] = await producer.submitMany([task], { detached: true });
      assert.equal(again!.id, first!.id);
      assert.equal(again!.deduplicated, true);
      await assert.rejects(again!.result, /submitted detached/);
      assert.equal((await producer.getTask(first!.id))?.status, "queued");
    } finally {
      await store.close();
    }
  });
}
