/**
 * The events a {@linkcode TaskQueue} emits at its transitions. Metrics, the
 * structured log and users subscribe to the same events; the control flow
 * never calls them directly.
 *
 * @module
 */
import type { ErrorClass } from "../errors.ts";

/** Fields every task event carries. */
export interface TaskEventBase {
  /** The task's id. */
  id: string;
  /** The task's type. */
  type: string;
  /** The named queue the task belongs to. */
  queue: string;
  /** The idempotency key, or `null`. */
  idempotencyKey: string | null;
}

/** How an attempt ended, for `succeeded`, `retry` and `dead`. */
export interface AttemptEvent extends TaskEventBase {
  /** The attempt that ended: 1 for the first run. */
  attempt: number;
  /** Milliseconds from acceptance (or becoming due) to the handler's start. */
  waitMs: number;
  /** Milliseconds the handler ran. */
  runMs: number;
  /** The worker that ran it, or -1. */
  workerId: number;
}

/** A failed attempt, for `retry` and `dead`. */
export interface FailureEvent extends AttemptEvent {
  /** `name: message` of the error. */
  error: string;
  /** The error's name, e.g. `"TaskTimeoutError"`. */
  errorName: string;
  /** Whether a retry could help. */
  errorClass: ErrorClass;
}

/**
 * Every event by name, with what its listeners receive.
 *
 * @example Watching outcomes
 * ```ts
 * import { type TaskEventMap, TaskQueue } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * await using queue = await TaskQueue.open({ workers: 1 });
 * const seen: TaskEventMap["succeeded"][] = [];
 * const off = queue.on("succeeded", (event) => seen.push(event));
 * await (await queue.submit({ type: "noop" })).result;
 * off();
 * assert.equal(seen.length, 1);
 * assert.equal(seen[0]?.attempt, 1);
 * ```
 */
export interface TaskEventMap {
  /** A submission was accepted (its row is committed). */
  submitted: TaskEventBase & {
    /** Tasks waiting in the channel after this one. */
    depth: number;
  };
  /** A submission was answered by an existing task with the same key. */
  deduplicated: TaskEventBase;
  /** A submission was refused because the channel was full. */
  rejected: {
    /** The refused task's type. */
    type: string;
    /** The channel's capacity. */
    capacity: number;
    /** How many tasks were refused together (a `submitMany` batch). */
    count: number;
  };
  /** Tasks this process did not submit were claimed from the store. */
  claimed: {
    /** How many. */
    count: number;
  };
  /** A task left the channel for a worker slot. */
  dispatched: TaskEventBase & {
    /** Tasks still waiting in the channel. */
    depth: number;
    /** Tasks in worker slots now. */
    inFlight: number;
  };
  /** A handler started: the attempt is charged. */
  started: TaskEventBase & {
    /** The attempt: 1 for the first run. */
    attempt: number;
    /** The worker running it. */
    workerId: number;
  };
  /**
   * A running handler's progress (`ctx.progress`) is committed: `getTask`
   * shows it from now on. Values reported faster than the store commits
   * are coalesced: only the last of each batch is announced.
   */
  progress: TaskEventBase & {
    /** The attempt that reported it: 1 for the first run. */
    attempt: number;
    /** The value reported. */
    progress: unknown;
  };
  /** A task succeeded and its result is committed. */
  succeeded: AttemptEvent;
  /** An attempt failed and a retry is committed for `runAt`. */
  retry: FailureEvent & {
    /** When the next attempt may start (epoch ms). */
    runAt: number;
  };
  /** A task was dead-lettered (committed). */
  dead: FailureEvent;
  /**
   * A task was cancelled (`cancel`), or a running handler was told to stop
   * through `ctx.signal` (the queue shut down).
   */
  cancelled: TaskEventBase & {
    /** Why. */
    reason: "shutdown" | "cancelled";
  };
  /** A claimed task was handed back to the store, due at once. */
  released: TaskEventBase & {
    /** Why: the queue closed, or its worker died before the handler started. */
    reason: "shutdown" | "not-started";
    /** Whether an attempt charged by its start was taken back. */
    refunded: boolean;
  };
  /** A task passed its timeout; its handler's signal was aborted. */
  timed_out: {
    /** The task's id. */
    id: string;
    /** The worker running it. */
    workerId: number;
    /** The timeout that passed. */
    timeoutMs: number;
  };
  /** A worker died or was terminated, and another took its place. */
  worker_replaced: {
    /** The worker that is gone. */
    workerId: number;
    /** Its replacement, or -1 when the pool is closing. */
    replacementId: number;
    /** Why it is gone. */
    reason: "crashed" | "exited" | "timed-out";
    /** Details, e.g. the uncaught error's message. */
    message: string;
    /** Workers alive now. */
    alive: number;
  };
  /** Another process took over a task this one held (its lease lapsed). */
  lease_lost: TaskEventBase & {
    /** Where the task stood here. */
    state: string;
  };
  /** A settle was refused: another process had taken the task over. */
  stale_settle: TaskEventBase;
  /** Finished tasks the retention policy no longer keeps were deleted. */
  pruned: {
    /** Succeeded tasks deleted. */
    succeeded: number;
    /** Dead-lettered tasks deleted. */
    dead: number;
  };
  /** Expired leases of a crashed process were recovered. */
  recovered: {
    /** How many tasks were requeued or dead-lettered. */
    count: number;
  };
  /** A commit failed; its settles are retried after a backoff. */
  store_unavailable: {
    /** The error, as text. */
    error: string;
    /** Consecutive failed commits. */
    failures: number;
    /** When the next try is, in ms. */
    retryInMs: number;
  };
  /** A store operation failed for good. */
  store_error: {
    /** What failed: `"claim"`, `"settle"`, `"renew"`, `"recover"`… */
    operation: string;
    /** The error, as text. */
    error: string;
  };
}

/** The name of an event. */
export type TaskEventName = keyof TaskEventMap;

/** A listener for one kind of event. */
export type TaskEventListener<K extends TaskEventName> = (
  event: TaskEventMap[K],
) => void;

/**
 * A typed event emitter. Listeners run synchronously in subscription order;
 * one that throws is reported as an uncaught error later and does not stop
 * the others or the queue.
 */
export class TaskEvents {
  // Listener lists by event name; a list is replaced, never changed, so an
  // emit in progress keeps the list it started with.
  #listeners = new Map<TaskEventName, ((event: never) => void)[]>();

  /**
   * Subscribes to one kind of event.
   *
   * @param name The event.
   * @param listener Called with each event.
   * @returns A function that unsubscribes (idempotent).
   */
  on<K extends TaskEventName>(
    name: K,
    listener: TaskEventListener<K>,
  ): () => void {
    if (typeof listener !== "function") {
      throw new TypeError(
        `Cannot subscribe to ${name}: listener must be a function, got ${typeof listener}`,
      );
    }
    const add = listener as (event: never) => void;
    this.#listeners.set(name, [...(this.#listeners.get(name) ?? []), add]);
    return () => {
      const current = this.#listeners.get(name);
      if (current === undefined) return;
      const next = current.filter((l) => l !== add);
      if (next.length > 0) this.#listeners.set(name, next);
      else this.#listeners.delete(name);
    };
  }

  /**
   * Whether anyone listens to `name`: callers skip building an event
   * nobody reads.
   *
   * @param name The event.
   * @returns `true` when there is a listener.
   */
  wants(name: TaskEventName): boolean {
    return this.#listeners.has(name);
  }

  /**
   * Calls every listener of `name` with `event`.
   *
   * @param name The event.
   * @param event What the listeners receive.
   */
  emit<K extends TaskEventName>(name: K, event: TaskEventMap[K]): void {
    const list = this.#listeners.get(name) as
      | TaskEventListener<K>[]
      | undefined;
    if (list === undefined) return;
    for (let i = 0; i < list.length; i++) {
      try {
        list[i]!(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
