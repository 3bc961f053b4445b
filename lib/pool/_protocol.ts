/**
 * Messages between the worker pool (main thread) and its workers.
 *
 * The pool owns task identity: it numbers every task it sends with a
 * per-worker sequence number (`seq`), and the worker answers with that
 * number. Task ids chosen by callers never cross as keys, so two tasks with
 * the same id cannot be confused.
 *
 * @module
 */
import type { SerializedError } from "../errors.ts";
import type { LogFormat, LogLevel } from "../log.ts";

/** Pool → worker: load the handler module. Sent once, first. */
export interface InitMessage {
  /** Message tag. */
  kind: "init";
  /** The worker's id, as used in log lines and thread names. */
  workerId: number;
  /** Absolute URL of the handler module. */
  handlers: string;
  /** Root directory of the object store; the working directory when absent. */
  objectsRoot?: string;
  /** Chunk size of object-store reads. */
  chunkSize?: number;
  /**
   * Whether the pool narrowed this worker's permissions, so a `NotCapable`
   * error names the pool's option rather than Deno's `--allow-*` flag.
   */
  narrowed?: boolean;
  /** Lowest level written to stderr. */
  logLevel: LogLevel;
  /** How handler log lines are written. */
  logFormat: LogFormat;
  /**
   * One `Int32Array` cell per slot of this worker: before calling a
   * handler, the worker stores its task's `seq + 1` in the task's slot
   * cell. The pool reads the cells to learn which handlers started,
   * without a message per batch.
   */
  startFlags: SharedArrayBuffer;
}

/** One task as the worker sees it. */
export interface WireTask {
  /** The pool's number for this task on this worker. */
  seq: number;
  /** The task's id. */
  id: string;
  /** The handler's export name. */
  type: string;
  /** The handler's first argument. */
  payload: unknown;
  /** 1 for the first run. */
  attempt: number;
  /** Its slot on the worker: the start-flag cell to set. */
  slot: number;
  /** The idempotency key, or null. */
  idempotencyKey: string | null;
  /** What the previous attempt checkpointed; `undefined` for none. */
  checkpointed: unknown;
}

/**
 * Pool → worker: run these tasks (one batch per worker per turn). Stored by
 * column: arrays of primitives clone faster than one object per task, whose
 * property names would be written again for every task.
 */
export interface RunMessage {
  /** Message tag. */
  kind: "run";
  /** Per-worker task numbers. */
  seqs: number[];
  /** The slot (start-flag cell) each task occupies on the worker. */
  slots: number[];
  /** Task ids. */
  ids: string[];
  /** Task types. */
  types: string[];
  /** Payloads. */
  payloads: unknown[];
  /** Attempt numbers. */
  attempts: number[];
  /** Idempotency keys. */
  keys: (string | null)[];
  /**
   * Positions (in `seqs`) of the tasks that resume from a checkpoint;
   * absent when none does, so a batch without checkpoints carries nothing.
   */
  checkpointAt?: number[];
  /** The checkpoint of each task at `checkpointAt`, in the same order. */
  checkpoints?: unknown[];
}

/** Pool → worker: abort the signals of these tasks. */
export interface AbortMessage {
  /** Message tag. */
  kind: "abort";
  /** Tasks to abort. */
  seqs: number[];
  /** The message of the error each signal is aborted with. */
  messages: string[];
  /**
   * Why: a timeout aborts with a `TaskTimeoutError`; a shutdown or a
   * cancellation with a `TaskCancelledError`.
   */
  reason: "timeout" | "cancel";
}

/**
 * Pool → worker: these checkpoints were written (`null`), or refused with
 * the message at the same index. A task's checkpoints are answered in the
 * order they were sent.
 */
export interface CheckpointedMessage {
  /** Message tag. */
  kind: "checkpointed";
  /** The task of each checkpoint answered. */
  seqs: number[];
  /** `null` when written, else why not. */
  errors: (string | null)[];
}

/** Messages the pool sends. */
export type ToWorker =
  | InitMessage
  | RunMessage
  | AbortMessage
  | CheckpointedMessage;

/** Worker → pool: the module loaded; these task types exist. */
export interface ReadyMessage {
  /** Message tag. */
  kind: "ready";
  /** The module's function export names. */
  types: string[];
}

/** Worker → pool: the module failed to load. */
export interface InitErrorMessage {
  /** Message tag. */
  kind: "init-error";
  /** The import error. */
  error: SerializedError;
}

/**
 * Worker → pool: tasks that settled during one turn of the worker's event
 * loop, by column. `values[i]` is what task `seqs[i]` returned, or its
 * `SerializedError` when `i` is listed in `failures`.
 */
export interface ResultsMessage {
  /** Message tag. */
  kind: "results";
  /** Task numbers. */
  seqs: number[];
  /** Return values, or errors at the positions in `failures`. */
  values: unknown[];
  /** Ascending positions in `seqs` of the tasks that failed. */
  failures: number[];
  /**
   * Run time of each handler in milliseconds, measured in the worker from
   * the call to its settling (0 for a task whose handler never ran).
   */
  runMs: number[];
  /**
   * Tasks that reported progress this turn (the last value of each), read
   * before the results; absent when none did.
   */
  progressSeqs?: number[];
  /** The JSON text of each progress value in `progressSeqs`. */
  progress?: string[];
  /**
   * Checkpoints asked for this turn, in call order, read before the
   * results (so a checkpoint and the failure after it are committed in
   * that order); absent when none was. Each is answered by a
   * {@linkcode CheckpointedMessage}.
   */
  checkpointSeqs?: number[];
  /** The JSON text of each checkpoint in `checkpointSeqs`. */
  checkpoints?: string[];
}

/** Worker → pool: the worker is closing itself (`self.close()`); it will not answer again. */
export interface ExitMessage {
  /** Message tag. */
  kind: "exit";
}

/** Messages the worker sends. */
export type FromWorker =
  | ReadyMessage
  | InitErrorMessage
  | ResultsMessage
  | ExitMessage;

/**
 * Collects the transferable buffers of a value: an `ArrayBuffer` or a view's
 * buffer at the top level, or as a direct member of a plain object or array.
 * Detached and shared buffers are skipped; duplicates are not added twice.
 *
 * @param value The payload or result.
 * @param out The transfer list to append to.
 */
export function collectTransfers(value: unknown, out: Transferable[]): void {
  if (typeof value !== "object" || value === null) return;
  if (addBuffer(value, out)) return;
  const proto = Object.getPrototypeOf(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) addBuffer(value[i], out);
  } else if (proto === Object.prototype || proto === null) {
    for (const key in value) {
      addBuffer((value as Record<string, unknown>)[key], out);
    }
  }
}

function addBuffer(value: unknown, out: Transferable[]): boolean {
  let buffer: ArrayBufferLike;
  if (value instanceof ArrayBuffer) buffer = value;
  else if (ArrayBuffer.isView(value)) buffer = value.buffer;
  else return false;
  if (
    buffer instanceof ArrayBuffer && !buffer.detached &&
    !out.includes(buffer)
  ) {
    out.push(buffer);
  }
  return true;
}
