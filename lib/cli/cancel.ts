/**
 * `cli.ts cancel` and `cli.ts delete`: stop tasks from running, and remove
 * tasks from the database.
 *
 * @module
 */
import type {
  CancelOutcome,
  RemoveOutcome,
  TaskStore,
} from "../store/store.ts";
import {
  type Command,
  defineCommand,
  helpText,
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

/** One of the commands that act on task ids, all or nothing. */
interface IdCommand<O extends { id: string }> {
  usage: string;
  /** The command's name, and its action in messages: `cancel`. */
  action: "cancel" | "delete";
  /** Which statuses (`undefined`: no such task) refuse the whole command. */
  refuse: (status: string | undefined) => boolean;
  /** How the error names the refused ids: `unknown ids`. */
  refused: string;
  /** Acts on the ids, once none is refused. */
  act: (store: TaskStore, ids: readonly string[]) => Promise<O[]>;
  /** An outcome's text after its id. */
  text: (outcome: O) => string;
  /** Whether an outcome leaves the exit code 0. */
  ok: (outcome: O) => boolean;
}

function defineIdCommand<O extends { id: string }>(
  spec: IdCommand<O>,
): Command {
  return defineCommand({
    usage: spec.usage,
    config: READ_KEYS,
    formats: ["text", "json"],
    defaultFormat: "text",
    positionals: true,
  }, async (parsed) => {
    if (parsed.positionals.length === 0) {
      throw new UsageError(`${spec.action} needs one or more task ids`);
    }
    const ids = [...new Set(parsed.positionals)];
    const outcomes = await withStore(parsed.config, "write", async (store) => {
      const refused = await refusals(store, ids, spec.refuse);
      if (refused.length > 0) {
        throw new Error(
          `Cannot ${spec.action} tasks: ${spec.refused}: ${
            refused.join(", ")
          }; nothing was ${spec.action === "cancel" ? "cancelled" : "deleted"}`,
        );
      }
      return await spec.act(store, ids);
    });
    out(
      parsed.format === "json"
        ? JSON.stringify(outcomes) + "\n"
        : outcomes.map((o) => `${terminalText(o.id)}  ${spec.text(o)}\n`)
          .join(""),
    );
    return outcomes.every(spec.ok) ? 0 : 1;
  });
}

/** `cli.ts cancel`. */
export const cancel: Command = defineIdCommand<CancelOutcome>({
  usage: CANCEL_USAGE,
  action: "cancel",
  refuse: (status) => status === undefined,
  refused: "unknown ids",
  act: (store, ids) => store.cancel(ids, Date.now()),
  text: (o) =>
    o.outcome === "cancelled"
      ? `cancelled (was ${o.was})`
      : o.outcome === "finished"
      ? `already finished (${o.was})`
      : "no such task",
  ok: (o) => o.outcome !== "missing",
});

/** `cli.ts delete`. */
export const deleteTasks: Command = defineIdCommand<RemoveOutcome>({
  usage: DELETE_USAGE,
  action: "delete",
  refuse: (status) => status === undefined || status === "running",
  refused: "unknown or running",
  act: (store, ids) => store.remove(ids),
  text: (o) => o.outcome === "removed" ? "deleted" : o.outcome,
  ok: (o) => o.outcome === "removed",
});
