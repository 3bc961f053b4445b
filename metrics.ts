/**
 * Observability beyond `queue.metrics`: the counter table, the snapshot's
 * parts, the latency histogram, and a Prometheus endpoint to serve any
 * `Metrics` from.
 *
 * @example Serving a queue's metrics
 * ```ts
 * import { TaskQueue } from "@sluice/sluice";
 * import { serveMetrics } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * await using queue = await TaskQueue.open({ workers: 1 });
 * await using server = serveMetrics({
 *   port: 0,
 *   metrics: () => queue.metrics.toPrometheus(),
 *   healthy: () => !queue.closed,
 * });
 * const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
 * assert.match(await response.text(), /sluice_enqueued_total 0/);
 * ```
 *
 * @module
 */
export {
  type CounterName,
  COUNTERS,
  type CounterValues,
  type LatencySummary,
  Metrics,
  type MetricsOptions,
  type MetricsSnapshot,
  type TaskStateCounts,
  type WorkerStats,
  type WorkerUtilization,
} from "./lib/metrics/metrics.ts";
export {
  Histogram,
  type HistogramOptions,
  type HistogramSummary,
} from "./lib/metrics/histogram.ts";
export {
  type MetricsServer,
  type MetricsServerOptions,
  serveMetrics,
} from "./lib/metrics/server.ts";
