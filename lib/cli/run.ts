/**
 * `cli.ts run`: processes a task file in this process and prints what
 * happened, counted the way `status` and the metrics count.
 *
 * @module
 */
import { QueueFullError } from "../channel.ts";
import {
  type Command,
  defineCommand,
  helpText,
  UsageError,
} from "./command.ts";
import { openQueue } from "./open.ts";
import { err, out } from "./output.ts";
import { Progress } from "./progress.ts";
import { readTaskFile } from "./task_file.ts";
import {
  HANDLERS_FLAG,
  HANDLERS_HELP,
  WORKER_KEYS,
  workerOptions,
} from "./worker_options.ts";
import {
  acceptBareAllowFlags,
  WORKER_PERMISSION_FLAGS,
  WORKER_PERMISSION_HELP,
} from "./worker_permissions.ts";

const USAGE = helpText({
  usage: ["cli.ts run --tasks FILE [options]"],
  about: `
Processes a task file in this process, waits for every task to finish and
prints a summary. The file is a JSON array of { "image_key", "size" } objects
(type "image.variant") or of { "type", "payload", "idempotencyKey"?,
"maxAttempts"? } objects.

Each item is a submission. A submission is rejected when the channel is full
(--overflow reject), deduplicated when an earlier task has its idempotency
key (it gets that task's result and is not another task), or accepted as a
new task. "succeeded" and "dead" count tasks, as "cli.ts status" does; the
rate is over the tasks that ran.

Exit code 1 when a task was dead-lettered or an item could not be
submitted (after the summary); rejections do not change it (--overflow
reject asks for them).`,
  options: [
    ["--tasks FILE", "The task file (required)"],
    HANDLERS_HELP,
    ...WORKER_PERMISSION_HELP,
    ["--format FORMAT", "text or json (default text)"],
    ["--json", "Short for --format json"],
  ],
  config: WORKER_KEYS,
});

/** What `run --format json` prints. */
export interface RunSummary {
  /** Items in the task file. */
  submissions: number;
  /** Submissions taken: new tasks plus deduplicated. */
  accepted: number;
  /** Submissions refused because the channel was full. */
  rejected: number;
  /** Items the queue refused as invalid. */
  invalid: number;
  /** Submissions answered by an existing task with the same key. */
  deduplicated: number;
  /** New tasks accepted. */
  tasks: number;
  /** Tasks whose handler returned. */
  succeeded: number;
  /** Tasks dead-lettered. */
  dead: number;
  /** Attempts retried after a transient failure. */
  retried: number;
  /** Wall time from the first submission to the last result, s. */
  seconds: number;
  /** Tasks that ran to an end (succeeded or dead) per second. */
  tasks_per_s: number;
  /** 95th percentile of enqueue → settle, ms. */
  p95_ms: number;
}

/** `cli.ts run`. */
export const run: Command = acceptBareAllowFlags(defineCommand({
  usage: USAGE,
  flags: {
    tasks: { type: "string" },
    ...HANDLERS_FLAG,
    ...WORKER_PERMISSION_FLAGS,
  },
  config: WORKER_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
}, async (parsed) => {
  const file = parsed.string("tasks");
  if (file === undefined) throw new UsageError("run needs --tasks FILE");
  const options = workerOptions(parsed);
  const tasks = await readTaskFile(file);
  const queue = await openQueue(parsed.config, options);
  const progress = new Progress({
    label: "run",
    total: tasks.length,
    detail: () => {
      const { gauges } = queue.metrics.snapshot();
      return `running ${gauges.running}  claimed ${gauges.claimed}`;
    },
  });
  // A run is the only process for its tasks: one of a type its module
  // does not export would wait forever, so it is refused as invalid.
  const types = new Set(queue.taskTypes);
  let finished = 0;
  let invalid = 0;
  let firstInvalid = "";
  const start = performance.now();
  let end = start;
  try {
    await Promise.all(tasks.map(async (task, index) => {
      try {
        if (!types.has(task.type)) {
          throw new TypeError(
            `unknown task type ${JSON.stringify(task.type)} (known types: ${
              [...types].join(", ") || "none"
            })`,
          );
        }
        const handle = await queue.submit(task);
        // Dead-lettered tasks are counted by the metrics.
        await handle.result.catch(() => {});
      } catch (error) {
        if (!(error instanceof QueueFullError)) {
          if (invalid++ === 0) {
            firstInvalid = `tasks[${index}]: ${(error as Error).message}`;
          }
        }
      }
      progress.update(++finished);
    }));
    end = performance.now();
  } finally {
    progress.clear();
    await queue.close();
  }
  const seconds = (end - start) / 1000;
  const { counters, latency } = queue.metrics.snapshot();
  const ran = counters.succeeded + counters.dead_lettered;
  const summary: RunSummary = {
    submissions: tasks.length,
    accepted: counters.enqueued + counters.deduplicated,
    rejected: counters.rejected,
    invalid,
    deduplicated: counters.deduplicated,
    tasks: counters.enqueued,
    succeeded: counters.succeeded,
    dead: counters.dead_lettered,
    retried: counters.retried,
    seconds: Number(seconds.toFixed(3)),
    tasks_per_s: Number((ran / seconds).toFixed(1)),
    p95_ms: Number(latency.end_to_end.p95_ms.toFixed(1)),
  };
  if (parsed.format === "json") {
    out(JSON.stringify(summary) + "\n");
  } else {
    const s = summary;
    out(
      `${s.submissions} submissions: ${s.accepted} accepted (${s.tasks} tasks, ${s.deduplicated} deduplicated), ${s.rejected} rejected${
        s.invalid > 0 ? `, ${s.invalid} invalid` : ""
      }\n` +
        `${ran} tasks ran in ${s.seconds} s (${s.tasks_per_s} tasks/s, p95 ${s.p95_ms} ms)\n` +
        `succeeded ${s.succeeded}  dead ${s.dead}  retried ${s.retried}\n`,
    );
  }
  if (invalid > 0) err(`error: Cannot submit ${firstInvalid}\n`);
  return summary.dead > 0 || invalid > 0 ? 1 : 0;
}));
