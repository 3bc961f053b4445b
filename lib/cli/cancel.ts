/**
 * `cli.ts cancel` and `cli.ts delete`: stop tasks from running, and remove
 * tasks from the database.
 *
 * @module
 */
import type { TaskStore } from "../store/store.ts";
import {
  type Command,
  defineCommand,
  helpText,
  type ParsedCommand,
  UsageError,
} from "./command.ts";
import { READ_KEYS, withStore } from "./open.ts";
import { out, terminalText } from "./output.ts";

const CANCEL_USAGE = helpText({
  usage: ["cli.ts cancel ID... [--db PATH|URL] [--format text|json]"],
  about: `
Cancels tasks in any process: a queued, delayed or retrying task never
runs; a running one has its handler's ctx.signal aborted with a
TaskCancelledError at its process's next lease renewal (within half a
lease), and is not retried. A cancelled task stays in the dead-letter
queue with the error "Cannot run task: cancelled" ("dlq requeue" brings it
back) until retention or "delete" removes it. A task that had already
finished is left as it is and reported.

All or nothing: when an id names no task, nothing is cancelled and the
error names every such id (exit code 1).`,
  options: [
    ["--format FORMAT", "text or json (default text)"],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

const DELETE_USAGE = helpText({
  usage: ["cli.ts delete ID... [--db PATH|URL] [--format text|json]"],
  about: `
Deletes tasks that are not running (finished, queued, delayed or
retrying): a queued task deleted never runs, and its idempotency key is
free again. Cancel a running task first.

All or nothing: when an id names no task, or a running one, nothing is
deleted and the error names every such id (exit code 1).`,
  options: [
    ["--format FORMAT", "text or json (default text)"],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

/**
 * The ids of `ids` that `refuse` objects to, described, read before any
 * change; the command changes nothing when there are any.
 */
async function refusals(
  store: TaskStore,
  ids: readonly string[],
  refuse: (status: string | undefined) => boolean,
): Promise<string[]> {
  const refused: string[] = [];
  for (const id of ids) {
    const status = (await store.get(id))?.status;
    if (refuse(status)) {
      refused.push(`${terminalText(id)} (${status ?? "no such task"})`);
    }
  }
  return refused;
}

function idsOf(parsed: ParsedCommand, action: string): string[] {
  if (parsed.positionals.length === 0) {
    throw new UsageError(`${action} needs one or more task ids`);
  }
  return [...new Set(parsed.positionals)];
}

/** `cli.ts cancel`. */
export const cancel: Command = defineCommand({
  usage: CANCEL_USAGE,
  config: READ_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
  positionals: true,
}, async (parsed) => {
  const ids = idsOf(parsed, "cancel");
  const outcomes = await withStore(parsed.config, "write", async (store) => {
    const missing = await refusals(store, ids, (s) => s === undefined);
    if (missing.length > 0) {
      throw new Error(
        `Cannot cancel tasks: unknown ids: ${
          missing.join(", ")
        }; nothing was cancelled`,
      );
    }
    return await store.cancel(ids, Date.now());
  });
  if (parsed.format === "json") {
    out(JSON.stringify(outcomes) + "\n");
  } else {
    out(
      outcomes.map((o) =>
        `${terminalText(o.id)}  ${
          o.outcome === "cancelled"
            ? `cancelled (was ${o.was})`
            : o.outcome === "finished"
            ? `already finished (${o.was})`
            : "no such task"
        }\n`
      ).join(""),
    );
  }
  return outcomes.some((o) => o.outcome === "missing") ? 1 : 0;
});

/** `cli.ts delete`. */
export const deleteTasks: Command = defineCommand({
  usage: DELETE_USAGE,
  config: READ_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
  positionals: true,
}, async (parsed) => {
  const ids = idsOf(parsed, "delete");
  const outcomes = await withStore(parsed.config, "write", async (store) => {
    const refused = await refusals(
      store,
      ids,
      (s) => s === undefined || s === "running",
    );
    if (refused.length > 0) {
      throw new Error(
        `Cannot delete tasks: unknown or running: ${
          refused.join(", ")
        }; nothing was deleted`,
      );
    }
    return await store.remove(ids);
  });
  if (parsed.format === "json") {
    out(JSON.stringify(outcomes) + "\n");
  } else {
    out(
      outcomes.map((o) =>
        `${terminalText(o.id)}  ${
          o.outcome === "removed" ? "deleted" : o.outcome
        }\n`
      ).join(""),
    );
  }
  return outcomes.every((o) => o.outcome === "removed") ? 0 : 1;
});
