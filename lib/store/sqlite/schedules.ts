/**
 * The SQLite store's schedule statements (the `schedules` table of
 * migration 6), kept apart from the task statements.
 *
 * @module
 */
import type { ScheduleRecord, ScheduleTask } from "../store.ts";
import type { Row, SqlValue } from "./database.ts";

/**
 * The text of every schedule statement. Values are always bound as `?`
 * parameters, never spliced into the text.
 */
export const SCHEDULE_QUERIES = {
  // A replaced schedule keeps its created_at and last_tick; its version
  // moves on, so a tick read from the old definition is refused.
  put: "INSERT INTO schedules (name, cron, tz, task, next_tick, last_tick, " +
    "created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, 1) " +
    "ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, " +
    "tz = excluded.tz, task = excluded.task, next_tick = excluded.next_tick, " +
    "updated_at = excluded.updated_at, version = schedules.version + 1 " +
    "RETURNING *",
  delete: "DELETE FROM schedules WHERE name = ?",
  list: "SELECT * FROM schedules ORDER BY name",
  // The compare-and-set of a tick: the version read, and a tick after the
  // last one recorded.
  fire: "UPDATE schedules SET last_tick = ?, next_tick = ?, updated_at = ?, " +
    "version = version + 1 WHERE name = ? AND version = ? " +
    "AND (last_tick IS NULL OR last_tick < ?)",
} as const;

function intOrNull(value: SqlValue | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/**
 * A `schedules` row as a record.
 *
 * @param row The row.
 * @returns The record.
 */
export function scheduleFromRow(row: Row): ScheduleRecord {
  return {
    name: row["name"] as string,
    cron: row["cron"] as string,
    tz: row["tz"] as string,
    task: JSON.parse(row["task"] as string) as ScheduleTask,
    nextTick: intOrNull(row["next_tick"]),
    lastTick: intOrNull(row["last_tick"]),
    createdAt: Number(row["created_at"]),
    updatedAt: Number(row["updated_at"]),
    version: Number(row["version"]),
  };
}
