import assert from "node:assert/strict";
import { Metrics } from "../../lib/metrics/metrics.ts";
import {
  type MetricsServerOptions,
  serveMetrics,
} from "../../lib/metrics/server.ts";
import { withDeadline } from "../_helpers.ts";

function options(
  overrides: Partial<MetricsServerOptions> = {},
): MetricsServerOptions {
  return {
    port: 0,
    metrics: () => "sluice_up 1\n",
    healthy: () => true,
    ...overrides,
  };
}

async function get(
  port: number,
  path: string,
  method = "GET",
): Promise<{ status: number; type: string | null; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    body: await response.text(),
  };
}

Deno.test("serveMetrics() serves Prometheus text on /metrics when scraped", async () => {
  const metrics = new Metrics();
  metrics.inc("enqueued", 7);
  await using server = serveMetrics(
    options({ metrics: () => metrics.toPrometheus() }),
  );
  assert.ok(server.port > 0, "port 0 reports the bound port");
  assert.equal(server.hostname, "127.0.0.1");
  const { status, type, body } = await get(server.port, "/metrics");
  assert.equal(status, 200);
  assert.match(type ?? "", /^text\/plain; version=0\.0\.4/);
  assert.match(body, /^# TYPE sluice_enqueued_total counter$/m);
  assert.match(body, /^sluice_enqueued_total 7$/m);
});

Deno.test("serveMetrics() answers /healthz 200 then 503 when healthy() flips", async () => {
  let healthy = true;
  await using server = serveMetrics(options({ healthy: () => healthy }));
  assert.deepEqual(
    await get(server.port, "/healthz"),
    { status: 200, type: "text/plain; charset=utf-8", body: "ok\n" },
  );
  healthy = false;
  const draining = await get(server.port, "/healthz");
  assert.equal(draining.status, 503);
  assert.equal(draining.body, "draining\n");
});

Deno.test("serveMetrics() answers 503 when healthy() throws", async () => {
  await using server = serveMetrics(options({
    healthy: () => {
      throw new Error("Cannot check health: store closed");
    },
  }));
  assert.equal((await get(server.port, "/healthz")).status, 503);
});

Deno.test("serveMetrics() answers 404 when the path is unknown", async () => {
  await using server = serveMetrics(options());
  for (const path of ["/", "/metrics/x", "/health", "/favicon.ico"]) {
    const { status } = await get(server.port, path);
    assert.equal(status, 404, path);
  }
});

Deno.test("serveMetrics() answers 405 when the method is not GET", async () => {
  await using server = serveMetrics(options());
  const response = await fetch(`http://127.0.0.1:${server.port}/metrics`, {
    method: "POST",
  });
  await response.body?.cancel();
  assert.equal(response.status, 405);
  assert.equal(response.headers.get("allow"), "GET, HEAD");
});

Deno.test("serveMetrics() answers 500 when metrics() throws", async () => {
  await using server = serveMetrics(options({
    metrics: () => {
      throw new Error("boom");
    },
  }));
  const { status, body } = await get(server.port, "/metrics");
  assert.equal(status, 500);
  assert.match(body, /^Cannot render metrics: Error: boom/);
});

Deno.test("MetricsServer.shutdown() stops the server and is idempotent when called twice", async () => {
  const server = serveMetrics(options());
  const port = server.port;
  assert.equal((await get(port, "/healthz")).status, 200);
  const first = server.shutdown();
  assert.equal(server.shutdown(), first);
  await withDeadline(first, 5_000, "shutdown");
  await withDeadline(server.finished, 5_000, "finished");
  await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  await server[Symbol.asyncDispose]();
});

Deno.test("serveMetrics() shuts down when the signal aborts", async () => {
  const controller = new AbortController();
  const server = serveMetrics(options({ signal: controller.signal }));
  assert.equal((await get(server.port, "/healthz")).status, 200);
  controller.abort();
  await withDeadline(server.finished, 5_000, "finished after abort");
  await withDeadline(server.shutdown(), 5_000, "shutdown after abort");
});

Deno.test("serveMetrics() throws naming the option when options are invalid", () => {
  assert.throws(
    () => serveMetrics(options({ port: 70_000 })),
    /^RangeError: .*"port".*got 70000$/,
  );
  assert.throws(() => serveMetrics(options({ port: -1 })), RangeError);
  assert.throws(
    () => serveMetrics(options({ hostname: "" })),
    /^TypeError: .*"hostname"/,
  );
  assert.throws(
    () => serveMetrics(options({ metrics: "x" as unknown as () => string })),
    /^TypeError: .*"metrics".*got string$/,
  );
  assert.throws(
    () =>
      serveMetrics(options({ healthy: undefined as unknown as () => boolean })),
    /^TypeError: .*"healthy"/,
  );
});
