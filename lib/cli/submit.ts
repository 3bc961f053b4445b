/**
 * `cli.ts submit`: enqueues tasks into a database that `start` processes
 * work on; this process runs none.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { mulberry32 } from "../_rng.ts";
import { checkQueueName, MAX_PRIORITY } from "../store/_shared.ts";
import type { TaskQueue } from "../queue/task_queue.ts";
import type { SubmittedIds } from "../queue/submitted_ids.ts";
import type { TaskInput } from "../queue/types.ts";
import {
  checkArg,
  type Command,
  defineCommand,
  helpText,
  jsonFlag,
  UsageError,
} from "./command.ts";
import {
  type ConfigKey,
  parseDuration,
  parseInteger,
  parseIsoTime,
} from "./config.ts";
import { openQueue } from "./open.ts";
import { isTerminal, out, OutputClosedError } from "./output.ts";
import { Progress } from "./progress.ts";
import { streamTaskFile } from "./task_file.ts";
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
    "(each with [--delay DURATION | --run-at TIME] [--queue NAME]",
    " [--priority N])",
  ],
  about: `
Enqueues tasks into a database that a "start" process works on; this process
runs no tasks. Prints one task id per line (a deduplicated submission prints
the id of the task that answers it), or with --format json one object,
{"ids":[...],"submitted":N,"deduplicated":M}.

A task file is read a slice at a time and committed in one transaction: all
of it or, when one task is bad, none of it; its ids are printed once it has
committed. Tasks made with --type or --random are made and committed a
slice at a time, and each slice's ids are printed as soon as it has
committed. Either way memory stays bounded at any size; the JSON object is
written the same way, ids first. When a later slice fails, the ids printed
are those committed (JSON: the object ends with an "error" field), and the
exit code is 1.

--delay and --run-at set when every task submitted becomes due, except a
file task with a runAt of its own; a time in the past is due at once.
`,
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
      "--dedupe-for DURATION",
      "The key deduplicates only this long (30s, 15m, 24h,\n7d; with --idempotency-key); default: as long as\nthe task is kept",
    ],
    [
      "--delay DURATION",
      "Due this long after the command starts (30s, 15m,\n2h, 1d; 0 is now); not with --run-at",
    ],
    [
      "--run-at TIME",
      "Due at this time: ISO 8601 with a zone, Z or +hh:mm\n(2026-12-01T09:00:00Z); not with --delay",
    ],
    [
      "--queue NAME",
      'The named queue (default "default"), except a file\ntask with a queue of its own',
    ],
    [
      "--priority N",
      "Claim priority, an integer; higher runs first\n(default 0), except a file task with its own",
    ],
    [
      "--format FORMAT",
      'text or json (default text); json prints\n{"ids","submitted","deduplicated"}',
    ],
    ["--json", "Short for --format json"],
  ],
  config: KEYS,
});

/** The first and last times a `Date` holds, and so a task's `runAt`. */
const FIRST_TIME = "-271821-04-20T00:00:00Z";
const LAST_TIME = "+275760-09-13T00:00:00Z";

/** Reads `--run-at`: epoch ms. */
function parseRunAt(text: string): number {
  const ms = parseIsoTime(text);
  if (ms === null) {
    throw new UsageError(
      `--run-at must be an ISO 8601 time with a zone (Z or ±hh:mm) such as 2026-12-01T09:00:00Z, got ${
        JSON.stringify(text)
      }`,
    );
  }
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `--run-at must be from ${FIRST_TIME} to ${LAST_TIME}, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return ms;
}

/**
 * Generated tasks per transaction, and a task file's tasks read at a time:
 * many inserts per commit.
 */
const SLICE = 256;

/** `count` random noop/compute/sleep tasks, made one at a time. */
function* randomTasks(count: number, seed: number): Generator<TaskInput> {
  const random = mulberry32(seed);
  for (let i = 0; i < count; i++) {
    const pick = random();
    if (pick < 0.4) {
      yield { type: "noop", payload: { n: i } };
    } else if (pick < 0.7) {
      yield {
        type: "compute",
        payload: {
          operation: "double",
          value: Math.floor(random() * 1_000_000),
        },
      };
    } else {
      yield {
        type: "sleep",
        payload: { duration_ms: 1 + Math.floor(random() * 20) },
      };
    }
  }
}

/** The next `count` items of `source`, fewer if it ends first. */
function take<T>(source: Iterator<T>, count: number): T[] {
  const items: T[] = [];
  while (items.length < count) {
    const next = source.next();
    if (next.done === true) break;
    items.push(next.value);
  }
  return items;
}

/**
 * Prints ids as their slices commit: one a line, or one JSON object
 * written in pieces, ids first and the counts last (the object a reader
 * parses is the same as if it had been written at once). Holds no ids.
 */
class IdWriter {
  #json: boolean;
  #opened = false;
  submitted = 0;
  deduplicated = 0;

  constructor(json: boolean) {
    this.#json = json;
  }

  /**
   * Prints the ids of a committed streamed submission, a few thousand at
   * a time, so the text of a million ids is never whole in memory.
   */
  writeAll(ids: SubmittedIds): void {
    let text = "";
    for (let i = 0; i < ids.length; i++) {
      if (ids.isDeduplicated(i)) this.deduplicated++;
      else this.submitted++;
      if (!this.#json) {
        text += ids.id(i) + "\n";
      } else {
        text += (this.#opened ? "," : '{"ids":[') + JSON.stringify(ids.id(i));
        this.#opened = true;
      }
      if (text.length >= 1 << 16) {
        out(text);
        text = "";
      }
    }
    out(text);
  }

  /**
   * Ends the output. With JSON, the object is closed even after a
   * failure, with the message in `error`; when nothing was committed,
   * nothing is printed then (the error is on stderr).
   */
  end(error?: unknown): void {
    if (!this.#json) return;
    if (error !== undefined && !this.#opened) return;
    out(
      `${
        this.#opened ? "]" : '{"ids":[]'
      },"submitted":${this.submitted},"deduplicated":${this.deduplicated}${
        error === undefined
          ? ""
          : `,"error":${
            JSON.stringify((error as Error).message ?? String(error))
          }`
      }}\n`,
    );
  }
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
    "dedupe-for": { type: "string" },
    delay: { type: "string" },
    "run-at": { type: "string" },
    queue: { type: "string" },
    priority: { type: "integer", min: -MAX_PRIORITY, max: MAX_PRIORITY },
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
  // --delay counts from here, once for every task of the command.
  const now = Date.now();
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
  const payload = jsonFlag(parsed, "payload");
  const dedupeText = parsed.string("dedupe-for");
  if (dedupeText !== undefined && key === undefined) {
    throw new UsageError("--dedupe-for needs --idempotency-key");
  }
  const dedupeFor = dedupeText === undefined
    ? undefined
    : parseDuration("--dedupe-for", dedupeText, { min: 1 });
  const delayText = parsed.string("delay");
  const runAtText = parsed.string("run-at");
  if (delayText !== undefined && runAtText !== undefined) {
    throw new UsageError("submit takes --delay or --run-at, not both");
  }
  // Epoch ms every task is due at, unless a file task has its own.
  const runAt = delayText !== undefined
    ? now + parseDuration("--delay", delayText, { min: 0 })
    : runAtText !== undefined
    ? parseRunAt(runAtText)
    : undefined;
  const cfg = parsed.config;

  // A task file is read a slice at a time and committed in one
  // transaction (`submitAll`): a bad task at any index leaves nothing
  // behind, and is named by its index in the file; its ids are printed
  // after the commit. Generated tasks are made and committed a slice at a
  // time, one transaction (`submitAll`) each, and each slice's ids are
  // printed once it has committed. Either way memory does not grow with
  // the number of tasks (beyond 17 bytes an id for a file).
  let total: number;
  let generated: Iterator<TaskInput> | undefined;
  if (file !== undefined) {
    // A missing file fails before the database is opened (or made). Not
    // opened here: a FIFO's writer would see it closed.
    await Deno.stat(file);
    total = 0; // not known until the file is read
  } else if (type !== undefined) {
    total = count;
    generated = (function* (): Generator<TaskInput> {
      for (let i = 0; i < count; i++) {
        yield {
          type,
          payload,
          ...(key !== undefined && { idempotencyKey: key }),
          ...(dedupeFor !== undefined && { dedupeFor }),
        };
      }
    })();
  } else {
    total = count;
    generated = randomTasks(count, parsed.integer("seed") ?? 1);
  }

  // The settings' defaults; a file task's own values win.
  const queueName = parsed.string("queue");
  if (queueName !== undefined) {
    checkArg(() => checkQueueName(queueName, "--queue"));
  }
  const priority = parsed.integer("priority");
  const withDefaults = (task: TaskInput): void => {
    task.maxAttempts ??= cfg.maxAttempts;
    if (runAt !== undefined) task.runAt ??= runAt;
    if (queueName !== undefined) task.queue ??= queueName;
    if (priority !== undefined) task.priority ??= priority;
  };
  const writer = new IdWriter(parsed.format === "json");
  // Ids printed to a terminal show the progress themselves.
  const progress = isTerminal(Deno.stdout)
    ? undefined
    : new Progress({ label: "submit", total });
  let queue: TaskQueue | undefined;
  let failure: unknown;
  try {
    queue = await openQueue(cfg, {
      consume: false,
      // This process never reads the handles' results, and polling for
      // them would read every unfinished task in turn, competing with the
      // inserts. The longest interval a timer takes turns it off.
      pollIntervalMs: 2 ** 31 - 1,
      logger: cliLogger(cfg),
    });
    if (file !== undefined) {
      let read = 0;
      const source = async function* (): AsyncGenerator<TaskInput[]> {
        for await (const tasks of streamTaskFile(file, SLICE)) {
          tasks.forEach(withDefaults);
          yield tasks;
          read += tasks.length;
          progress?.update(read);
        }
      };
      writer.writeAll(await queue.submitAll(source()));
    }
    const tasks = generated;
    for (let made = 0; tasks !== undefined && made < total;) {
      const size = Math.min(SLICE, total - made);
      // The slice is made inside the source submitAll reads, not before
      // the call: made before it, V8 took its tasks for long-lived and
      // began to allocate them in the old generation (pretenuring), and
      // much of each slice lived on until a full collection (about 950
      // instead of 22 KB alive at each scavenge). The queue keeps nothing
      // of a task once it is committed, and of the slice only its ids, 17
      // bytes each.
      const slice = function* (): Generator<TaskInput[]> {
        const batch = take(tasks, size);
        batch.forEach(withDefaults);
        yield batch;
      };
      writer.writeAll(await queue.submitAll(slice()));
      made += size;
      progress?.update(made);
      // A turn of the event loop between slices, as the group commit
      // took. Without one the SQLite inserts of the whole command run as
      // one chain of microtasks, and V8 finds about twice as much alive
      // at each scavenge, so grows its young generation twice as large.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    progress?.clear();
    await queue?.close({ deadline: 0 });
    // A closed stdout ends the command quietly: nothing more to write.
    if (!(failure instanceof OutputClosedError)) writer.end(failure);
  }
  return 0;
});
