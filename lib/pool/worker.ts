/**
 * The module worker the {@linkcode WorkerPool} runs: it loads the handler
 * module named in the `init` message, runs the batches of tasks it is sent
 * and answers with one `results` message per turn of its event loop.
 *
 * This module has no exports; it is started with
 * `new Worker(new URL("./worker.ts", import.meta.url), { type: "module" })`.
 *
 * @module
 */
import {
  PermanentError,
  serializeError,
  TaskCancelledError,
  TaskTimeoutError,
} from "../errors.ts";
import type { TaskContext, TaskLogger } from "../handler.ts";
import { Logger } from "../log.ts";
import { ObjectStore, type ObjectStoreOptions } from "../objects.ts";
import { serializeState } from "./_report.ts";
import {
  type CheckpointedMessage,
  collectTransfers,
  type FromWorker,
  type InitMessage,
  type ResultsMessage,
  type RunMessage,
  type ToWorker,
  type WireTask,
} from "./_protocol.ts";

/** The parts of the worker global scope this module uses. */
interface WorkerScope {
  readonly name: string;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  close(): void;
}

type AnyHandler = (payload: unknown, ctx: TaskContext) => unknown;

const scope = globalThis as unknown as WorkerScope;

// State owned by this worker's single thread; the pool never sees it.
let handlers: Map<string, AnyHandler> | null = null;
let objects: ObjectStore | null = null;
/** Handler log lines go to stderr through the library's one logger. */
let logger = new Logger({ level: "warn" });
/** Whether the pool narrowed this worker's permissions. */
let narrowed = false;
/** Start flags shared with the pool: `seq + 1` per slot, set before a call. */
let startFlags: Int32Array | null = null;
/** The tasks whose handlers have not returned yet, by seq. */
const running = new Map<number, Running>();
// Results settled this turn, by column, posted together by `flush`.
let outSeqs: number[] = [];
let outValues: unknown[] = [];
let outFailures: number[] = [];
let outRunMs: number[] = [];
// Progress (the last value per task) and checkpoints (each one, in call
// order) reported this turn, sent with the results by `flush`; null while
// there are none, so a turn without them costs one comparison.
let outProgress: Map<number, string> | null = null;
let outCheckpointSeqs: number[] | null = null;
let outCheckpoints: string[] | null = null;
/** Checkpoints sent and not yet answered, per task, oldest first. */
const checkpointWaiters = new Map<number, PromiseWithResolvers<void>[]>();
let flushScheduled = false;

/** A running handler: its signal's controller and when it was called. */
interface Running {
  controller: AbortController;
  startedAt: number;
}

// A handler calling `self.close()` ends the worker without an error event on
// the pool's side, so the pool is told first (with the results already
// settled); its open tasks are then settled as crashed there.
const closeWorker = scope.close.bind(scope);
scope.close = (): void => {
  flush();
  scope.postMessage({ kind: "exit" });
  closeWorker();
};

scope.onmessage = (event: MessageEvent<ToWorker>): void => {
  const message = event.data;
  switch (message.kind) {
    case "run":
      runBatch(message);
      break;
    case "abort":
      for (let i = 0; i < message.seqs.length; i++) {
        const text = message.messages[i] ?? "Cannot finish task";
        running.get(message.seqs[i]!)?.controller.abort(
          message.reason === "cancel"
            ? new TaskCancelledError(text)
            : new TaskTimeoutError(text),
        );
      }
      break;
    case "checkpointed":
      checkpointed(message);
      break;
    case "init":
      init(message).catch((error: unknown) => {
        scope.postMessage({ kind: "init-error", error: serializeError(error) });
      });
      break;
  }
};

async function init(message: InitMessage): Promise<void> {
  logger = new Logger({ level: message.logLevel, format: message.logFormat });
  startFlags = new Int32Array(message.startFlags);
  narrowed = message.narrowed === true;
  const storeOptions: ObjectStoreOptions = {};
  if (message.chunkSize !== undefined) {
    storeOptions.chunkSize = message.chunkSize;
  }
  objects = new ObjectStore(message.objectsRoot ?? Deno.cwd(), storeOptions);
  const module = await import(message.handlers) as Record<string, unknown>;
  const found = new Map<string, AnyHandler>();
  for (const name of Object.keys(module)) {
    const value = module[name];
    if (typeof value !== "function") continue;
    found.set(name, value as AnyHandler);
  }
  handlers = found;
  scope.postMessage({ kind: "ready", types: [...found.keys()] });
}

function runBatch(message: RunMessage): void {
  const { seqs, slots, ids, types, payloads, attempts, keys } = message;
  const checkpointAt = message.checkpointAt;
  let c = 0;
  for (let i = 0; i < seqs.length; i++) {
    let checkpointed: unknown = undefined;
    if (checkpointAt !== undefined && checkpointAt[c] === i) {
      checkpointed = message.checkpoints![c++];
    }
    runTask({
      seq: seqs[i]!,
      slot: slots[i]!,
      id: ids[i]!,
      type: types[i]!,
      payload: payloads[i],
      attempt: attempts[i]!,
      idempotencyKey: keys[i] ?? null,
      checkpointed,
    });
  }
}

/** Answers the checkpoints the pool has committed (or refused). */
function checkpointed(message: CheckpointedMessage): void {
  for (let i = 0; i < message.seqs.length; i++) {
    const seq = message.seqs[i]!;
    const waiters = checkpointWaiters.get(seq);
    const waiter = waiters?.shift();
    if (waiters?.length === 0) checkpointWaiters.delete(seq);
    const error = message.errors[i];
    if (error === null || error === undefined) waiter?.resolve();
    else waiter?.reject(new Error(error));
  }
}

function runTask(task: WireTask): void {
  const handler = handlers?.get(task.type);
  if (handler === undefined) {
    const known = handlers === null ? [] : [...handlers.keys()];
    fail(
      task.seq,
      new PermanentError(
        `Cannot run task: unknown task type "${task.type}" (known types: ${
          known.length === 0 ? "none" : known.join(", ")
        })`,
      ),
    );
    return;
  }
  // The pool learns of the start from this cell, even if the handler then
  // takes the worker (or the whole process) down with it.
  Atomics.store(startFlags!, task.slot, task.seq + 1);
  const controller = new AbortController();
  running.set(task.seq, { controller, startedAt: performance.now() });
  const ctx = new Context(task, controller.signal, objects!);
  let value: unknown;
  try {
    value = handler(task.payload, ctx);
  } catch (error) {
    fail(task.seq, error);
    return;
  }
  if (
    typeof value === "object" && value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function"
  ) {
    Promise.resolve(value).then(
      (result) => succeed(task.seq, result),
      (error) => fail(task.seq, error),
    );
  } else {
    succeed(task.seq, value);
  }
}

/** How long the handler of `seq` ran, and forgets it. */
function finish(seq: number): number {
  const entry = running.get(seq);
  if (entry === undefined) return 0;
  running.delete(seq);
  return performance.now() - entry.startedAt;
}

function succeed(seq: number, value: unknown): void {
  outRunMs.push(finish(seq));
  outSeqs.push(seq);
  outValues.push(value);
  scheduleFlush();
}

function fail(seq: number, error: unknown): void {
  outRunMs.push(finish(seq));
  outFailures.push(outSeqs.length);
  outSeqs.push(seq);
  // serializeError never throws, whatever the handler threw.
  const data = serializeError(error);
  if (narrowed && data.name === "NotCapable") {
    data.message = denied(data.message);
  }
  outValues.push(data);
  scheduleFlush();
}

/**
 * Deno's `Requires net access to "host", run again with the --allow-net
 * flag`, reworded for a worker whose permissions the pool narrowed: the
 * process's flags are not what refused it, the pool's `permissions` are.
 */
function denied(message: string): string {
  const match = /^(.*), run again with the --allow-([a-z]+) flag$/s.exec(
    message,
  );
  return match === null
    ? `Cannot run task: the worker's permissions refuse it: ${message}`
    : `Cannot run task: the worker's permissions refuse it: ${
      match[1]
    } (not granted by permissions.${match[2]})`;
}

// Results go out once per turn, from a microtask queued by the first result
// of the turn. Synchronous handlers all settle while the `run` message is
// handled, so their results share one message; async handlers that settle
// later in the same checkpoint may go in a second one. A zero-delay timeout
// would catch those too, but its timer round per batch cut the dispatch
// benchmark (bench/pool_bench.ts) from about 140k to 27k tasks/s.
function scheduleFlush(): void {
  if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flush);
  }
}

function flush(): void {
  flushScheduled = false;
  if (outSeqs.length === 0) {
    if (outProgress === null && outCheckpointSeqs === null) return;
  }
  const reports = takeReports();
  const seqs = outSeqs;
  const values = outValues;
  const failures = outFailures;
  const runMs = outRunMs;
  outSeqs = [];
  outValues = [];
  outFailures = [];
  outRunMs = [];
  const transfer: Transferable[] = [];
  let f = 0;
  for (let i = 0; i < seqs.length; i++) {
    if (failures[f] === i) f++;
    else collectTransfers(values[i], transfer);
  }
  try {
    scope.postMessage(
      { kind: "results", seqs, values, failures, runMs, ...reports },
      transfer,
    );
    return;
  } catch {
    // One result is not cloneable: send them one by one so only that one
    // fails, after the reports (strings, always cloneable), which come
    // first as they would have.
  }
  if (reports !== null) {
    scope.postMessage({
      kind: "results",
      seqs: [],
      values: [],
      failures: [],
      runMs: [],
      ...reports,
    });
  }
  f = 0;
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    if (failures[f] === i) {
      f++;
      scope.postMessage({
        kind: "results",
        seqs: [seq],
        values: [values[i]],
        failures: [0],
        runMs: [runMs[i]!],
      });
      continue;
    }
    const single: Transferable[] = [];
    collectTransfers(values[i], single);
    try {
      scope.postMessage({
        kind: "results",
        seqs: [seq],
        values: [values[i]],
        failures: [],
        runMs: [runMs[i]!],
      }, single);
    } catch {
      scope.postMessage({
        kind: "results",
        seqs: [seq],
        values: [
          serializeError(
            new PermanentError(
              "Cannot return result: not structured-cloneable",
            ),
          ),
        ],
        failures: [0],
        runMs: [runMs[i]!],
      });
    }
  }
}

/** The progress and checkpoints of this turn, as message fields, and resets them. */
function takeReports(): Partial<ResultsMessage> | null {
  if (outProgress === null && outCheckpointSeqs === null) return null;
  const reports: Partial<ResultsMessage> = {};
  if (outProgress !== null) {
    reports.progressSeqs = [...outProgress.keys()];
    reports.progress = [...outProgress.values()];
    outProgress = null;
  }
  if (outCheckpointSeqs !== null) {
    reports.checkpointSeqs = outCheckpointSeqs;
    reports.checkpoints = outCheckpoints!;
    outCheckpointSeqs = null;
    outCheckpoints = null;
  }
  return reports;
}

/** The context one task's handler receives. */
class Context implements TaskContext {
  readonly signal: AbortSignal;
  readonly attempt: number;
  readonly taskId: string;
  readonly idempotencyKey: string | null;
  readonly type: string;
  readonly objects: ObjectStore;
  readonly checkpointed: unknown;
  #seq: number;
  #log: TaskLogger | null = null;

  constructor(task: WireTask, signal: AbortSignal, objects: ObjectStore) {
    this.#seq = task.seq;
    this.checkpointed = task.checkpointed;
    this.signal = signal;
    this.attempt = task.attempt;
    this.taskId = task.id;
    this.idempotencyKey = task.idempotencyKey;
    this.type = task.type;
    this.objects = objects;
  }

  /** The worker's logger bound to this task's id, key and attempt; made on first use. */
  get log(): TaskLogger {
    this.#log ??= logger.child({
      task_id: this.taskId,
      idempotency_key: this.idempotencyKey,
      attempt: this.attempt,
    });
    return this.#log;
  }

  progress(value: unknown): void {
    const text = serializeState(
      value,
      "report progress of task",
      this.taskId,
      "progress",
    );
    // A stray timer of a handler that has returned reports nothing.
    if (!running.has(this.#seq)) return;
    (outProgress ??= new Map()).set(this.#seq, text);
    scheduleFlush();
  }

  checkpoint(state: unknown): Promise<void> {
    let text: string;
    try {
      text = serializeState(state, "checkpoint task", this.taskId, "state");
    } catch (error) {
      return Promise.reject(error);
    }
    if (!running.has(this.#seq)) {
      return Promise.reject(
        new Error(
          `Cannot checkpoint task ${this.taskId}: its handler has returned`,
        ),
      );
    }
    const waiter = Promise.withResolvers<void>();
    const waiters = checkpointWaiters.get(this.#seq);
    if (waiters === undefined) checkpointWaiters.set(this.#seq, [waiter]);
    else waiters.push(waiter);
    (outCheckpointSeqs ??= []).push(this.#seq);
    (outCheckpoints ??= []).push(text);
    scheduleFlush();
    return waiter.promise;
  }
}
