import assert from "node:assert/strict";
import { PermanentError, TransientError } from "../../lib/errors.ts";
import type { TaskContext, TaskLogger } from "../../lib/handler.ts";
import * as builtin from "../../lib/handlers/builtin.ts";
import { compute } from "../../lib/handlers/compute.ts";
import { fail } from "../../lib/handlers/fail.ts";
import {
  createHttpSimulated,
  httpSimulated,
} from "../../lib/handlers/http_simulated.ts";
import { imageVariant } from "../../lib/handlers/image/image_variant.ts";
import { noop } from "../../lib/handlers/noop.ts";
import { sleep } from "../../lib/handlers/sleep.ts";
import { ObjectStore } from "../../lib/objects.ts";
import { decodePng, encodePng } from "../../lib/handlers/image/png.ts";
import { isPending, runProbe, tempDir, withDeadline } from "../_helpers.ts";

const MiB = 1024 * 1024;

const silent: TaskLogger = {
  debug(): void {},
  info(): void {},
  warn(): void {},
  error(): void {},
};

function context(
  objects: ObjectStore,
  signal: AbortSignal = new AbortController().signal,
  overrides: Partial<TaskContext> = {},
): TaskContext {
  return {
    signal,
    attempt: 1,
    taskId: "task-1",
    idempotencyKey: null,
    type: "test",
    objects,
    log: silent,
    checkpointed: undefined,
    progress(): void {},
    checkpoint: (): Promise<void> => Promise.resolve(),
    ...overrides,
  };
}

/** A gradient with a little deterministic noise, generated row by row. */
function gradientRows(
  width: number,
  height: number,
): ReadableStream<Uint8Array> {
  let y = 0;
  let state = 12345;
  return new ReadableStream<Uint8Array>({
    pull(controller): void {
      if (y === height) return controller.close();
      const row = new Uint8Array(width * 4);
      for (let x = 0; x < width; x++) {
        state = (state * 1103515245 + 12345) >>> 0;
        const noise = state >>> 28;
        row[x * 4] = (x * 255 / width + noise) & 0xff;
        row[x * 4 + 1] = (y * 255 / height) & 0xff;
        row[x * 4 + 2] = ((x + y) & 0xff) ^ noise;
        row[x * 4 + 3] = 255;
      }
      controller.enqueue(row);
      y++;
    },
  });
}

async function putImage(
  objects: ObjectStore,
  key: string,
  width: number,
  height: number,
): Promise<void> {
  await objects.put(
    key,
    encodePng({ width, height }, gradientRows(width, height)),
  );
}

// The signature the test asserts against; a stray message would not match.
function permanent(pattern: RegExp): (error: unknown) => boolean {
  return (error) =>
    error instanceof PermanentError && pattern.test(error.message);
}

Deno.test("builtin module exports each handler under its task type", () => {
  const handlers = builtin as unknown as Record<string, unknown>;
  assert.equal(handlers["image.variant"], imageVariant);
  assert.equal(handlers["http.simulated"], httpSimulated);
  assert.equal(handlers.compute, compute);
  assert.equal(handlers.sleep, sleep);
  assert.equal(handlers.fail, fail);
  assert.equal(handlers.noop, noop);
});

Deno.test("imageVariant() writes a resized PNG when the source exists", async () => {
  await using dir = await tempDir();
  const objects = new ObjectStore(dir.path);
  await putImage(objects, "photos/cat.png", 120, 80);
  const result = await imageVariant(
    { image_key: "photos/cat.png", size: "30x20" },
    context(objects),
  );
  assert.equal(result.output_key, "variants/photos/cat.png@30x20.png");
  assert.deepEqual([result.width, result.height], [30, 20]);
  assert.equal((await objects.stat(result.output_key))?.size, result.bytes);
  const decoded = await decodePng(await objects.get(result.output_key));
  assert.deepEqual([decoded.width, decoded.height], [30, 20]);
  const rows = await Array.fromAsync(decoded.rows);
  assert.equal(rows.length, 20);
});

Deno.test("imageVariant() writes identical bytes when the same task runs twice", async () => {
  await using dir = await tempDir();
  const objects = new ObjectStore(dir.path);
  await putImage(objects, "a.png", 97, 61);
  const payload = { image_key: "a.png", size: "40x33" };
  const first = await imageVariant(payload, context(objects));
  const bytesA = await Deno.readFile(`${dir.path}/${first.output_key}`);
  const second = await imageVariant(
    payload,
    context(objects, undefined, { attempt: 2 }),
  );
  const bytesB = await Deno.readFile(`${dir.path}/${second.output_key}`);
  assert.deepEqual(second, first);
  assert.deepEqual(bytesB, bytesA);
});

Deno.test("imageVariant() throws PermanentError naming the field when the payload is bad", async (t) => {
  await using dir = await tempDir();
  const objects = new ObjectStore(dir.path);
  const cases: Array<[unknown, RegExp]> = [
    [null, /payload must be an object/],
    [{ size: "2x2" }, /payload\.image_key must be a non-empty string/],
    [{ image_key: "", size: "2x2" }, /payload\.image_key/],
    [
      { image_key: "a.png", size: "big" },
      /^Cannot run image\.variant: payload\.size must look like 200x200, got "big"$/,
    ],
    [{ image_key: "a.png", size: "0x10" }, /payload\.size must look like/],
    [{ image_key: "a.png", size: 200 }, /payload\.size must look like/],
    [
      { image_key: "a.png", size: "8193x10" },
      /payload\.size must be at most 8192x8192/,
    ],
    [
      { image_key: "../a.png", size: "2x2" },
      /payload\.image_key is not a valid key/,
    ],
  ];
  for (const [payload, pattern] of cases) {
    await t.step(JSON.stringify(payload), async () => {
      await assert.rejects(
        imageVariant(payload as never, context(objects)),
        permanent(pattern),
      );
    });
  }
});

Deno.test("imageVariant() throws PermanentError when the source is missing or not a PNG", async () => {
  await using dir = await tempDir();
  const objects = new ObjectStore(dir.path);
  await assert.rejects(
    imageVariant({ image_key: "nope.png", size: "2x2" }, context(objects)),
    permanent(/source object "nope\.png" does not exist/),
  );
  await objects.put(
    "text.png",
    ReadableStream.from([new TextEncoder().encode("hello")]),
  );
  await assert.rejects(
    imageVariant({ image_key: "text.png", size: "2x2" }, context(objects)),
    permanent(/Cannot decode PNG/),
  );
  assert.deepEqual(await Array.fromAsync(objects.list("variants/")), []);
});

Deno.test("imageVariant() leaves no output when the signal aborts mid-work", async () => {
  await using dir = await tempDir();
  const objects = new ObjectStore(dir.path, { chunkSize: 1024 });
  await putImage(objects, "big.png", 600, 400);
  const controller = new AbortController();
  const running = imageVariant(
    { image_key: "big.png", size: "100x100" },
    context(objects, controller.signal),
  );
  // Abort once the output's temp file exists, i.e. mid-stream.
  const variants = `${dir.path}/variants`;
  await withDeadline(
    (async () => {
      while (true) {
        const names = await Array.fromAsync(Deno.readDir(variants)).catch(
          () => [],
        );
        if (names.length > 0) return;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })(),
    5000,
    "the output temp file",
  );
  controller.abort(new Error("task timed out"));
  await assert.rejects(
    withDeadline(running, 5000, "the aborted task"),
    /task timed out/,
  );
  assert.deepEqual(await Array.fromAsync(objects.list("variants/")), []);
  assert.deepEqual(await Array.fromAsync(Deno.readDir(variants)), []);
});

Deno.test("imageVariant() transforms a 50 MiB PNG with peak RSS growth far below the image size", async () => {
  await using dir = await tempDir();
  const objects = new ObjectStore(dir.path);
  // 4000x3300 RGBA is 50.4 MiB of pixels; stored with filter None so the
  // file is large too, written by the streaming encoder.
  const width = 4000, height = 3300;
  const written = await objects.put(
    "huge.png",
    encodePng({ width, height }, gradientRows(width, height), { filter: 0 }),
  );
  assert.ok(written.size > 1 * MiB, `source is ${written.size} bytes`);
  const url = (path: string): string => new URL(path, import.meta.url).href;
  const report = await runProbe(
    dir.path,
    `import { ObjectStore } from ${JSON.stringify(url("../../lib/objects.ts"))};
import { imageVariant } from ${
      JSON.stringify(url("../../lib/handlers/image/image_variant.ts"))
    };
import { encodePng } from ${
      JSON.stringify(url("../../lib/handlers/image/png.ts"))
    };
const objects = new ObjectStore(Deno.args[0]);
const log = { debug() {}, info() {}, warn() {}, error() {} };
const ctx = { signal: new AbortController().signal, attempt: 1, taskId: "t", idempotencyKey: null, type: "image.variant", objects, log };
let peak = 0;
const sample = () => { const r = Deno.memoryUsage().rss; if (r > peak) peak = r; };
// Warm up on a 4 MiB image so the baseline includes the JIT and the
// steady-state heap; what grows after it grows with the image.
const row = new Uint8Array(1024 * 4).map((_, i) => (i * 7) & 0xff);
await objects.put("warm.png", encodePng({ width: 1024, height: 1024 }, ReadableStream.from(Array(1024).fill(row)), { filter: 0 }));
await imageVariant({ image_key: "warm.png", size: "400x330" }, ctx);
const baseline = Deno.memoryUsage().rss;
peak = baseline;
const timer = setInterval(sample, 1);
const result = await imageVariant({ image_key: "huge.png", size: "400x330" }, ctx);
sample();
clearInterval(timer);
console.log(JSON.stringify({ baseline, peak, result }));
`,
  ) as {
    baseline: number;
    peak: number;
    result: { width: number; height: number; output_key: string };
  };
  assert.deepEqual([report.result.width, report.result.height], [400, 330]);
  const growth = report.peak - report.baseline;
  assert.ok(
    growth < 25 * MiB,
    `peak RSS grew by ${(growth / MiB).toFixed(1)} MiB for a ${
      ((width * height * 4) / MiB).toFixed(1)
    } MiB image`,
  );
  const decoded = await decodePng(await objects.get(report.result.output_key));
  assert.equal((await Array.fromAsync(decoded.rows)).length, 330);
});

Deno.test("compute() returns exact decimal strings when values are in range", () => {
  const ctx = context(new ObjectStore("/nonexistent"));
  assert.deepEqual(compute({ operation: "factorial", value: 0 }, ctx), {
    result: "1",
  });
  assert.deepEqual(compute({ operation: "factorial", value: 25 }, ctx), {
    result: "15511210043330985984000000",
  });
  assert.deepEqual(compute({ operation: "fibonacci", value: 0 }, ctx), {
    result: "0",
  });
  assert.deepEqual(compute({ operation: "fibonacci", value: 10 }, ctx), {
    result: "55",
  });
  assert.deepEqual(compute({ operation: "fibonacci", value: 100 }, ctx), {
    result: "354224848179261915075",
  });
  assert.deepEqual(compute({ operation: "double", value: -1e15 }, ctx), {
    result: "-2000000000000000",
  });
  const big = compute({ operation: "factorial", value: 5000 }, ctx).result;
  assert.equal(big.length, 16326);
  const fib = compute({ operation: "fibonacci", value: 100_000 }, ctx).result;
  assert.equal(fib.length, 20899);
});

Deno.test("compute() throws PermanentError naming the field when the payload is bad", async (t) => {
  const ctx = context(new ObjectStore("/nonexistent"));
  const cases: Array<[unknown, RegExp]> = [
    [null, /payload must be an object/],
    [{ operation: "sqrt", value: 4 }, /payload\.operation must be/],
    [{ value: 4 }, /payload\.operation must be/],
    [
      { operation: "factorial", value: 5001 },
      /payload\.value must be an integer from 0 to 5000/,
    ],
    [{ operation: "factorial", value: -1 }, /payload\.value/],
    [{ operation: "fibonacci", value: 100_001 }, /payload\.value .* 100000/],
    [{ operation: "double", value: 2e15 }, /payload\.value/],
    [{ operation: "double", value: 1.5 }, /payload\.value must be an integer/],
    [{ operation: "double", value: "4" }, /payload\.value/],
  ];
  for (const [payload, pattern] of cases) {
    await t.step(JSON.stringify(payload), () => {
      assert.throws(() => compute(payload as never, ctx), permanent(pattern));
    });
  }
});

Deno.test("sleep() resolves after duration_ms when not aborted", async () => {
  const ctx = context(new ObjectStore("/nonexistent"));
  const started = performance.now();
  assert.deepEqual(await sleep({ duration_ms: 20 }, ctx), { slept_ms: 20 });
  assert.ok(performance.now() - started >= 19);
});

Deno.test("sleep() rejects promptly with the signal's reason when aborted", async () => {
  const controller = new AbortController();
  const ctx = context(new ObjectStore("/nonexistent"), controller.signal);
  const started = performance.now();
  const sleeping = sleep({ duration_ms: 600_000 }, ctx);
  assert.equal(await isPending(sleeping), true);
  const reason = new Error("shutting down");
  controller.abort(reason);
  await assert.rejects(
    withDeadline(sleeping, 1000, "the aborted sleep"),
    (e) => e === reason,
  );
  assert.ok(performance.now() - started < 1000);
  // The sanitizers fail this test if the 10-minute timer is still armed.
});

Deno.test("sleep() throws TransientError when timeout_ms is shorter than duration_ms", async () => {
  const ctx = context(new ObjectStore("/nonexistent"));
  await assert.rejects(
    sleep({ duration_ms: 10_000, timeout_ms: 5 }, ctx),
    (e) =>
      e instanceof TransientError && /timed out after 5 ms/.test(e.message),
  );
});

Deno.test("sleep() throws PermanentError naming the field when the payload is bad", async () => {
  const ctx = context(new ObjectStore("/nonexistent"));
  await assert.rejects(
    sleep({} as never, ctx),
    permanent(/payload\.duration_ms/),
  );
  await assert.rejects(
    sleep({ duration_ms: -1 }, ctx),
    permanent(/payload\.duration_ms/),
  );
  await assert.rejects(
    sleep({ duration_ms: 600_001 }, ctx),
    permanent(/payload\.duration_ms must be a number from 0 to 600000/),
  );
  await assert.rejects(
    sleep({ duration_ms: 1, timeout_ms: "x" as never }, ctx),
    permanent(/payload\.timeout_ms/),
  );
});

Deno.test("httpSimulated() returns the drawn status when it is 2xx", async () => {
  const handler = createHttpSimulated({
    latencyMs: 2,
    jitterMs: 1,
    statuses: { 201: 1 },
  });
  const result = await handler(
    { url: "https://example.com/x", method: "POST" },
    context(new ObjectStore("/nonexistent")),
  );
  assert.equal(result.status, 201);
  assert.ok(result.latency_ms >= 1 && result.latency_ms <= 3);
});

Deno.test("httpSimulated() classifies 5xx as transient and 4xx as permanent", async () => {
  const ctx = context(new ObjectStore("/nonexistent"));
  const payload = { url: "http://example.com", method: "GET" } as const;
  await assert.rejects(
    createHttpSimulated({ latencyMs: 0, jitterMs: 0, statuses: { 503: 1 } })(
      payload,
      ctx,
    ),
    (e) => e instanceof TransientError && /returned 503/.test(e.message),
  );
  await assert.rejects(
    createHttpSimulated({ latencyMs: 0, jitterMs: 0, statuses: { 404: 1 } })(
      payload,
      ctx,
    ),
    permanent(/GET http:\/\/example\.com returned 404/),
  );
  await assert.rejects(
    createHttpSimulated({ latencyMs: 50, jitterMs: 0 })({
      ...payload,
      timeout_ms: 1,
    }, ctx),
    (e) =>
      e instanceof TransientError && /timed out after 1 ms/.test(e.message),
  );
});

Deno.test("httpSimulated() draws the same outcome for the same task attempt", async () => {
  const handler = createHttpSimulated({
    latencyMs: 0,
    jitterMs: 0,
    statuses: { 200: 1, 500: 1, 201: 1, 202: 1 },
  });
  const outcome = async (taskId: string, attempt: number): Promise<string> => {
    try {
      const r = await handler(
        { url: "https://a.test", method: "HEAD" },
        context(new ObjectStore("/nonexistent"), undefined, {
          taskId,
          attempt,
        }),
      );
      return String(r.status);
    } catch (error) {
      return (error as Error).message;
    }
  };
  const first = [];
  for (let i = 0; i < 12; i++) first.push(await outcome(`t${i}`, 1));
  const again = [];
  for (let i = 0; i < 12; i++) again.push(await outcome(`t${i}`, 1));
  assert.deepEqual(again, first);
  assert.ok(new Set(first).size > 1, `outcomes: ${first}`);
});

Deno.test("httpSimulated() honours the signal and rejects bad payload fields", async () => {
  const controller = new AbortController();
  const ctx = context(new ObjectStore("/nonexistent"), controller.signal);
  const slow = createHttpSimulated({ latencyMs: 60_000, jitterMs: 0 });
  const running = slow({ url: "https://a.test", method: "GET" }, ctx);
  assert.equal(await isPending(running), true);
  controller.abort(new Error("stop"));
  await assert.rejects(withDeadline(running, 1000, "aborted request"), /stop/);
  const fresh = context(new ObjectStore("/nonexistent"));
  await assert.rejects(
    httpSimulated({ url: "ftp://a.test", method: "GET" }, fresh),
    permanent(/payload\.url must be an http or https URL/),
  );
  await assert.rejects(
    httpSimulated({ url: "https://a.test", method: "TRACE" as never }, fresh),
    permanent(/payload\.method must be one of GET/),
  );
  await assert.rejects(
    httpSimulated(
      { url: "https://a.test", method: "GET", timeout_ms: 0 },
      fresh,
    ),
    permanent(/payload\.timeout_ms/),
  );
  assert.throws(() => createHttpSimulated({ jitterMs: 50 }), /jitterMs/);
  assert.throws(() => createHttpSimulated({ statuses: { 99: 1 } }), /statuses/);
});

Deno.test("fail() throws the requested error class with the given message", async () => {
  const ctx = context(new ObjectStore("/nonexistent"));
  assert.throws(
    () => fail({ error_message: "Cannot do it: flaky", transient: true }, ctx),
    (e) => e instanceof TransientError && e.message === "Cannot do it: flaky",
  );
  assert.throws(
    () => fail({ error_message: "Cannot do it: never", transient: false }, ctx),
    (e) => e instanceof PermanentError && e.message === "Cannot do it: never",
  );
  assert.throws(
    () => fail({} as never, ctx),
    permanent(/payload\.error_message/),
  );
  assert.throws(
    () => fail({ error_message: "x", transient: "yes" as never }, ctx),
    permanent(/payload\.transient must be a boolean/),
  );
  assert.equal(noop({}, ctx), null);
  await Promise.resolve();
});
