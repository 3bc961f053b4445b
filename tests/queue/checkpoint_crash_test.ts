/**
 * A chunked job checkpoints after each chunk in a `cli.ts start` process
 * that is killed with SIGKILL halfway; a second process recovers the
 * task's lease and resumes it from the last checkpoint, so no chunk runs
 * twice.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import { tempDir, waitFor } from "../_helpers.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const HANDLERS = new URL("../fixtures/progress_handlers.ts", import.meta.url)
  .href;

function start(db: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CLI,
      "start",
      "--db",
      db,
      "--handlers",
      HANDLERS,
      "--workers",
      "1",
      "--lease-ms",
      "1000",
      "--poll-interval-ms",
      "20",
      "--log-level",
      "error",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("cli.ts start killed with SIGKILL halfway through a chunked task lets the next process resume it from its checkpoint", async () => {
  await using tmp = await tempDir();
  const db = `${tmp.path}/tasks.db`;
  let id: string;
  {
    await using producer = await TaskQueue.open({
      db,
      consume: false,
      retry: { maxAttempts: 3 },
      logger: { level: "error" },
    });
    // The first attempt checkpoints chunks 0-2, writes `halfway`, and
    // hangs until it is killed.
    id = (await producer.submit({
      type: "chunked",
      payload: { chunks: 6, failAfter: 3, stop: "hang", dir: tmp.path },
    })).id;
  }
  const first = start(db);
  try {
    await waitFor(() => exists(`${tmp.path}/halfway`), {
      timeoutMs: 30_000,
      what: "the first attempt to reach chunk 3",
    });
  } finally {
    first.kill("SIGKILL");
    await first.status;
  }
  const store = SqliteTaskStore.open(db, { readonly: true });
  const second = start(db);
  let exited = false;
  try {
    const killed = await store.get(id);
    assert.equal(killed?.status, "running");
    assert.deepEqual(
      killed?.checkpoint,
      { next: 3, sum: 6 },
      "committed before the handler went on",
    );
    assert.deepEqual(killed?.progress, { done: 3, of: 6 });
    await waitFor(async () => (await store.get(id))?.status === "succeeded", {
      timeoutMs: 30_000,
      what: "the second process to finish the task",
    });
    second.kill("SIGTERM");
    assert.equal((await second.status).code, 0);
    exited = true;
    const done = await store.get(id);
    assert.deepEqual(done?.result, { resumedFrom: 3, sum: 21, attempt: 2 });
    const chunks = (await Deno.readTextFile(`${tmp.path}/chunks.log`))
      .trim().split("\n");
    assert.deepEqual(chunks, ["0", "1", "2", "3", "4", "5"], "no chunk twice");
  } finally {
    if (!exited) {
      second.kill("SIGKILL");
      await second.status;
    }
    await store.close();
  }
});
