/**
 * `cli.ts schedule`: adds, lists and removes schedules, the tasks that
 * every `start` process on the database submits at each tick of a cron
 * expression (each tick once, whichever process gets it).
 *
 * @module
 */
import {
  deleteSchedule,
  listSchedules,
  putSchedule,
} from "../queue/scheduler.ts";
import { openStore } from "../store/open_store.ts";
import type { ScheduleRecord, ScheduleTask } from "../store/store.ts";
import {
  type Command,
  defineCommand,
  helpText,
  jsonFlag,
  type ParsedCommand,
  runAction,
  UsageError,
} from "./command.ts";
import { MAX_PRIORITY } from "../store/_shared.ts";
import { READ_KEYS, withStore } from "./open.ts";
import { out, terminalText } from "./output.ts";

const USAGE = helpText({
  usage: [
    'cli.ts schedule add NAME --cron "*/5 * * * *" --type T [--payload JSON] [--queue Q]',
    "                    [--priority N] [--tz ZONE] [--db PATH|URL] [--format text|json]",
    "cli.ts schedule list [--db PATH|URL] [--format text|json]",
    "cli.ts schedule remove NAME [--db PATH|URL] [--format text|json]",
  ],
  about: `
Schedules live in the database: every "start" process on it runs them, and
each tick is submitted once, however many processes run, as a task with the
idempotency key schedule:NAME:TICK (the tick in ISO 8601, UTC).

--cron takes 5 fields (minute, hour, day of month, month, day of week), or 6
with seconds first ("* * * * * *": every second), read in --tz (an IANA time
zone, default UTC). "add" replaces a schedule of the same name; its first tick
is the first after now.

When no process runs at a tick (all were stopped, or too busy), the most recent
missed tick runs once when one is back; older missed ticks are skipped.

"remove" of an unknown name fails (exit code 1).`,
  options: [
    ["--cron EXPR", "When: a cron expression (add)"],
    ["--type T", "Task type: a handler name (add)"],
    ["--payload JSON", "Payload of each task (add; default null)"],
    ["--queue Q", "Queue of each task (add)"],
    ["--priority N", "Priority of each task (add)"],
    ["--tz ZONE", "IANA time zone of --cron (add; default UTC)"],
    ["--format FORMAT", "text or json (default text)"],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

const ADD_FLAGS = ["cron", "type", "payload", "queue", "priority", "tz"];

/** A schedule as `schedule list --json` prints it: times in ISO 8601. */
export function scheduleJson(
  schedule: ScheduleRecord,
): Record<string, unknown> {
  const iso = (ms: number | null): string | null =>
    ms === null ? null : new Date(ms).toISOString();
  return {
    name: schedule.name,
    cron: schedule.cron,
    tz: schedule.tz,
    task: schedule.task,
    next_tick: iso(schedule.nextTick),
    last_tick: iso(schedule.lastTick),
    created_at: iso(schedule.createdAt),
    updated_at: iso(schedule.updatedAt),
  };
}

function line(schedule: ScheduleRecord): string {
  const iso = (ms: number | null): string =>
    ms === null ? "-" : new Date(ms).toISOString();
  return [
    schedule.name,
    JSON.stringify(schedule.cron),
    schedule.tz,
    schedule.task.type,
    `next=${iso(schedule.nextTick)}`,
    `last=${iso(schedule.lastTick)}`,
  ].map(terminalText).join("  ") + "\n";
}

function oneName(action: string, names: string[]): string {
  if (names.length !== 1) {
    throw new UsageError(`schedule ${action} needs one schedule name`);
  }
  return names[0]!;
}

function noAddFlags(parsed: ParsedCommand, action: string): void {
  for (const flag of ADD_FLAGS) {
    const given = flag === "priority"
      ? parsed.integer(flag) !== undefined
      : parsed.string(flag) !== undefined;
    if (given) {
      throw new UsageError(`schedule ${action} takes no --${flag}`);
    }
  }
}

async function add(parsed: ParsedCommand, names: string[]): Promise<number> {
  const name = oneName("add", names);
  const cron = parsed.string("cron");
  if (cron === undefined) {
    throw new UsageError("schedule add needs --cron EXPR");
  }
  const type = parsed.string("type");
  if (type === undefined) throw new UsageError("schedule add needs --type T");
  const payload = jsonFlag(parsed, "payload");
  const queue = parsed.string("queue");
  const priority = parsed.integer("priority");
  const task: ScheduleTask = {
    type,
    payload,
    ...(queue !== undefined && { queue }),
    ...(priority !== undefined && { priority }),
  };
  const tz = parsed.string("tz");
  const cfg = parsed.config;
  // Like submit, add creates (and migrates) the database when needed.
  const store = await openStore(cfg.db, {
    postgres: { schema: cfg.pgSchema, max: 1, notify: false },
    sqlite: { driver: cfg.sqliteDriver },
  });
  let schedule: ScheduleRecord;
  try {
    schedule = await putSchedule(
      store,
      name,
      cron,
      task,
      tz === undefined ? {} : { tz },
    );
  } catch (error) {
    // A bad expression, zone or value is the command line's fault.
    if (error instanceof RangeError || error instanceof TypeError) {
      throw new UsageError(
        (error as Error).message.replace(/^Cannot [^:]*: /, ""),
      );
    }
    throw error;
  } finally {
    await store.close();
  }
  out(
    parsed.format === "json"
      ? JSON.stringify(scheduleJson(schedule)) + "\n"
      : `scheduled ${terminalText(name)}: next tick ${
        schedule.nextTick === null
          ? "none"
          : new Date(schedule.nextTick).toISOString()
      }\n`,
  );
  return 0;
}

async function list(parsed: ParsedCommand, names: string[]): Promise<number> {
  if (names.length > 0) throw new UsageError("schedule list takes no names");
  noAddFlags(parsed, "list");
  const schedules = await withStore(parsed.config, "read", listSchedules);
  if (parsed.format === "json") {
    out(JSON.stringify(schedules.map(scheduleJson)) + "\n");
  } else if (schedules.length === 0) {
    out("no schedules\n");
  } else {
    out(schedules.map(line).join(""));
  }
  return 0;
}

async function remove(
  parsed: ParsedCommand,
  names: string[],
): Promise<number> {
  const name = oneName("remove", names);
  noAddFlags(parsed, "remove");
  const removed = await withStore(
    parsed.config,
    "write",
    (store) => deleteSchedule(store, name),
  );
  if (!removed) {
    throw new Error(
      `Cannot remove schedule ${
        terminalText(JSON.stringify(name))
      }: no schedule has this name`,
    );
  }
  out(
    parsed.format === "json"
      ? JSON.stringify({ removed: name }) + "\n"
      : `removed ${terminalText(name)}\n`,
  );
  return 0;
}

const ACTIONS: Readonly<
  Record<string, (parsed: ParsedCommand, names: string[]) => Promise<number>>
> = { add, list, remove };

/** `cli.ts schedule`. */
export const schedule: Command = defineCommand({
  usage: USAGE,
  flags: {
    cron: { type: "string" },
    type: { type: "string" },
    payload: { type: "string" },
    queue: { type: "string" },
    priority: { type: "integer", min: -MAX_PRIORITY, max: MAX_PRIORITY },
    tz: { type: "string" },
  },
  config: READ_KEYS,
  formats: ["text", "json"],
  defaultFormat: "text",
  positionals: true,
}, async (parsed) => {
  return await runAction("schedule", parsed, ACTIONS);
});
