/**
 * `cli.ts submit`: enqueues tasks into a database that `start` processes
 * work on; this process runs none.
 *
 * @module
 */
import { mulberry32 } from "../_rng.ts";
import type { TaskInput } from "../queue/types.ts";
import {
  type Command,
  defineCommand,
  helpText,
  UsageError,
} from "./command.ts";
import { type ConfigKey, parseInteger } from "./config.ts";
import { openQueue } from "./open.ts";
import { out } from "./output.ts";
import { Progress } from "./progress.ts";
import { readTaskFile } from "./task_file.ts";
import { cliLogger } from "./worker_options.ts";

const KEYS: readonly ConfigKey[] = [
  "db",
  "pgSchema",
  "maxAttempts",
  "logLevel",
  "logFormat",
  "sqliteDriver",
  "synchronous",
];

const USAGE = helpText({
  usage: [
    "cli.ts submit --db PATH|URL --file FILE [options]",
    "cli.ts submit --db PATH|URL --type T [--payload JSON] [--count N] [options]",
    "cli.ts submit --db PATH|URL --random --count N [--seed S] [options]",
  ],
  about: `
Enqueues tasks into a database that a "start" process works on; this process
runs no tasks. Prints one task id per line (a deduplicated submission prints
the id of the task that answers it), or with --format json the counts and
ids. A task file is committed in one transaction: all of it or, when one
task is bad, none of it.`,
  options: [
    ["--file FILE", 'Task file (as for "run")'],
    [
      "--type T",
      "Task type (a handler name: noop, compute, sleep, fail,\nhttp.simulated, image.variant)",
    ],
    ["--payload JSON", "Payload for --type (default null)"],
    ["--count N", "Copies with --type, tasks with --random (default 1)"],
    ["--random", "Random noop/compute/sleep tasks"],
    ["--seed S", "Seed for --random (default 1)"],
    ["--idempotency-key K", "Idempotency key (with --type and --count 1)"],
    [
      "--format FORMAT",
      'text or json (default text); json prints\n{"submitted","deduplicated","ids"}',
    ],
    ["--json", "Short for --format json"],
  ],
  config: KEYS,
});

function randomTasks(count: number, seed: number): TaskInput[] {
  const random = mulberry32(seed);
  const tasks: TaskInput[] = [];
  for (let i = 0; i < count; i++) {
    const pick = random();
    if (pick < 0.4) {
      tasks.push({ type: "noop", payload: { n: i } });
    } else if (pick < 0.7) {
      tasks.push({
        type: "compute",
        payload: {
          operation: "double",
          value: Math.floor(random() * 1_000_000),
        },
      });
    } else {
      tasks.push({
        type: "sleep",
        payload: { duration_ms: 1 + Math.floor(random() * 20) },
      });
    }
  }
  return tasks;
}

/** `cli.ts submit`. */
export const submit: Command = defineCommand({
  usage: USAGE,
  flags: {
    file: { type: "string" },
    type: { type: "string" },
    payload: { type: "string" },
    random: { type: "boolean" },
    count: { type: "integer", min: 1, max: 10_000_000 },
    seed: { type: "integer", min: 0, max: 2 ** 32 - 1 },
    "idempotency-key": { type: "string" },
  },
  config: KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
  aliases: {
    "max-retries": {
      for: "max-attempts",
      use: "--max-attempts N+1",
      convert: (text) =>
        String(parseInteger("--max-retries", text, 0, 999) + 1),
    },
  },
}, async (parsed) => {
  const file = parsed.string("file");
  const type = parsed.string("type");
  const random = parsed.boolean("random");
  const sources = [file !== undefined, type !== undefined, random]
    .filter(Boolean).length;
  if (sources !== 1) {
    throw new UsageError(
      "submit needs exactly one of --file, --type or --random",
    );
  }
  const payloadText = parsed.string("payload");
  if (payloadText !== undefined && type === undefined) {
    throw new UsageError("--payload needs --type");
  }
  const count = parsed.integer("count") ?? 1;
  const key = parsed.string("idempotency-key");
  if (key !== undefined && (type === undefined || count !== 1)) {
    throw new UsageError("--idempotency-key needs --type and --count 1");
  }
  if (key === "") throw new UsageError("--idempotency-key must not be empty");
  let payload: unknown = null;
  if (payloadText !== undefined) {
    try {
      payload = JSON.parse(payloadText);
    } catch (error) {
      throw new UsageError(
        `--payload must be JSON: ${(error as Error).message}`,
      );
    }
  }
  const cfg = parsed.config;

  let tasks: TaskInput[];
  if (file !== undefined) {
    tasks = await readTaskFile(file);
  } else if (type !== undefined) {
    tasks = Array.from({ length: count }, () => ({
      type,
      payload,
      ...(key !== undefined && { idempotencyKey: key }),
    }));
  } else {
    tasks = randomTasks(count, parsed.integer("seed") ?? 1);
  }
  for (const task of tasks) task.maxAttempts ??= cfg.maxAttempts;

  const queue = await openQueue(cfg, {
    consume: false,
    // This process never reads the handles' results, and polling for them
    // would read every unfinished task in turn, competing with the inserts.
    // The longest interval a timer takes turns it off.
    pollIntervalMs: 2 ** 31 - 1,
    logger: cliLogger(cfg),
  });
  const progress = new Progress({ label: "submit", total: tasks.length });
  const ids: string[] = [];
  let deduplicated = 0;
  try {
    // A task file is checked whole, then committed in one transaction: a
    // bad task at any index leaves nothing behind, and is named by its
    // index in the file. Generated tasks go in slices, so each group
    // commit holds many inserts while the memory held by pending
    // submissions stays bounded.
    const slice = file !== undefined ? tasks.length : 512;
    for (let i = 0; i < tasks.length; i += slice) {
      const handles = await queue.submitMany(tasks.slice(i, i + slice), {
        atomic: file !== undefined,
      });
      for (const handle of handles) {
        ids.push(handle.id);
        if (handle.deduplicated) deduplicated++;
      }
      progress.update(ids.length);
    }
  } finally {
    progress.clear();
    await queue.close({ deadline: 0 });
  }
  if (parsed.format === "json") {
    out(
      JSON.stringify({
        submitted: ids.length - deduplicated,
        deduplicated,
        ids,
      }) + "\n",
    );
  } else {
    out(ids.map((id) => id + "\n").join(""));
  }
  return 0;
});
