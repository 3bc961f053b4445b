/**
 * `cli.ts status`: one snapshot of a database, read without disturbing the
 * processes that work on it.
 *
 * @module
 */
import { type Command, defineCommand, helpText } from "./command.ts";
import { describeDb, READ_KEYS, withStore } from "./open.ts";
import { colors, out } from "./output.ts";
import { formatRunning, readRunning } from "./running_tasks.ts";
import { formatStatus, readStatus } from "./snapshot.ts";

const USAGE = helpText({
  usage: [
    "cli.ts status --db PATH|URL [--running N] [--format text|json]",
  ],
  about: `
Reads counts by state, depth (queued plus failed tasks due for a retry), the
age of the oldest due task, the dead-letter count, and how many tasks ever
succeeded and were ever dead-lettered (totals that pruning does not lower;
"cli.ts monitor" shows them as rates). The database is opened read-only:
nothing is created, and a running worker is not disturbed.

States: queued (waiting for a worker process), claimed (held by a worker
process, handler not started), running (handler started), succeeded,
failed (retry scheduled), dead (dead-lettered). "running" and "claimed"
mean what the metrics gauges sluice_tasks_running and sluice_tasks_claimed
of the worker processes mean.

Then the oldest running tasks (claimed or started) with the progress their
handlers last reported (ctx.progress), read through the running rows only;
in JSON, under "running" as {id, type, attempts, started_at, progress}.`,
  options: [
    ["--running N", "Running tasks to list, 0 for none (default 10)"],
    ["--format FORMAT", "text or json (default text)"],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

/** `cli.ts status`. */
export const status: Command = defineCommand({
  usage: USAGE,
  flags: {
    running: { type: "integer", min: 0, max: 1000 },
  },
  config: READ_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
}, async (parsed) => {
  const limit = parsed.integer("running") ?? 10;
  const [snapshot, running] = await withStore(
    parsed.config,
    "read",
    async (store) =>
      [
        await readStatus(store, describeDb(parsed.config)),
        await readRunning(store, limit),
      ] as const,
  );
  const paint = colors();
  out(
    parsed.format === "json"
      ? JSON.stringify({ ...snapshot, running }) + "\n"
      : [
        ...formatStatus(snapshot, paint),
        ...formatRunning(running, limit, paint),
      ]
        .join("\n") + "\n",
  );
  return 0;
});
