import assert from "node:assert/strict";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { TaskFailedError } from "../../lib/queue/types.ts";
import { unstableWorkerOptions } from "../../lib/pool/worker_permissions.ts";
import { tempDir } from "../_helpers.ts";

const SANDBOXED = new URL("../fixtures/sandboxed.ts", import.meta.url);
/** Without `--unstable-worker-options` Deno would end the test process. */
const NARROWING = unstableWorkerOptions() === "enabled";

Deno.test("TaskQueue.open() refuses a bad permissions option before opening the database", async () => {
  await using dir = await tempDir();
  await assert.rejects(
    TaskQueue.open({
      db: `${dir.path}/tasks.db`,
      handlers: SANDBOXED,
      permissions: { net: "api.example.com" } as unknown as { net: string[] },
    }),
    (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(
        error.message,
        /^Cannot open queue: permissions\.net must be "inherit", a boolean or an array of non-empty strings, received "api\.example\.com"$/,
      );
      return true;
    },
  );
  const entries = await Array.fromAsync(Deno.readDir(dir.path));
  assert.deepEqual(entries, []);
});

Deno.test({
  name:
    "TaskQueue dead-letters a task whose handler its worker permissions refuse, after one attempt, and runs an allowed one",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    await using dir = await tempDir();
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response("hello"),
    );
    const host = `127.0.0.1:${server.addr.port}`;
    const url = `http://${host}/`;
    try {
      const db = `${dir.path}/tasks.db`;
      {
        await using queue = await TaskQueue.open({
          db,
          handlers: SANDBOXED,
          workers: 1,
          retry: { maxAttempts: 5, baseMs: 1 },
          permissions: { net: ["127.0.0.1:1"] },
          logger: { level: "silent" },
        });
        const handle = await queue.submit({
          type: "fetchText",
          payload: { url },
        });
        const error = await handle.result.then(
          () => assert.fail("the task succeeded"),
          (error: unknown) => error,
        );
        assert.ok(error instanceof TaskFailedError, String(error));
        assert.equal(error.attempts, 1);
        assert.equal(error.errorClass, "permanent");
        assert.match(
          error.message,
          new RegExp(
            `Requires net access to "${host}" \\(not granted by permissions\\.net\\)`,
          ),
        );
        const record = await queue.getTask(handle.id);
        assert.equal(record?.status, "dead");
        assert.equal(record?.attempts, 1);
        assert.match(record?.lastError ?? "", /^NotCapable: Cannot run task: /);
        const counters = queue.metrics.snapshot().counters;
        assert.equal(counters.retried, 0);
        assert.equal(counters.dead_lettered, 1);
      }
      await using queue = await TaskQueue.open({
        db,
        handlers: SANDBOXED,
        workers: 1,
        permissions: { net: [host] },
      });
      const handle = await queue.submit({
        type: "fetchText",
        payload: { url },
      });
      assert.equal(await handle.result, "hello");
    } finally {
      await server.shutdown();
    }
  },
});
