/**
 * Checks {@linkcode TaskQueueOptions} and fills in their defaults, before
 * anything is opened: a bad option is refused with a `RangeError` or
 * `TypeError` naming it and its value.
 *
 * @module
 */
import { Logger } from "../log.ts";
import { Metrics } from "../metrics/metrics.ts";
import { RetryPolicy } from "../retry.ts";
import type { TaskQueueOptions } from "./types.ts";

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
  };
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
