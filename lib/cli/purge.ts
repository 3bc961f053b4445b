/**
 * `cli.ts purge`: deletes finished tasks (succeeded, dead-lettered or
 * both) by age and count, in bounded batches, or counts what it would
 * delete.
 *
 * @module
 */
import { delay } from "../_delay.ts";
import type {
  PruneResult,
  RetentionPolicy,
  RetentionRule,
} from "../store/store.ts";
import { checkQueueName } from "../store/_shared.ts";
import {
  checkArg,
  type Command,
  defineCommand,
  helpText,
  UsageError,
} from "./command.ts";
import { parseChoice, parseDuration } from "./config.ts";
import { READ_KEYS, withStore } from "./open.ts";
import { out } from "./output.ts";

/** Tasks deleted per transaction: each one is short, and writers go between. */
const BATCH = 500;

/**
 * How long to keep asking while another process prunes the same store
 * (PostgreSQL lets one prune at a time, and a running `start` prunes every
 * second in small batches).
 */
const BUSY_DEADLINE_MS = 30_000;

const STATUSES = ["succeeded", "dead", "all"] as const;

const USAGE = helpText({
  usage: [
    "cli.ts purge --db PATH|URL (--older-than DURATION | --keep N) [options]",
  ],
  about: `
Deletes finished tasks: succeeded, dead-lettered (--status), or both, of
every queue or of one (--queue). A task goes when it finished longer than
--older-than ago, or is not among the newest --keep of its status in its
queue (given both, whichever keeps fewer). Queued, running and failed tasks
are never touched. At least one of --older-than and --keep is required.

Deletes in transactions of ${BATCH} tasks, oldest first, so workers on the same
database keep going between them; prints how many of each status went.
--dry-run counts them instead and changes nothing (it only reads the
database). The totals "status" shows (ever succeeded, ever dead) stay.`,
  options: [
    ["--status STATUS", "succeeded, dead or all (default all)"],
    [
      "--older-than DURATION",
      "Delete tasks finished longer ago (30s, 15m, 24h, 7d)",
    ],
    [
      "--keep N",
      "Keep the N most recently finished of each status\nin each queue",
    ],
    ["--queue QUEUE", "Only this queue's tasks (default: every queue)"],
    ["--dry-run", "Count what would be deleted; delete nothing"],
    [
      "--format FORMAT",
      'text or json (default text); json prints\n{"dry_run","succeeded","dead"}',
    ],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

/** What `purge --format json` prints. */
export interface PurgeSummary {
  /** Whether nothing was deleted, only counted. */
  dry_run: boolean;
  /** Succeeded tasks deleted (or that would be). */
  succeeded: number;
  /** Dead-lettered tasks deleted (or that would be). */
  dead: number;
}

/** `cli.ts purge`. */
export const purge: Command = defineCommand({
  usage: USAGE,
  flags: {
    status: { type: "string" },
    "older-than": { type: "string" },
    keep: { type: "integer", min: 0, max: Number.MAX_SAFE_INTEGER },
    "dry-run": { type: "boolean" },
    queue: { type: "string" },
  },
  config: READ_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
}, async (parsed) => {
  const status = parseChoice(
    "--status",
    parsed.string("status") ?? "all",
    STATUSES,
  );
  const olderThan = parsed.string("older-than");
  const keep = parsed.integer("keep");
  if (olderThan === undefined && keep === undefined) {
    throw new UsageError("purge needs --older-than DURATION or --keep N");
  }
  const rule: RetentionRule = {
    ...(olderThan !== undefined &&
      { maxAgeMs: parseDuration("--older-than", olderThan) }),
    ...(keep !== undefined && { maxCount: keep }),
  };
  const rules: RetentionPolicy = status === "all"
    ? { succeeded: rule, dead: rule }
    : { [status]: rule };
  const queue = parsed.string("queue");
  if (queue !== undefined) checkArg(() => checkQueueName(queue, "--queue"));
  // One queue: its own rules, and none (keep all) for the others.
  const policy: RetentionPolicy = queue === undefined
    ? rules
    : { queues: Object.fromEntries([[queue, rules]]) };
  const dryRun = parsed.boolean("dry-run");
  // One instant for the whole purge: the batches converge on the same set,
  // the one a dry run at that instant counts.
  const now = Date.now();
  const result = dryRun
    ? await withStore(
      parsed.config,
      "read",
      (store) => store.prunable(policy, now),
    )
    : await withStore(parsed.config, "write", async (store) => {
      const total = { succeeded: 0, dead: 0 };
      let busySince: number | undefined;
      let backoffMs = 10;
      for (;;) {
        const batch: PruneResult = await store.prune(policy, now, BATCH);
        total.succeeded += batch.succeeded;
        total.dead += batch.dead;
        if (!batch.skipped) {
          busySince = undefined;
          backoffMs = 10;
          if (batch.succeeded + batch.dead < BATCH) return total;
          continue;
        }
        // Another process holds the prune lock: wait for it, not forever.
        busySince ??= performance.now();
        if (performance.now() - busySince > BUSY_DEADLINE_MS) {
          throw new Error(
            `Cannot purge: another process kept pruning the store for ${BUSY_DEADLINE_MS} ms; deleted ${total.succeeded} succeeded and ${total.dead} dead so far`,
          );
        }
        await delay(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 1000);
      }
    });
  const summary: PurgeSummary = {
    dry_run: dryRun,
    succeeded: result.succeeded,
    dead: result.dead,
  };
  out(
    parsed.format === "json"
      ? JSON.stringify(summary) + "\n"
      : `${
        dryRun ? "would delete" : "deleted"
      } ${summary.succeeded} succeeded, ${summary.dead} dead\n`,
  );
  return 0;
});
