/**
 * A small HTTP server exposing `/metrics` (Prometheus text) and `/healthz`.
 *
 * @module
 */

/**
 * Options for {@linkcode serveMetrics}.
 *
 * @example Serving on an ephemeral port
 * ```ts
 * import { type MetricsServerOptions, serveMetrics } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * const options: MetricsServerOptions = {
 *   port: 0,
 *   metrics: () => "",
 *   healthy: () => true,
 * };
 * await using server = serveMetrics(options);
 * assert.ok(server.port > 0);
 * ```
 */
export interface MetricsServerOptions {
  /**
   * The TCP port; `0` picks a free one, reported by
   * {@linkcode MetricsServer.port}. Required.
   *
   * @default {none}
   */
  port: number;
  /**
   * The address to listen on.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * Renders the body of `GET /metrics`, in the Prometheus text format 0.0.4.
   * Required.
   *
   * @default {none}
   */
  metrics: () => string;
  /**
   * Whether `GET /healthz` answers 200 `ok`; when false it answers 503
   * `draining`. Required.
   *
   * @default {none}
   */
  healthy: () => boolean;
  /**
   * Shuts the server down when aborted.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * A running metrics server. `await using` shuts it down.
 *
 * @example Shutting down explicitly
 * ```ts
 * import { serveMetrics } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * const server = serveMetrics({
 *   port: 0,
 *   metrics: () => "",
 *   healthy: () => true,
 * });
 * assert.equal(server.hostname, "127.0.0.1");
 * await server.shutdown();
 * ```
 */
export interface MetricsServer extends AsyncDisposable {
  /** The bound port (the real one when `0` was asked for). */
  readonly port: number;
  /** The address listened on. */
  readonly hostname: string;
  /** Settles once the server has stopped. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting connections and waits for open ones to finish.
   * Calling it again returns the same promise.
   */
  shutdown(): Promise<void>;
}

/** The Prometheus text exposition content type. */
const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function text(body: string, status: number, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  if (!h.has("content-type")) {
    h.set("content-type", "text/plain; charset=utf-8");
  }
  return new Response(body, { status, headers: h });
}

function handle(
  request: Request,
  options: Pick<MetricsServerOptions, "metrics" | "healthy">,
): Response {
  const { pathname } = new URL(request.url);
  if (pathname !== "/metrics" && pathname !== "/healthz") {
    return text("not found\n", 404);
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return text("method not allowed\n", 405, { allow: "GET, HEAD" });
  }
  if (pathname === "/metrics") {
    let body: string;
    try {
      body = options.metrics();
    } catch (error) {
      return text(`Cannot render metrics: ${String(error)}\n`, 500);
    }
    return text(body, 200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  }
  let healthy = false;
  try {
    healthy = options.healthy() === true;
  } catch {
    // A health check that throws is unhealthy.
  }
  return healthy ? text("ok\n", 200) : text("draining\n", 503);
}

/**
 * Serves `GET /metrics` (200, `text/plain; version=0.0.4`) and
 * `GET /healthz` (200 `ok` while `healthy()` returns true, else 503
 * `draining`) over HTTP with `Deno.serve`, without printing a banner.
 * Other paths answer 404; other methods on these paths answer 405. A
 * throwing `metrics()` answers 500. Needs `--allow-net`.
 *
 * @param options See {@linkcode MetricsServerOptions}.
 * @returns The running server; dispose it or call `shutdown()` to stop.
 * @throws {RangeError} When `port` is not an integer from 0 to 65535.
 * @throws {TypeError} When `metrics` or `healthy` is not a function, or
 * `hostname` is not a non-empty string.
 *
 * @example Scraping metrics
 * ```ts
 * import { Metrics } from "@sluice/sluice";
 * import { serveMetrics } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * const metrics = new Metrics();
 * metrics.inc("succeeded");
 * await using server = serveMetrics({
 *   port: 0,
 *   metrics: () => metrics.toPrometheus(),
 *   healthy: () => true,
 * });
 * const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
 * assert.equal(response.status, 200);
 * assert.match(await response.text(), /^sluice_succeeded_total 1$/m);
 * ```
 */
export function serveMetrics(options: MetricsServerOptions): MetricsServer {
  const { port, hostname = "127.0.0.1", metrics, healthy, signal } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(
      `Cannot serve metrics: option "port" must be an integer from 0 to 65535, got ${port}`,
    );
  }
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError(
      `Cannot serve metrics: option "hostname" must be a non-empty string, got ${
        JSON.stringify(hostname)
      }`,
    );
  }
  if (typeof metrics !== "function") {
    throw new TypeError(
      `Cannot serve metrics: option "metrics" must be a function, got ${typeof metrics}`,
    );
  }
  if (typeof healthy !== "function") {
    throw new TypeError(
      `Cannot serve metrics: option "healthy" must be a function, got ${typeof healthy}`,
    );
  }
  const server = Deno.serve(
    {
      port,
      hostname,
      ...(signal === undefined ? {} : { signal }),
      onListen: () => {},
    },
    (request) => handle(request, { metrics, healthy }),
  );
  const addr = server.addr;
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= server.shutdown().then(() => server.finished);
    return stopping;
  };
  return {
    port: addr.port,
    hostname: addr.hostname,
    finished: server.finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
