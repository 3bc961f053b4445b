/**
 * The status snapshot `status` prints once and `monitor` refreshes: counts
 * by state, depth, oldest age, dead letters, and the store's totals of
 * finished tasks (which `monitor` turns into rates), read from the store in
 * one call.
 *
 * One definition of the states, shared with the queue's metrics:
 *
 * - `claimed`: held by a worker process, handler not started yet (waiting
 *   for a worker slot). The store's `running` rows minus `started`.
 * - `running`: handler started and not finished. The store's `started`;
 *   the metrics gauge `running` of the process that holds it.
 *
 * @module
 */
import type {
  QueueStatus,
  StatusCounts,
  StatusTotals,
  StoreStatus,
  TaskStore,
} from "../store/store.ts";
import { formatDuration } from "./progress.ts";
import { type CsvColumn, type Paint, terminalText } from "./output.ts";

/** The states `status` and `monitor` count, in life-cycle order. */
export const STATES = [
  "queued",
  "claimed",
  "running",
  "succeeded",
  "failed",
  "dead",
] as const;

/** A state `status` and `monitor` count. */
export type State = typeof STATES[number];

/** What `status --json` prints, and each `monitor --format json` line starts with. */
export interface StatusSnapshot {
  /** ISO 8601 time of the reading. */
  time: string;
  /** The database (a URL without its password, and the schema). */
  db: string;
  /** Tasks in each state. */
  counts: Record<State, number>;
  /** Every task in the store. */
  total: number;
  /** Queued tasks plus failed ones due for a retry: waiting for a claim. */
  depth: number;
  /** Age of the oldest due task waiting for a claim, ms, or `null`. */
  oldest_queued_age_ms: number | null;
  /** Dead-lettered tasks (`counts.dead`). */
  dead_letters: number;
  /**
   * Tasks that ever succeeded, and were ever dead-lettered, in this
   * database: they only grow (pruning finished tasks does not lower them).
   */
  totals: Pick<StatusTotals, "succeeded" | "dead">;
  /**
   * Each queue that ever held a task, by name: its tasks by store status
   * (`running` is claimed and running together) and its totals.
   */
  queues: QueueStatus[];
}

/**
 * The counts by state of a store reading: the store's `running` rows are
 * split into `claimed` and `running` by its `started` count.
 *
 * @param status The store's reading.
 * @returns Tasks in each state.
 */
export function stateCounts(status: StoreStatus): Record<State, number> {
  const { counts } = status;
  const started = Math.min(status.started, counts.running);
  return {
    queued: counts.queued,
    claimed: counts.running - started,
    running: started,
    succeeded: counts.succeeded,
    failed: counts.failed,
    dead: counts.dead,
  };
}

/**
 * Reads a snapshot.
 *
 * @param store The store, open read-only.
 * @param db The database, as it is to be shown.
 * @returns The snapshot.
 */
export async function readStatus(
  store: TaskStore,
  db: string,
): Promise<StatusSnapshot> {
  const now = Date.now();
  const status = await store.status(now);
  const counts = stateCounts(status);
  return {
    time: new Date(now).toISOString(),
    db,
    counts,
    total: STATES.reduce((sum, state) => sum + counts[state], 0),
    // Retries wait in `failed` until their run_at; only due ones add to
    // the depth, and the store counts those through its due index.
    depth: counts.queued + status.dueFailed,
    oldest_queued_age_ms: status.oldestQueuedAgeMs,
    dead_letters: counts.dead,
    totals: { succeeded: status.totals.succeeded, dead: status.totals.dead },
    queues: status.queues,
  };
}

const MEANINGS: Readonly<Record<State, string>> = {
  queued: "waiting for a worker process",
  claimed: "held by a worker process, not started",
  running: "handler started",
  succeeded: "",
  failed: "retry scheduled",
  dead: "dead-lettered: see cli.ts dlq",
};

/**
 * A snapshot as text lines for a terminal.
 *
 * @param s The snapshot.
 * @param paint Colours, or none.
 * @returns The lines, without newlines.
 */
export function formatStatus(s: StatusSnapshot, paint: Paint): string[] {
  return [
    `${paint("1", "Sluice status")}  ${s.db}  ${s.time}`,
    "",
    ...STATES.map((name) => {
      const n = String(s.counts[name]).padStart(10);
      const colored = name === "dead" && s.counts[name] > 0
        ? paint("31", n)
        : name === "running" && s.counts[name] > 0
        ? paint("32", n)
        : n;
      const meaning = MEANINGS[name];
      return `  ${name.padEnd(13)}${colored}${
        meaning === "" ? "" : `  (${meaning})`
      }`;
    }),
    `  ${"total".padEnd(13)}${String(s.total).padStart(10)}`,
    "",
    `  ${"depth".padEnd(13)}${
      String(s.depth).padStart(10)
    }  (queued + failed due)`,
    `  ${"oldest queued".padEnd(13)}${
      (s.oldest_queued_age_ms === null
        ? "-"
        : formatDuration(s.oldest_queued_age_ms / 1000)).padStart(10)
    }`,
    `  ${
      "ever"
        .padEnd(13)
    }${
      String(s.totals.succeeded).padStart(10)
    } succeeded, ${s.totals.dead} dead-lettered`,
    ...formatQueues(s.queues),
  ];
}

/** The store statuses a table by queue shows, in life-cycle order. */
const QUEUE_COLUMNS = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "dead",
] as const;

/** One row of {@linkcode queueTable}. */
export interface QueueRow {
  /** Queue name, printed as {@linkcode terminalText}. */
  name: string;
  /** The queue's tasks by store status. */
  counts: StatusCounts;
  /** A column before the counts (the paused state), if any. */
  state?: string;
}

/**
 * Queues and their counts as text lines: a header, then a row per queue.
 *
 * @param rows The queues.
 * @param options `indent` before each line, `minWidth` of the name
 *   column, and `state`: the header of the rows' `state` column, or none.
 * @returns The lines, without newlines.
 */
export function queueTable(
  rows: readonly QueueRow[],
  options: { indent: string; minWidth: number; state?: string },
): string[] {
  const width = Math.max(
    options.minWidth,
    ...rows.map((r) => terminalText(r.name).length + 2),
  );
  const state = (text: string): string =>
    options.state === undefined ? "" : text.padEnd(9);
  return [
    `${options.indent}${"queue".padEnd(width)}${state(options.state ?? "")}${
      QUEUE_COLUMNS.map((name) => name.padStart(10)).join("")
    }`,
    ...rows.map((r) =>
      `${options.indent}${terminalText(r.name).padEnd(width)}${
        state(r.state ?? "")
      }${
        QUEUE_COLUMNS.map((name) => String(r.counts[name]).padStart(10)).join(
          "",
        )
      }`
    ),
  ];
}

/**
 * The counts of each queue as a table, or nothing for a store that only
 * ever used the default queue.
 */
function formatQueues(queues: readonly QueueStatus[]): string[] {
  if (queues.length === 0) return [];
  if (queues.length === 1 && queues[0]!.queue === "default") return [];
  return [
    "",
    ...queueTable(
      queues.map((q) => ({ name: q.queue, counts: q.counts })),
      { indent: "  ", minWidth: 13 },
    ),
  ];
}

/** The CSV columns of a snapshot. */
export const STATUS_COLUMNS: ReadonlyArray<CsvColumn<StatusSnapshot>> = [
  ["time", (s) => s.time],
  ...STATES.map((name): CsvColumn<StatusSnapshot> => [
    name,
    (s) => s.counts[name],
  ]),
  ["total", (s) => s.total],
  ["depth", (s) => s.depth],
  ["oldest_queued_age_ms", (s) => s.oldest_queued_age_ms],
  ["dead_letters", (s) => s.dead_letters],
  ["totals.succeeded", (s) => s.totals.succeeded],
  ["totals.dead", (s) => s.totals.dead],
];
