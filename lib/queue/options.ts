/**
 * Checks {@linkcode TaskQueueOptions} and fills in their defaults, before
 * anything is opened: a bad option is refused with a `RangeError` or
 * `TypeError` naming it and its value.
 *
 * @module
 */
import { Logger } from "../log.ts";
import { Metrics } from "../metrics/metrics.ts";
import { checkWorkerPermissions } from "../pool/worker_permissions.ts";
import { RetryPolicy } from "../retry.ts";
import {
  checkQueueName,
  checkRetention,
  DEFAULT_QUEUE,
} from "../store/_shared.ts";
import type { RetentionPolicy } from "../store/store.ts";
import type { TaskQueueOptions } from "./types.ts";

/** The succeeded tasks a queue keeps unless told otherwise. */
export const DEFAULT_RETENTION: Readonly<RetentionPolicy> = Object.freeze({
  succeeded: Object.freeze({
    maxAgeMs: 24 * 60 * 60 * 1000,
    maxCount: 100_000,
  }),
});

/** Retention as the queue runs it. */
export interface ResolvedRetention {
  /** What to keep. */
  policy: RetentionPolicy;
  /** Milliseconds between rounds. */
  intervalMs: number;
  /** Tasks deleted per transaction. */
  batchSize: number;
}

/** The options a queue runs with, checked and with defaults applied. */
export interface ResolvedOptions {
  /** Channel capacity. */
  capacity: number;
  /** What a full channel does. */
  overflow: "block" | "reject";
  /** Per-task timeout, ms (0: none). */
  timeoutMs: number;
  /** Grace after a timeout or cancel, ms. */
  graceMs: number;
  /** Lease length, ms. */
  leaseMs: number;
  /** Claimed beyond free slots; `undefined` means workers × concurrency. */
  prefetch: number | undefined;
  /** Poll interval, ms. */
  pollIntervalMs: number;
  /** The retry policy. */
  retry: RetryPolicy;
  /** The logger. */
  logger: Logger;
  /** The metrics sink. */
  metrics: Metrics;
  /** Retention, or `null` to keep everything. */
  retention: ResolvedRetention | null;
  /** The named queues this process claims from, without repeats. */
  queues: readonly string[];
  /** Per-queue concurrency limits, by queue name. */
  queueConcurrency: ReadonlyMap<string, number>;
}

/**
 * Checks the options and applies the defaults.
 *
 * @param options What the caller passed.
 * @returns The checked options.
 * @throws {RangeError} When a number is out of range.
 * @throws {TypeError} When an option has the wrong type.
 */
export function resolveOptions(options: TaskQueueOptions): ResolvedOptions {
  const capacity = options.capacity ?? 1024;
  positiveInteger("capacity", capacity);
  const overflow = options.overflow ?? "block";
  if (overflow !== "block" && overflow !== "reject") {
    throw new TypeError(
      `Cannot open queue: overflow must be "block" or "reject", got ${
        String(overflow)
      }`,
    );
  }
  if (options.workers !== undefined) {
    positiveInteger("workers", options.workers);
  }
  if (options.concurrency !== undefined) {
    positiveInteger("concurrency", options.concurrency);
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  nonNegative("timeoutMs", timeoutMs);
  const graceMs = options.graceMs ?? 1000;
  nonNegative("graceMs", graceMs);
  const leaseMs = options.leaseMs ?? 30_000;
  positiveInteger("leaseMs", leaseMs);
  if (options.prefetch !== undefined) {
    nonNegative("prefetch", options.prefetch);
    if (!Number.isInteger(options.prefetch)) {
      throw new RangeError(
        `Cannot open queue: prefetch must be an integer >= 0, got ${options.prefetch}`,
      );
    }
  }
  const pollIntervalMs = options.pollIntervalMs ?? 100;
  positiveInteger("pollIntervalMs", pollIntervalMs);
  checkWorkerPermissions(options.permissions ?? "inherit", "open queue");
  return {
    capacity,
    overflow,
    timeoutMs,
    graceMs,
    leaseMs,
    prefetch: options.prefetch,
    pollIntervalMs,
    retry: options.retry instanceof RetryPolicy
      ? options.retry
      : new RetryPolicy(options.retry),
    logger: options.logger instanceof Logger
      ? options.logger
      : new Logger({ level: "warn", ...options.logger }),
    metrics: options.metrics ?? new Metrics(),
    retention: resolveRetention(options.retention),
    ...resolveQueueOptions(options),
  };
}

function resolveQueueOptions(
  options: TaskQueueOptions,
): Pick<ResolvedOptions, "queues" | "queueConcurrency"> {
  const queues = resolveQueues(options.queues);
  const given = options.queueConcurrency;
  const queueConcurrency = new Map<string, number>();
  if (given === undefined) return { queues, queueConcurrency };
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    throw new TypeError(
      `Cannot open queue: queueConcurrency must be an object of limits by queue name, got ${
        given === null ? "null" : Array.isArray(given) ? "array" : typeof given
      }`,
    );
  }
  for (const [name, limit] of Object.entries(given)) {
    if (!queues.includes(name)) {
      throw new RangeError(
        `Cannot open queue: queueConcurrency names queue ${
          JSON.stringify(name)
        }, which is not one of queues (${queues.join(", ")})`,
      );
    }
    positiveInteger(`queueConcurrency.${name}`, limit);
    queueConcurrency.set(name, limit);
  }
  return { queues, queueConcurrency };
}

function resolveQueues(given: TaskQueueOptions["queues"]): readonly string[] {
  if (given === undefined) return [DEFAULT_QUEUE];
  if (!Array.isArray(given)) {
    throw new TypeError(
      `Cannot open queue: queues must be an array of names, got ${typeof given}`,
    );
  }
  if (given.length === 0) {
    throw new RangeError(
      "Cannot open queue: queues must name at least one queue, got []",
    );
  }
  for (let i = 0; i < given.length; i++) {
    checkQueueName(given[i], `queues[${i}]`, "open queue");
  }
  return [...new Set(given as string[])];
}

function resolveRetention(
  given: TaskQueueOptions["retention"],
): ResolvedRetention | null {
  if (given === false) return null;
  if (
    given !== undefined &&
    (typeof given !== "object" || given === null || Array.isArray(given))
  ) {
    throw new TypeError(
      `Cannot open queue: retention must be an object or false, got ${
        given === null ? "null" : Array.isArray(given) ? "array" : typeof given
      }`,
    );
  }
  const { intervalMs = 1000, batchSize = 500, ...rules } = given ?? {};
  positiveInteger("retention.intervalMs", intervalMs);
  positiveInteger("retention.batchSize", batchSize);
  for (const name of Object.keys(rules)) {
    if (name !== "succeeded" && name !== "dead" && name !== "queues") {
      throw new TypeError(
        `Cannot open queue: retention has no option ${JSON.stringify(name)}`,
      );
    }
  }
  const policy: RetentionPolicy = {
    succeeded: rules.succeeded ?? DEFAULT_RETENTION.succeeded!,
    ...(rules.dead !== undefined && { dead: rules.dead }),
    ...(rules.queues !== undefined && { queues: rules.queues }),
  };
  try {
    checkRetention(policy, 0, "open queue");
  } catch (error) {
    const message = (error as Error).message.replaceAll(
      /\bpolicy\b/g,
      "retention",
    );
    throw error instanceof RangeError
      ? new RangeError(message)
      : new TypeError(message);
  }
  return { policy, intervalMs, batchSize };
}

/**
 * Checks a close deadline.
 *
 * @param deadline Milliseconds.
 * @throws {RangeError} When it is negative or not finite.
 */
export function checkDeadline(deadline: unknown): void {
  nonNegative("deadline", deadline);
}

function positiveInteger(name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot open queue: ${name} must be an integer >= 1, got ${
        String(value)
      }`,
    );
  }
}

function nonNegative(name: string, value: unknown): void {
  if (typeof value !== "number" || !(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot open queue: ${name} must be a finite number >= 0, got ${
        String(value)
      }`,
    );
  }
}
