/**
 * `cli.ts pause`, `cli.ts resume` and `cli.ts queues`: the paused state of
 * named queues, stored in the database for every process.
 *
 * @module
 */
import { checkQueueName } from "../store/_shared.ts";
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
Lists the queues that were ever paused or resumed, with their state. A
queue that was never paused is running and is not listed.`,
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
  const states = await withStore(
    parsed.config,
    "read",
    (store) => store.queueStates(),
  );
  if (parsed.format === "json") {
    out(
      JSON.stringify(states.map((s) => ({
        name: s.name,
        paused: s.paused,
        updated_at: new Date(s.updatedAt).toISOString(),
      }))) + "\n",
    );
  } else if (states.length === 0) {
    out("no paused or resumed queues\n");
  } else {
    out(
      states.map((s) =>
        `${terminalText(s.name)}  ${s.paused ? "paused" : "running"}  since ${
          new Date(s.updatedAt).toISOString()
        }\n`
      ).join(""),
    );
  }
  return 0;
});
