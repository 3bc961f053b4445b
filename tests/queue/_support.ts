/**
 * What the queue's tests share: the durable stores they run against
 * (SQLite always, PostgreSQL when SLUICE_TEST_PG names a server, each test
 * in a schema of its own, dropped at the end), log readers, and records.
 *
 * @module
 */
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import type { NewTask, TaskRecord, TaskStore } from "../../lib/store/store.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { waitFor } from "../_helpers.ts";

const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;

/** A fresh database of one kind. */
export interface Database extends AsyncDisposable {
  /** `"sqlite"` or `"postgres"`. */
  kind: string;
  /** Opens another connection to the same database (another "process"). */
  open(): Promise<TaskStore>;
  /** The SQLite path or PostgreSQL URL, for child processes. */
  url: string;
  /** The PostgreSQL schema, or `undefined`. */
  schema: string | undefined;
}

/** A backend the tests can run on. */
export interface Backend {
  /** Shown in test names. */
  name: string;
  /** Creates a fresh, empty database in `dir` (SQLite) or a new schema. */
  create(dir: string): Database;
}

const sqlite: Backend = {
  name: "sqlite",
  create(dir: string): Database {
    const path = `${dir}/tasks.db`;
    return {
      kind: "sqlite",
      url: path,
      schema: undefined,
      open: () => Promise.resolve(SqliteTaskStore.open(path)),
      [Symbol.asyncDispose]: () => Promise.resolve(),
    };
  },
};

const postgres: Backend = {
  name: "postgres",
  create(): Database {
    const schema = `sluice_life_${
      crypto.randomUUID().replaceAll("-", "").slice(0, 12)
    }`;
    return {
      kind: "postgres",
      url: PG!,
      schema,
      open: () => PostgresTaskStore.open(PG!, { schema }),
      [Symbol.asyncDispose]: () => PostgresTaskStore.drop(PG!, { schema }),
    };
  },
};

/** Every backend available here. */
export const BACKENDS: readonly Backend[] = PG === undefined
  ? [sqlite]
  : [sqlite, postgres];

/** Reads a log of one key per line; missing means empty. */
export async function lines(path: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l !== "");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** How many times each line occurs. */
export function tally(items: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}

/** Waits until the store holds nothing queued, running or awaiting a retry. */
export async function settledStore(
  store: TaskStore,
  timeoutMs = 30_000,
): Promise<void> {
  await waitFor(async () => {
    const { counts } = await store.status(Date.now());
    return counts.queued + counts.running + counts.failed === 0;
  }, { timeoutMs, what: "every task to finish in the store" });
}

/**
 * The record a fresh, unclaimed task would have.
 *
 * @param task The task, or just its id.
 * @returns A queued record, version 0.
 */
export function recordOf(task: NewTask | string): TaskRecord {
  const t: NewTask = typeof task === "string"
    ? {
      id: task,
      type: "t",
      idempotencyKey: null,
      payload: null,
      maxAttempts: 3,
      runAt: 0,
    }
    : task;
  return {
    id: t.id,
    type: t.type,
    queue: t.queue ?? "default",
    priority: t.priority ?? 0,
    idempotencyKey: t.idempotencyKey,
    payload: t.payload,
    status: "queued",
    attempts: 0,
    maxAttempts: t.maxAttempts,
    runAt: t.runAt,
    leaseUntil: null,
    createdAt: 0,
    updatedAt: 0,
    outputKey: null,
    result: null,
    lastError: null,
    errorClass: null,
    version: 0,
    startedAt: null,
    dedupeUntil: null,
    progress: null,
    checkpoint: null,
  };
}

/**
 * Lets the gated tasks in `dir` finish (creates `dir/release`), then runs
 * what is left in `store` on a fresh queue with maxAttempts 1, as the next
 * start after a crash would, until nothing is left to run. Expired leases
 * are recovered on the way.
 */
export async function restartAndDrain(
  store: TaskStore,
  dir: string,
  handlers: URL,
): Promise<void> {
  await Deno.writeTextFile(`${dir}/release`, "");
  await using _queue = await TaskQueue.open({
    db: store,
    handlers,
    workers: 2,
    leaseMs: 500,
    pollIntervalMs: 20,
    retry: { maxAttempts: 1 },
    logger: { level: "silent" },
  });
  await settledStore(store);
}
