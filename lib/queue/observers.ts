/**
 * The queue's own subscribers: metrics and the structured log follow the
 * queue through its events, like any user's listener, so the control flow
 * never calls them.
 *
 * @module
 */
import { turnNow } from "../_clock.ts";
import type { LogFields, Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { FailureEvent, TaskEventBase, TaskEvents } from "./events.ts";

/**
 * Subscribes `metrics` to the events: counters, queue depth, in-flight
 * tasks, latencies and live workers.
 *
 * @param events The queue's events.
 * @param metrics The sink.
 * @param inFlight Reads the tasks in worker slots now.
 */
export function observeMetrics(
  events: TaskEvents,
  metrics: Metrics,
  inFlight: () => number,
): void {
  events.on("submitted", (e) => metrics.recordEnqueue(e.depth, turnNow()));
  events.on("deduplicated", () => metrics.inc("deduplicated"));
  events.on("rejected", (e) => metrics.inc("rejected", e.count));
  events.on("dispatched", (e) => {
    metrics.recordDequeue(e.depth, turnNow());
    metrics.setInFlight(e.inFlight);
  });
  events.on("succeeded", (e) => {
    metrics.inc("succeeded");
    metrics.recordLatency(e.waitMs, e.runMs);
    metrics.setInFlight(inFlight());
  });
  const failed = (e: FailureEvent): void => {
    metrics.inc(
      e.errorClass === "transient" ? "failed_transient" : "failed_permanent",
    );
    if (e.errorName === "TaskTimeoutError") metrics.inc("timed_out");
    metrics.recordLatency(e.waitMs, e.runMs);
    metrics.setInFlight(inFlight());
  };
  events.on("retry", (e) => {
    failed(e);
    metrics.inc("retried");
  });
  events.on("dead", (e) => {
    failed(e);
    metrics.inc("dead_lettered");
  });
  events.on("released", () => metrics.setInFlight(inFlight()));
  events.on("stale_settle", () => metrics.inc("stale_settles"));
  events.on("pruned", (e) => metrics.inc("pruned", e.succeeded + e.dead));
  events.on("cancelled", (e) => {
    if (e.reason === "cancelled") metrics.inc("cancelled");
  });
  events.on("worker_replaced", (e) => {
    metrics.inc("workers_replaced");
    metrics.setWorkersAlive(e.alive);
  });
}

/** The fields every task's log line carries. */
function taskFields(e: TaskEventBase, extra: LogFields = {}): LogFields {
  return {
    task_id: e.id,
    idempotency_key: e.idempotencyKey,
    type: e.type,
    queue: e.queue,
    ...extra,
  };
}

/**
 * Subscribes `logger` to the events worth a line: outcomes, hand-backs,
 * lost leases and store trouble.
 *
 * @param events The queue's events.
 * @param logger The structured log.
 */
export function observeLog(events: TaskEvents, logger: Logger): void {
  events.on("succeeded", (e) => {
    if (!logger.enabled("debug")) return;
    logger.debug(
      "task_succeeded",
      taskFields(e, { attempt: e.attempt, duration_ms: e.runMs }),
    );
  });
  const failure = (e: FailureEvent): LogFields =>
    taskFields(e, {
      attempt: e.attempt,
      error_class: e.errorClass,
      error: e.error,
      duration_ms: e.runMs,
    });
  events.on("retry", (e) => {
    if (logger.enabled("info")) logger.info("task_retry", failure(e));
  });
  events.on("dead", (e) => logger.error("task_dead", failure(e)));
  events.on("released", (e) =>
    logger.info(
      "task_released",
      taskFields(e, { reason: e.reason, refunded: e.refunded }),
    ));
  events.on(
    "cancelled",
    (e) => logger.info("task_cancelled", taskFields(e, { reason: e.reason })),
  );
  events.on(
    "stale_settle",
    (e) => logger.warn("stale_settle", taskFields(e)),
  );
  events.on(
    "lease_lost",
    (e) => logger.warn("lease_lost", taskFields(e, { state: e.state })),
  );
  events.on("worker_replaced", (e) =>
    logger.warn("worker_replaced", {
      worker_id: e.workerId,
      reason: e.reason,
    }));
  events.on("pruned", (e) => {
    if (logger.enabled("debug")) {
      logger.debug("tasks_pruned", { succeeded: e.succeeded, dead: e.dead });
    }
  });
  events.on(
    "recovered",
    (e) => logger.warn("leases_recovered", { tasks: e.count }),
  );
  events.on("store_unavailable", (e) =>
    logger.warn("store_unavailable", {
      error: e.error,
      failures: e.failures,
      retry_in_ms: e.retryInMs,
    }));
  events.on(
    "store_error",
    (e) => logger.error(`${e.operation}_failed`, { error: e.error }),
  );
}
