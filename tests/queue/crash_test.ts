/**
 * `cli.ts start` killed with SIGKILL again and again while 3,000 short
 * tasks drain from one SQLite file: no accepted task is lost, and every
 * dead-lettered task had a handler start (maxAttempts is 1, so a task that
 * was running at a kill is dead-lettered by the recovery of its lease; a
 * task that never started is not charged and runs later). Duplicate runs
 * (a kill between a handler's start and the write of its charge) are
 * counted and reported.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { mulberry32 } from "../../lib/_rng.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import { tempDir, waitFor } from "../_helpers.ts";
import { lines, tally } from "./_support.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const HANDLERS = new URL("../fixtures/queue_handlers.ts", import.meta.url)
  .href;
const TASKS = 3000;
const KILLS = 10;

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
      "2",
      "--concurrency",
      "4",
      "--max-attempts",
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
    stderr: "piped",
  }).spawn();
}

Deno.test("cli.ts start killed with SIGKILL 10 times while 3,000 tasks drain loses none and dead-letters only tasks that ran", async () => {
  await using tmp = await tempDir();
  const db = `${tmp.path}/tasks.db`;
  const random = mulberry32(7);
  {
    // maxAttempts 1 is stored with each task: a task charged by a start
    // that a kill interrupted is dead-lettered, never run again.
    await using producer = await TaskQueue.open({
      db,
      consume: false,
      retry: { maxAttempts: 1 },
      logger: { level: "error" },
    });
    await producer.submitMany(
      Array.from({ length: TASKS }, (_, i) => ({
        type: "tracked",
        payload: {
          dir: tmp.path,
          key: `k${i}`,
          delayMs: 2 + Math.floor(random() * 19),
        },
      })),
      { atomic: true },
    );
  }
  for (let kill = 0; kill < KILLS; kill++) {
    const child = start(db);
    const before = (await lines(`${tmp.path}/ends.log`)).length;
    // Each round kills a process in the middle of its work: once it has
    // finished another slice of the tasks (or nothing is left to run).
    const target = Math.min(TASKS, before + 150 + Math.floor(random() * 150));
    try {
      await waitFor(
        async () => (await lines(`${tmp.path}/ends.log`)).length >= target,
        { timeoutMs: 60_000, what: `round ${kill} to finish ${target} tasks` },
      );
    } finally {
      child.kill("SIGKILL");
      await child.output();
    }
  }
  const last = start(db);
  let lastExited = false;
  const store = SqliteTaskStore.open(db, { readonly: true });
  try {
    // What the killed processes held comes back once its lease runs out.
    await waitFor(async () => {
      const { counts } = await store.status(Date.now());
      return counts.queued + counts.running + counts.failed === 0;
    }, { timeoutMs: 60_000, what: "the queue to drain" });
    last.kill("SIGTERM");
    const { code } = await last.output();
    lastExited = true;
    assert.equal(code, 0);

    const { counts } = await store.status(Date.now());
    assert.equal(counts.succeeded + counts.dead, TASKS, "no task was lost");
    const starts = tally(await lines(`${tmp.path}/starts.log`));
    const dead = await store.list({ status: "dead" });
    for (const row of dead) {
      const key = (row.payload as { key: string }).key;
      assert.ok(starts.has(key), `${key} is dead but never ran`);
      assert.equal(row.attempts, 1);
    }
    // At most every slot of every killed process held a started task.
    assert.ok(dead.length <= KILLS * 8, `${dead.length} dead`);
    for (let i = 0; i < TASKS; i++) {
      assert.ok(starts.has(`k${i}`), `k${i} never ran`);
    }
    const duplicates = [...starts.values()].filter((n) => n > 1).length;
    // The report the test exists to give, in its output.
    // deno-lint-ignore no-console
    console.log(
      `crash test: ${KILLS} kills, ${counts.succeeded} succeeded, ${dead.length} dead (all ran), ${duplicates} tasks ran twice`,
    );
  } finally {
    // A failed wait must not leave the last process running.
    if (!lastExited) {
      last.kill("SIGKILL");
      await last.output();
    }
    await store.close();
  }
});
