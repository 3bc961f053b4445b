/**
 * `cli.ts pause`, `cli.ts resume` and `cli.ts queues`: the paused state of
 * named queues, stored in the database for every process.
 *
 * @module
 */
import { compareNames } from "../store/_counts.ts";
import { checkQueueName, emptyCounts, emptyTotals } from "../store/_shared.ts";
import {
  checkArg,
  type Command,
  defineCommand,
  helpText,
  type ParsedCommand,
  UsageError,
} from "./command.ts";
import { READ_KEYS, withStore } from "./open.ts";
import { out, terminalText } from "./output.ts";
import { queueTable } from "./snapshot.ts";

function pauseUsage(action: "pause" | "resume"): string {
  return helpText({
    usage: [`cli.ts ${action} QUEUE... [--db PATH|URL] [--format text|json]`],
    about: action === "pause"
      ? `
Pauses named queues in the database: every process stops claiming their
tasks within one poll interval (the next claim reads the paused state in
its own transaction), and tasks submitted to them wait. Running tasks
finish. "resume" undoes it.`
      : `
Resumes paused queues: every process claims their tasks again from its
next claim (at once on PostgreSQL, which notifies; within one poll
interval on SQLite).`,
    options: [
      ["--format FORMAT", "text or json (default text)"],
      ["--json", "Short for --format json"],
    ],
    config: READ_KEYS,
  });
}

function queueNames(parsed: ParsedCommand, action: string): string[] {
  if (parsed.positionals.length === 0) {
    throw new UsageError(`${action} needs one or more queue names`);
  }
  for (const name of parsed.positionals) {
    checkArg(() => checkQueueName(name, "QUEUE"));
  }
  return [...new Set(parsed.positionals)];
}

function setPaused(action: "pause" | "resume"): Command {
  return defineCommand({
    usage: pauseUsage(action),
    config: READ_KEYS,
    formats: ["text", "json"],
    defaultFormat: "text",
    positionals: true,
  }, async (parsed) => {
    const names = queueNames(parsed, action);
    await withStore(parsed.config, "write", async (store) => {
      for (const name of names) {
        await store.setPaused(name, action === "pause", Date.now());
      }
    });
    const word = action === "pause" ? "paused" : "resumed";
    out(
      parsed.format === "json"
        ? JSON.stringify({ [word]: names }) + "\n"
        : names.map((name) => `${word} ${terminalText(name)}\n`).join(""),
    );
    return 0;
  });
}

/** `cli.ts pause`. */
export const pause: Command = setPaused("pause");

/** `cli.ts resume`. */
export const resume: Command = setPaused("resume");

/** `cli.ts queues`. */
export const queues: Command = defineCommand({
  usage: helpText({
    usage: ["cli.ts queues [--db PATH|URL] [--format text|json]"],
    about: `
Lists every queue that holds or held tasks, or was paused or resumed, by
name: its state (paused or running) and its tasks by store status (running
is claimed and started together). Counts are kept by the store's writes,
so this reads a few rows per queue, never the tasks. In JSON, one object per
queue: {name, paused, updated_at (the last pause or resume, or null),
counts, totals}.`,
    options: [
      ["--format FORMAT", "text or json (default text)"],
      ["--json", "Short for --format json"],
    ],
    config: READ_KEYS,
  }),
  config: READ_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
}, async (parsed) => {
  const [states, status] = await withStore(
    parsed.config,
    "read",
    async (store) =>
      [await store.queueStates(), await store.status(Date.now())] as const,
  );
  const byName = new Map(states.map((s) => [s.name, s]));
  const counted = new Map(status.queues.map((q) => [q.queue, q]));
  const names = [...new Set([...byName.keys(), ...counted.keys()])].sort(
    compareNames,
  );
  const rows = names.map((name) => {
    const state = byName.get(name);
    const queue = counted.get(name);
    return {
      name,
      paused: state?.paused ?? false,
      updated_at: state === undefined
        ? null
        : new Date(state.updatedAt).toISOString(),
      counts: queue?.counts ?? emptyCounts(),
      totals: queue?.totals ?? emptyTotals(),
    };
  });
  if (parsed.format === "json") {
    out(JSON.stringify(rows) + "\n");
  } else if (rows.length === 0) {
    out("no queues\n");
  } else {
    out(
      queueTable(
        rows.map((r) => ({
          name: r.name,
          counts: r.counts,
          state: r.paused ? "paused" : "running",
        })),
        { indent: "", minWidth: 7, state: "state" },
      ).join("\n") + "\n",
    );
  }
  return 0;
});
