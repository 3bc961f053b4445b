import assert from "node:assert/strict";
import { tempDir, waitFor } from "../_helpers.ts";
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import {
  type Db,
  dbArgs,
  HANDLERS,
  ok,
  startWorker,
  type Status,
  status,
  submitTasks,
  untilStatus,
} from "./_cli.ts";

Deno.test("cli.ts status --json from another process shows a run in progress", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/busy.db`;
  await submitTasks(db, "sleep", { duration_ms: 50 }, 40);
  await using worker = startWorker(db, [
    "--workers",
    "1",
    "--concurrency",
    "1",
  ]);
  const seen = await untilStatus(
    db,
    (s) => s.counts.running >= 1 && s.counts.queued >= 1,
    "running and queued tasks",
  );
  assert.equal(seen.total, 40);
  assert.ok(seen.counts.running <= 1, "one worker runs one task at a time");
  assert.ok(seen.depth >= 1);
  assert.ok(seen.oldest_queued_age_ms !== null);
  await untilStatus(db, (s) => s.counts.succeeded === 40, "40 succeeded");
  const done = await status(db);
  assert.equal(done.depth, 0);
  assert.deepEqual(done.totals, { succeeded: 40, dead: 0 });
  assert.equal((await worker.stop("SIGINT")).code, 0);
});

/** The value of one Prometheus series. */
function series(text: string, name: string): number {
  const match = text.match(new RegExp(`^${name} (\\S+)$`, "m"));
  assert.ok(match, `${name} in /metrics`);
  return Number(match[1]);
}

/**
 * Ten gated tasks on `db`, one `start` process with 2 workers x 1: two
 * handlers run, the tasks claimed ahead wait. status, monitor and the
 * worker's gauges must give the same running and claimed counts.
 */
async function agree(db: Db, gate: string): Promise<void> {
  await submitTasks(db, "gate", { file: gate }, 10);
  await using worker = startWorker(db, [
    "--workers",
    "2",
    "--concurrency",
    "1",
    "--handlers",
    HANDLERS,
    "--metrics-port",
    "0",
    "--log-level",
    "info",
  ]);
  await worker.until(
    (o) => /"event":"worker_started".*"metrics_port":\d+/.test(o.stderr),
    "worker_started with its metrics port",
  );
  const port = Number(worker.stderr.match(/"metrics_port":(\d+)/)![1]);
  const metrics = async (): Promise<{ running: number; claimed: number }> => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`))
      .text();
    return {
      running: series(text, "sluice_tasks_running"),
      claimed: series(text, "sluice_tasks_claimed"),
    };
  };
  let agreed: { status: Status; monitor: Status } | undefined;
  await waitFor(async () => {
    const s = await status(db);
    const m = await metrics();
    if (s.counts.running !== 2 || m.running !== 2) return false;
    if (s.counts.claimed !== m.claimed) return false;
    const frame = JSON.parse(
      await ok(["monitor", ...dbArgs(db), "--once", "--format", "json"]),
    ) as Status;
    if (JSON.stringify(frame.counts) !== JSON.stringify(s.counts)) {
      return false;
    }
    agreed = { status: s, monitor: frame };
    return true;
  }, { timeoutMs: 30_000, what: "status, monitor and metrics to agree" });
  const { counts } = agreed!.status;
  assert.equal(counts.running, 2, "running is at most workers x concurrency");
  assert.equal(
    counts.queued + counts.claimed + counts.running,
    10,
    "every task is queued, claimed or running",
  );
  assert.deepEqual(agreed!.monitor.counts, counts);

  await Deno.writeTextFile(gate, "");
  await untilStatus(db, (s) => s.counts.succeeded === 10, "10 succeeded");
  await waitFor(async () => {
    const m = await metrics();
    return m.running === 0 && m.claimed === 0;
  }, { timeoutMs: 10_000, what: "the gauges back at 0" });
  assert.equal((await worker.stop("SIGTERM")).code, 0);
}

Deno.test("cli.ts status, monitor and the worker's metrics agree on SQLite: running means handler started", async () => {
  await using dir = await tempDir();
  await agree(`${dir.path}/agree.db`, `${dir.path}/open`);
});

const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;

Deno.test({
  name:
    "cli.ts status, monitor and the worker's metrics agree on PostgreSQL: running means handler started",
  ignore: PG === undefined,
  async fn(): Promise<void> {
    await using dir = await tempDir();
    const schema = `sluice_agree_${
      crypto.randomUUID().replaceAll("-", "").slice(0, 12)
    }`;
    try {
      await agree(["--db", PG!, "--pg-schema", schema], `${dir.path}/open`);
    } finally {
      await PostgresTaskStore.drop(PG!, { schema });
    }
  },
});

Deno.test("cli.ts status lists running tasks with the progress their handlers reported", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/progress.db`;
  let id: string;
  {
    await using producer = await TaskQueue.open({
      db,
      consume: false,
      logger: { level: "error" },
    });
    // Reports {done: 2, of: 4} after two chunks, then hangs until killed.
    id = (await producer.submit({
      type: "chunked",
      payload: { chunks: 4, failAfter: 2, stop: "hang", dir: dir.path },
    })).id;
  }
  await using _worker = startWorker(db, [
    "--handlers",
    new URL("../fixtures/progress_handlers.ts", import.meta.url).href,
    "--workers",
    "1",
  ]);
  const seen = await untilStatus(
    db,
    (s) => (s.running[0]?.progress as { done?: number } | null)?.done === 2,
    "the running task's progress",
  );
  assert.deepEqual(seen.running.map((t) => [t.id, t.type, t.progress]), [
    [id, "chunked", { done: 2, of: 4 }],
  ]);
  assert.equal(seen.running[0]?.attempts, 1);
  const text = await ok(["status", "--db", db]);
  assert.match(text, /Running tasks/);
  assert.ok(text.includes(`${id}  chunked  progress {"done":2,"of":4}`));
  const none = JSON.parse(
    await ok(["status", "--db", db, "--running", "0", "--json"]),
  ) as Status;
  assert.deepEqual(none.running, []);
});
