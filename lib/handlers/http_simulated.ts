/**
 * The `http.simulated` handler: a fake HTTP call with seeded latency and
 * status codes, and no network.
 *
 * @module
 */
import { delay } from "../_delay.ts";
import { mulberry32, seedFrom } from "../_rng.ts";
import { PermanentError, TransientError } from "../errors.ts";
import type { TaskContext } from "../handler.ts";

/** The methods `http.simulated` accepts. */
export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD";

const METHODS: readonly HttpMethod[] = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "HEAD",
];

/**
 * Payload of the `http.simulated` task type.
 *
 * ```json
 * { "url": "https://example.com/items/1", "method": "GET", "timeout_ms": 100 }
 * ```
 */
export interface HttpSimulatedPayload {
  /** An absolute `http:` or `https:` URL. */
  url: string;
  /** The request method. */
  method: HttpMethod;
  /** Time out (transient) when the drawn latency exceeds this; 1 to 600,000 ms. */
  timeout_ms?: number;
}

/** What `http.simulated` returns on a 2xx or 3xx status. */
export interface HttpSimulatedResult {
  /** The drawn status code. */
  status: number;
  /** The drawn latency that was waited, in ms. */
  latency_ms: number;
}

/** How simulated requests behave. */
export interface HttpSimulatedConfig {
  /**
   * Mean latency in ms.
   *
   * @default {20}
   */
  latencyMs?: number;
  /**
   * Latency varies uniformly by up to this many ms either way.
   *
   * @default {10}
   */
  jitterMs?: number;
  /**
   * Status codes and their relative weights.
   *
   * @default {{ 200: 0.95, 404: 0.02, 503: 0.03 }}
   */
  statuses?: Record<number, number>;
}

/** A handler for `http.simulated`. */
export type HttpSimulatedHandler = (
  payload: HttpSimulatedPayload,
  ctx: TaskContext,
) => Promise<HttpSimulatedResult>;

/**
 * Builds an `http.simulated` handler with its own latency and status mix.
 * Each attempt draws from a PRNG seeded by `taskId` and `attempt`, so a run
 * is reproducible whatever the scheduling. 5xx statuses and timeouts throw
 * `TransientError`, 4xx throw `PermanentError`.
 *
 * @param config Latency, jitter and status weights.
 * @returns The handler.
 * @throws {RangeError} When a latency is negative, jitter exceeds latency,
 * or a status or weight is invalid.
 *
 * @example A backend that always answers 503
 * ```ts
 * import { createHttpSimulated } from "./http_simulated.ts";
 * import { TransientError, type TaskContext } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const handler = createHttpSimulated({ latencyMs: 0, jitterMs: 0, statuses: { 503: 1 } });
 * const ctx = { signal: new AbortController().signal, taskId: "t1", attempt: 1 } as TaskContext;
 * await assert.rejects(handler({ url: "https://example.com", method: "GET" }, ctx), TransientError);
 * ```
 */
export function createHttpSimulated(
  config: HttpSimulatedConfig = {},
): HttpSimulatedHandler {
  const latencyMs = config.latencyMs ?? 20;
  const jitterMs = config.jitterMs ?? 10;
  const statuses = config.statuses ?? { 200: 0.95, 404: 0.02, 503: 0.03 };
  if (!Number.isFinite(latencyMs) || latencyMs < 0) {
    throw new RangeError(
      `Cannot create http.simulated: latencyMs must be a finite number >= 0, got ${latencyMs}`,
    );
  }
  if (!Number.isFinite(jitterMs) || jitterMs < 0 || jitterMs > latencyMs) {
    throw new RangeError(
      `Cannot create http.simulated: jitterMs must be from 0 to latencyMs (${latencyMs}), got ${jitterMs}`,
    );
  }
  const table: Array<[number, number]> = [];
  let totalWeight = 0;
  for (const [key, weight] of Object.entries(statuses)) {
    const status = Number(key);
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new RangeError(
        `Cannot create http.simulated: statuses keys must be HTTP status codes, got ${key}`,
      );
    }
    if (!Number.isFinite(weight) || weight < 0) {
      throw new RangeError(
        `Cannot create http.simulated: statuses[${key}] must be a weight >= 0, got ${weight}`,
      );
    }
    totalWeight += weight;
    table.push([status, totalWeight]);
  }
  if (totalWeight <= 0) {
    throw new RangeError(
      "Cannot create http.simulated: statuses must have a positive total weight, got 0",
    );
  }
  return async (payload, ctx) => {
    const { url, method, timeout } = checkPayload(payload);
    const random = mulberry32(
      seedFrom("http.simulated", ctx.taskId, ctx.attempt),
    );
    const latency = Math.round(latencyMs + (random() * 2 - 1) * jitterMs);
    const draw = random() * totalWeight;
    const status = (table.find(([, upTo]) => draw < upTo) ?? table.at(-1)!)[0];
    if (timeout !== undefined && latency > timeout) {
      await delay(timeout, ctx.signal);
      throw new TransientError(
        `Cannot run http.simulated: ${method} ${url} timed out after ${timeout} ms`,
      );
    }
    await delay(latency, ctx.signal);
    if (status >= 500) {
      throw new TransientError(
        `Cannot run http.simulated: ${method} ${url} returned ${status}`,
      );
    }
    if (status >= 400) {
      throw new PermanentError(
        `Cannot run http.simulated: ${method} ${url} returned ${status}`,
      );
    }
    return { status, latency_ms: latency };
  };
}

function checkPayload(
  payload: HttpSimulatedPayload,
): { url: string; method: HttpMethod; timeout: number | undefined } {
  const p = payload as unknown as Record<string, unknown> | null;
  if (typeof p !== "object" || p === null) {
    throw new PermanentError(
      `Cannot run http.simulated: payload must be an object, got ${
        JSON.stringify(p)
      }`,
    );
  }
  const url = p.url;
  const parsed = typeof url === "string" && URL.canParse(url)
    ? new URL(url)
    : null;
  if (
    parsed === null ||
    (parsed.protocol !== "http:" && parsed.protocol !== "https:")
  ) {
    throw new PermanentError(
      `Cannot run http.simulated: payload.url must be an http or https URL, got ${
        JSON.stringify(url)
      }`,
    );
  }
  if (!METHODS.includes(p.method as HttpMethod)) {
    throw new PermanentError(
      `Cannot run http.simulated: payload.method must be one of ${
        METHODS.join(", ")
      }, got ${JSON.stringify(p.method)}`,
    );
  }
  const timeout = p.timeout_ms;
  if (
    timeout !== undefined &&
    (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout < 1 ||
      timeout > 600_000)
  ) {
    throw new PermanentError(
      `Cannot run http.simulated: payload.timeout_ms must be a number from 1 to 600000, got ${
        JSON.stringify(timeout)
      }`,
    );
  }
  return {
    url: url as string,
    method: p.method as HttpMethod,
    timeout: timeout as number | undefined,
  };
}

/**
 * Handler for `http.simulated` with the default behaviour: latency
 * 20 ms ± 10 ms; status 200 (95 %), 404 (2 %), 503 (3 %). See
 * {@linkcode createHttpSimulated} for a different mix.
 *
 * @param payload `{ url, method, timeout_ms? }`.
 * @param ctx The task context; `signal`, `taskId` and `attempt` are used.
 * @returns `{ status, latency_ms }`.
 * @throws {PermanentError} When the payload is malformed or the status is 4xx.
 * @throws {TransientError} When the status is 5xx or the request times out.
 *
 * @example A simulated GET
 * ```ts
 * import { httpSimulated } from "./http_simulated.ts";
 * import { PermanentError, TransientError, type TaskContext } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const ctx = { signal: new AbortController().signal, taskId: "t1", attempt: 1 } as TaskContext;
 * try {
 *   const result = await httpSimulated({ url: "https://example.com", method: "GET" }, ctx);
 *   assert.equal(result.status, 200);
 * } catch (error) {
 *   assert.ok(error instanceof TransientError || error instanceof PermanentError);
 * }
 * ```
 */
export const httpSimulated: HttpSimulatedHandler = createHttpSimulated();
