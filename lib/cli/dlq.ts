/**
 * `cli.ts dlq`: lists, shows and requeues dead-lettered tasks.
 *
 * @module
 */
import type { TaskRecord } from "../store/store.ts";
import {
  type Command,
  defineCommand,
  helpText,
  type ParsedCommand,
  runAction,
  UsageError,
} from "./command.ts";
import { READ_KEYS, withStore } from "./open.ts";
import { out, terminalText } from "./output.ts";
import { taskJson } from "./task_fields.ts";

const USAGE = helpText({
  usage: [
    "cli.ts dlq list [--limit N] [--db PATH|URL] [--format text|json]",
    "cli.ts dlq show ID [--db PATH|URL] [--format text|json]",
    "cli.ts dlq requeue (ID... | --all) [--db PATH|URL] [--format text|json]",
  ],
  about: `
Dead-lettered tasks: failed permanently or out of attempts. "requeue" moves
them back to queued with fresh attempts; a running "start" picks them up.

"requeue ID..." is all or nothing: when an id names no task, or a task that
is not dead, nothing is requeued and the error names every such id (exit
code 1).

Text output is for terminals: control characters in stored text (error
messages, payloads) are removed, and line breaks and tabs shown as \\n,
\\r and \\t, so each task stays on its line. --format json prints the
stored text exactly.`,
  options: [
    ["--limit N", "At most N tasks for list (default 100)"],
    ["--all", "Requeue every dead task"],
    ["--format FORMAT", "text or json (default text)"],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

function listLine(task: TaskRecord): string {
  return [
    task.id,
    task.type,
    `attempts=${task.attempts}`,
    task.errorClass ?? "-",
    task.lastError ?? "",
  ].map(terminalText).join("  ") + "\n";
}

function showLines(task: TaskRecord): string {
  return Object.entries(taskJson(task)).map(([name, value]) =>
    `${name.padEnd(16)}${
      terminalText(typeof value === "string" ? value : JSON.stringify(value))
    }\n`
  ).join("");
}

async function list(parsed: ParsedCommand, ids: string[]): Promise<number> {
  if (ids.length > 0) throw new UsageError("dlq list takes no ids");
  const limit = parsed.integer("limit") ?? 100;
  const dead = await withStore(
    parsed.config,
    "read",
    (store) => store.list({ status: "dead", limit }),
  );
  if (parsed.format === "json") {
    out(JSON.stringify(dead.map(taskJson)) + "\n");
  } else if (dead.length === 0) {
    out("no dead tasks\n");
  } else {
    out(dead.map(listLine).join(""));
  }
  return 0;
}

async function show(parsed: ParsedCommand, ids: string[]): Promise<number> {
  if (ids.length !== 1) throw new UsageError("dlq show needs one task id");
  const id = ids[0]!;
  const task = await withStore(
    parsed.config,
    "read",
    (store) => store.get(id),
  );
  if (task === undefined || task.status !== "dead") {
    throw new Error(
      `Cannot show task ${terminalText(id)}: no dead task with this id`,
    );
  }
  out(
    parsed.format === "json"
      ? JSON.stringify(taskJson(task)) + "\n"
      : showLines(task),
  );
  return 0;
}

async function requeue(parsed: ParsedCommand, ids: string[]): Promise<number> {
  const all = parsed.boolean("all");
  if ((ids.length > 0) === all) {
    throw new UsageError("dlq requeue needs task ids or --all (not both)");
  }
  const unique = [...new Set(ids)];
  const count = await withStore(parsed.config, "write", async (store) => {
    if (all) return await store.requeue("all", Date.now());
    const refused: string[] = [];
    for (const id of unique) {
      const task = await store.get(id);
      if (task?.status !== "dead") {
        refused.push(
          `${terminalText(id)} (${
            task === undefined ? "no such task" : task.status
          })`,
        );
      }
    }
    if (refused.length > 0) {
      throw new Error(
        `Cannot requeue tasks: not dead-lettered: ${
          refused.join(", ")
        }; nothing was requeued`,
      );
    }
    const requeued = await store.requeue(unique, Date.now());
    if (requeued !== unique.length) {
      throw new Error(
        `Cannot requeue tasks: requeued ${requeued} of ${unique.length}; the others left the dead-letter queue meanwhile`,
      );
    }
    return requeued;
  });
  out(
    parsed.format === "json"
      ? JSON.stringify({ requeued: count }) + "\n"
      : `requeued ${count}\n`,
  );
  return 0;
}

const ACTIONS: Readonly<
  Record<string, (parsed: ParsedCommand, ids: string[]) => Promise<number>>
> = { list, show, requeue };

/** `cli.ts dlq`. */
export const dlq: Command = defineCommand({
  usage: USAGE,
  flags: {
    limit: { type: "integer", min: 1, max: 1_000_000 },
    all: { type: "boolean" },
  },
  config: READ_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
  positionals: true,
}, async (parsed) => {
  return await runAction("dlq", parsed, ACTIONS);
});
