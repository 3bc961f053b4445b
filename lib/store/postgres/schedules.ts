/**
 * The PostgreSQL store's schedule statements (the `schedules` table of
 * migration 5), kept apart from the task statements.
 *
 * @module
 */
import type { ScheduleRecord, ScheduleTask } from "../store.ts";

/** The schedule statements of one schema. */
export interface ScheduleQueries {
  /**
   * Inserts or replaces schedule `$1` (cron `$2`, tz `$3`, task `$4` as
   * JSON text, next tick `$5`) at `$6`; a replaced one keeps its
   * `created_at` and `last_tick`. Returns the row.
   */
  put: string;
  /** Deletes schedule `$1`; returns its name when there was one. */
  delete: string;
  /** Every schedule, by name. */
  list: string;
  /**
   * The compare-and-set of a tick: sets `last_tick` `$1`, `next_tick`
   * `$2` at `$3` on schedule `$4` if its version is `$5` and its last tick
   * is before `$1`. Returns the name when it applied.
   */
  fire: string;
}

/**
 * The statements for one schema.
 *
 * @param schema The quoted schema identifier.
 * @returns The statement texts.
 */
export function scheduleQueries(schema: string): ScheduleQueries {
  const t = `${schema}.schedules`;
  return {
    put: `INSERT INTO ${t} AS s (name, cron, tz, task, next_tick, last_tick,
        created_at, updated_at, version)
      VALUES ($1::text, $2::text, $3::text, $4::text::jsonb, $5::bigint, NULL,
        $6::bigint, $6::bigint, 1)
      ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, tz = excluded.tz,
        task = excluded.task, next_tick = excluded.next_tick,
        updated_at = excluded.updated_at, version = s.version + 1
      RETURNING *`,
    delete: `DELETE FROM ${t} WHERE name = $1::text RETURNING name`,
    list: `SELECT * FROM ${t} ORDER BY name COLLATE "C"`,
    // A concurrent firer of the same tick waits on the row lock, then
    // finds the version moved on and updates nothing.
    fire: `UPDATE ${t} SET last_tick = $1::bigint, next_tick = $2::bigint,
        updated_at = $3::bigint, version = version + 1
      WHERE name = $4::text AND version = $5::integer
        AND (last_tick IS NULL OR last_tick < $1::bigint)
      RETURNING name`,
  };
}

/**
 * A `schedules` row as a record.
 *
 * @param row The row (`bigint` columns read as numbers).
 * @returns The record.
 */
export function scheduleFromRow(row: Record<string, unknown>): ScheduleRecord {
  return {
    name: row["name"] as string,
    cron: row["cron"] as string,
    tz: row["tz"] as string,
    task: row["task"] as ScheduleTask,
    nextTick: (row["next_tick"] as number | null) ?? null,
    lastTick: (row["last_tick"] as number | null) ?? null,
    createdAt: row["created_at"] as number,
    updatedAt: row["updated_at"] as number,
    version: row["version"] as number,
  };
}
