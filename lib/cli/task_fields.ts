/**
 * A stored task as the CLI prints it (`export`, `dlq list`, `dlq show`):
 * every field of `TaskRecord`, snake_case, times as ISO 8601.
 *
 * @module
 */
import type { TaskRecord } from "../store/store.ts";
import type { CsvColumn } from "./output.ts";

/**
 * The printed name of every `TaskRecord` field, in output order: the
 * columns `export` always had first, then the rest. A field added to
 * `TaskRecord` fails the type check here until it is given a name, so
 * `export` never silently leaves one out.
 */
export const TASK_FIELDS = {
  id: "id",
  type: "type",
  status: "status",
  attempts: "attempts",
  errorClass: "error_class",
  lastError: "last_error",
  createdAt: "created_at",
  updatedAt: "updated_at",
  maxAttempts: "max_attempts",
  idempotencyKey: "idempotency_key",
  runAt: "run_at",
  startedAt: "started_at",
  leaseUntil: "lease_until",
  dedupeUntil: "dedupe_until",
  outputKey: "output_key",
  version: "version",
  queue: "queue",
  priority: "priority",
  payload: "payload",
  result: "result",
  progress: "progress",
  checkpoint: "checkpoint",
} as const satisfies { readonly [K in keyof TaskRecord]-?: string };

type Field = keyof typeof TASK_FIELDS;

/** Fields holding epoch milliseconds, printed as ISO 8601. */
const TIMES: ReadonlySet<Field> = new Set<Field>([
  "createdAt",
  "updatedAt",
  "runAt",
  "startedAt",
  "leaseUntil",
  "dedupeUntil",
]);

/** Fields holding JSON values: a JSON text in a CSV column. */
const JSON_VALUES: ReadonlySet<Field> = new Set<Field>([
  "payload",
  "result",
  "progress",
  "checkpoint",
]);

const FIELDS = Object.keys(TASK_FIELDS) as Field[];

function value(task: TaskRecord, field: Field): unknown {
  const raw = (task as unknown as Record<Field, unknown>)[field] ?? null;
  return TIMES.has(field) && typeof raw === "number"
    ? new Date(raw).toISOString()
    : raw;
}

/**
 * A task as a JSON object: every field, values exactly as stored (text
 * unchanged, payload and result as JSON values), times as ISO 8601.
 *
 * @param task The stored task.
 * @returns The object, keys in {@linkcode TASK_FIELDS} order.
 */
export function taskJson(task: TaskRecord): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const field of FIELDS) row[TASK_FIELDS[field]] = value(task, field);
  return row;
}

/** The CSV columns of a task: payload and result hold JSON text. */
export const TASK_COLUMNS: ReadonlyArray<CsvColumn<TaskRecord>> = FIELDS.map(
  (field): CsvColumn<TaskRecord> => [
    TASK_FIELDS[field],
    JSON_VALUES.has(field)
      ? (task) => JSON.stringify(value(task, field))
      : (task) => value(task, field),
  ],
);
