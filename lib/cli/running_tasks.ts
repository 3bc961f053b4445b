/**
 * The running tasks `status` lists, with the progress their handlers
 * reported (`ctx.progress`): read through the store's running rows only,
 * never the whole table.
 *
 * @module
 */
import type { TaskStore } from "../store/store.ts";
import { type Paint, terminalText } from "./output.ts";

/** One running task as `status --json` prints it under `running`. */
export interface RunningTask {
  /** The task's id. */
  id: string;
  /** Its type. */
  type: string;
  /** Attempts charged so far (the current one once its start is written). */
  attempts: number;
  /** ISO 8601 time its handler's start was recorded, or `null`. */
  started_at: string | null;
  /** The last progress value its handlers reported, or `null`. */
  progress: unknown;
}

/**
 * Reads up to `limit` running tasks, oldest first.
 *
 * @param store The store, open read-only.
 * @param limit How many at most; 0 reads nothing.
 * @returns The tasks.
 */
export async function readRunning(
  store: TaskStore,
  limit: number,
): Promise<RunningTask[]> {
  if (limit === 0) return [];
  const records = await store.list({ status: "running", limit });
  return records.map((r) => ({
    id: r.id,
    type: r.type,
    attempts: r.attempts,
    started_at: r.startedAt === null
      ? null
      : new Date(r.startedAt).toISOString(),
    progress: r.progress ?? null,
  }));
}

/**
 * The running tasks as text lines: a heading, then one line per task.
 *
 * @param tasks The tasks read.
 * @param shown How many were asked for, to say when more may exist.
 * @param paint Colours, or none.
 * @returns The lines, none when there is no running task.
 */
export function formatRunning(
  tasks: readonly RunningTask[],
  shown: number,
  paint: Paint,
): string[] {
  if (tasks.length === 0) return [];
  const more = tasks.length >= shown ? ` (first ${shown})` : "";
  const lines = ["", paint("1", `Running tasks${more}`)];
  for (const task of tasks) {
    const progress = task.progress === null
      ? paint("2", "no progress reported")
      : `progress ${terminalText(JSON.stringify(task.progress))}`;
    lines.push(
      `  ${terminalText(task.id)}  ${terminalText(task.type)}  ${progress}`,
    );
  }
  return lines;
}
