/**
 * `cli.ts status`: one snapshot of a database, read without disturbing the
 * processes that work on it.
 *
 * @module
 */
import { type Command, defineCommand, helpText } from "./command.ts";
import { describeDb, READ_KEYS, withStore } from "./open.ts";
import { colors, out } from "./output.ts";
import { formatStatus, readStatus } from "./snapshot.ts";

const USAGE = helpText({
  usage: ["cli.ts status --db PATH|URL [--format text|json]"],
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
of the worker processes mean.`,
  options: [
    ["--format FORMAT", "text or json (default text)"],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

/** `cli.ts status`. */
export const status: Command = defineCommand({
  usage: USAGE,
  config: READ_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
}, async (parsed) => {
  const snapshot = await withStore(
    parsed.config,
    "read",
    (store) => readStatus(store, describeDb(parsed.config)),
  );
  out(
    parsed.format === "json"
      ? JSON.stringify(snapshot) + "\n"
      : formatStatus(snapshot, colors()).join("\n") + "\n",
  );
  return 0;
});
