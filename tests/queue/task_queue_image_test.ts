import assert from "node:assert/strict";
import { join } from "node:path";
import {
  generateTasks,
  writeSourceImages,
} from "../../input/generate_tasks.ts";
import type { ImageVariantResult } from "../../lib/handlers/image/image_variant.ts";
import { ObjectStore } from "../../lib/objects.ts";
import { decodePng } from "../../lib/handlers/image/png.ts";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import { TaskFailedError } from "../../lib/queue/types.ts";
import { type TempDir, tempDir, withDeadline } from "../_helpers.ts";

const SEED = 11;
/** Small targets keep the suite fast; the sources are 64..1024 px a side. */
const SIZES = ["32x24", "17x40", "64x64", "1x1"];
const DEADLINE_MS = 20_000;
/** Dead-lettering is expected in some tests: keep their output clean. */
const QUIET = { level: "silent" } as const;

interface Fixture extends AsyncDisposable {
  dir: TempDir;
  objects: ObjectStore;
  /** `(image_key, size)` pairs whose sources exist under `dir`. */
  tasks: Array<{ image_key: string; size: string }>;
}

/** Writes the generated source images of `n` tasks into a fresh directory. */
async function fixture(n: number): Promise<Fixture> {
  const dir = await tempDir("sluice-image-");
  const generated = generateTasks(n, { seed: SEED });
  const written = await writeSourceImages(generated, dir.path, SEED);
  assert.equal(written, n);
  const tasks = generated.map((task, i) => ({
    image_key: task.image_key,
    size: SIZES[i % SIZES.length]!,
  }));
  return {
    dir,
    objects: new ObjectStore(dir.path),
    tasks,
    [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
  };
}

/** Decodes a stored PNG fully and returns its size and row count. */
async function pngShape(
  objects: ObjectStore,
  key: string,
): Promise<{ width: number; height: number; rows: number }> {
  const image = await decodePng(await objects.get(key));
  let rows = 0;
  for await (const row of image.rows) {
    assert.equal(row.length, image.width * 4, `row ${rows} of ${key}`);
    rows++;
  }
  return { width: image.width, height: image.height, rows };
}

async function readAll(objects: ObjectStore, key: string): Promise<Uint8Array> {
  return await new Response(await objects.get(key)).bytes();
}

Deno.test("TaskQueue.submit() writes image.variant outputs of the requested size when run end to end", async (t) => {
  await using setup = await fixture(4);
  const stores: Array<[string, () => string | undefined]> = [
    ["memory", () => undefined],
    ["durable SQLite file", () => join(setup.dir.path, "tasks.db")],
  ];
  for (const [name, db] of stores) {
    await t.step(name, async () => {
      const path = db();
      await using queue = await TaskQueue.open({
        workers: 2,
        objectsRoot: setup.dir.path,
        ...(path !== undefined && { db: path }),
      });
      assert.equal(queue.store.durable, path !== undefined);
      const handles = await queue.submitMany<ImageVariantResult>(
        setup.tasks.map((payload) => ({ type: "image.variant", payload })),
      );
      const results = await withDeadline(
        Promise.all(handles.map((h) => h.result)),
        DEADLINE_MS,
        "image variants",
      );
      for (const [i, task] of setup.tasks.entries()) {
        const result = results[i]!;
        const handle = handles[i]!;
        const outputKey = `variants/${task.image_key}@${task.size}.png`;
        const [width, height] = task.size.split("x").map(Number);
        assert.equal(handle.idempotencyKey, `${task.image_key}:${task.size}`);
        assert.equal(result.output_key, outputKey);
        assert.deepEqual([result.width, result.height], [width, height]);
        const stat = await setup.objects.stat(outputKey);
        assert.equal(stat?.size, result.bytes);
        assert.deepEqual(await pngShape(setup.objects, outputKey), {
          width,
          height,
          rows: height,
        });
        const record = await queue.getTask(handle.id);
        assert.equal(record?.status, "succeeded");
        assert.equal(record?.outputKey, outputKey);
        assert.equal(record?.attempts, 1);
      }
      assert.equal(queue.metrics.counter("succeeded"), setup.tasks.length);
      const outputs = await Array.fromAsync(setup.objects.list("variants/"));
      assert.equal(outputs.length, setup.tasks.length);
      for (const task of setup.tasks) {
        await setup.objects.delete(
          `variants/${task.image_key}@${task.size}.png`,
        );
      }
    });
  }
});

Deno.test("TaskQueue.submit() runs image.variant once when the same (image_key, size) arrives twice", async (t) => {
  await using setup = await fixture(1);
  const payload = { image_key: setup.tasks[0]!.image_key, size: "40x30" };
  const outputKey = `variants/${payload.image_key}@40x30.png`;

  await t.step("while the first is in flight", async () => {
    await using queue = await TaskQueue.open({
      workers: 2,
      objectsRoot: setup.dir.path,
    });
    const first = await queue.submit({ type: "image.variant", payload });
    const second = await queue.submit({ type: "image.variant", payload });
    assert.equal(first.deduplicated, false);
    assert.equal(second.deduplicated, true);
    assert.equal(second.id, first.id);
    assert.equal(second.idempotencyKey, `${payload.image_key}:40x30`);
    const [a, b] = await withDeadline(
      Promise.all([first.result, second.result]),
      DEADLINE_MS,
      "deduplicated variant",
    );
    assert.deepEqual(b, a);
    assert.equal(queue.metrics.counter("dequeued"), 1);
    assert.equal(queue.metrics.counter("succeeded"), 1);
    assert.equal(queue.metrics.counter("deduplicated"), 1);
    const outputs = await Array.fromAsync(setup.objects.list("variants/"));
    assert.deepEqual(outputs, [outputKey]);
    await setup.objects.delete(outputKey);
  });

  await t.step("after the first finished, across a restart", async () => {
    const db = join(setup.dir.path, "dedup.db");
    let firstResult: unknown;
    let firstId: string;
    let before: Deno.FileInfo;
    {
      await using queue = await TaskQueue.open({
        workers: 1,
        objectsRoot: setup.dir.path,
        db,
      });
      const first = await queue.submit({ type: "image.variant", payload });
      firstResult = await withDeadline(first.result, DEADLINE_MS, "variant");
      firstId = first.id;
      before = await Deno.stat(join(setup.dir.path, outputKey));
      const again = await queue.submit({ type: "image.variant", payload });
      assert.equal(again.deduplicated, true);
      assert.equal(again.id, first.id);
      assert.deepEqual(await again.result, firstResult);
      assert.equal(queue.metrics.counter("dequeued"), 1);
      assert.equal(queue.metrics.counter("succeeded"), 1);
    }
    await using reopened = await TaskQueue.open({
      workers: 1,
      objectsRoot: setup.dir.path,
      db,
    });
    const third = await reopened.submit({ type: "image.variant", payload });
    assert.equal(third.deduplicated, true);
    assert.equal(third.id, firstId);
    assert.deepEqual(await third.result, firstResult);
    assert.equal(reopened.metrics.counter("dequeued"), 0);
    // Not rewritten: the output is the same file, untouched.
    const after = await Deno.stat(join(setup.dir.path, outputKey));
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtime?.getTime(), before.mtime?.getTime());
    const outputs = await Array.fromAsync(setup.objects.list("variants/"));
    assert.deepEqual(outputs, [outputKey]);
  });
});

Deno.test("TaskQueue writes identical image.variant bytes when the same task runs on two fresh queues", async () => {
  await using one = await fixture(2);
  await using two = await fixture(2);
  const outputs: Uint8Array[][] = [];
  for (const setup of [one, two]) {
    await using queue = await TaskQueue.open({
      workers: 1,
      objectsRoot: setup.dir.path,
      db: join(setup.dir.path, "tasks.db"),
    });
    const handles = await queue.submitMany<ImageVariantResult>(
      setup.tasks.map((payload) => ({ type: "image.variant", payload })),
    );
    const results = await withDeadline(
      Promise.all(handles.map((h) => h.result)),
      DEADLINE_MS,
      "image variants",
    );
    assert.equal(queue.metrics.counter("dequeued"), setup.tasks.length);
    outputs.push(
      await Promise.all(
        results.map((r) => readAll(setup.objects, r.output_key)),
      ),
    );
  }
  for (const task of one.tasks) {
    assert.deepEqual(
      await readAll(two.objects, task.image_key),
      await readAll(one.objects, task.image_key),
      `source ${task.image_key}`,
    );
  }
  assert.equal(outputs[0]!.length, one.tasks.length);
  for (const [i, bytes] of outputs[0]!.entries()) {
    assert.ok(bytes.length > 0);
    assert.deepEqual(outputs[1]![i], bytes, `variant ${i}`);
  }
});

Deno.test("TaskQueue dead-letters image.variant after 1 attempt when the source is missing", async () => {
  await using setup = await fixture(1);
  await using queue = await TaskQueue.open({
    workers: 1,
    objectsRoot: setup.dir.path,
    db: join(setup.dir.path, "tasks.db"),
    logger: QUIET,
  });
  const handle = await queue.submit({
    type: "image.variant",
    payload: { image_key: "img/missing.png", size: "10x10" },
  });
  const error = await withDeadline(
    handle.result.then(() => null, (e: unknown) => e),
    DEADLINE_MS,
    "missing source",
  );
  assert.ok(error instanceof TaskFailedError, String(error));
  assert.equal(error.errorClass, "permanent");
  assert.equal(error.attempts, 1);
  assert.match(error.message, /"img\/missing\.png" does not exist/);
  const record = await queue.getTask(handle.id);
  assert.equal(record?.status, "dead");
  assert.equal(record?.errorClass, "permanent");
  assert.equal(record?.attempts, 1);
  assert.equal(record?.outputKey, null);
  assert.equal(queue.metrics.counter("retried"), 0);
  assert.equal(queue.metrics.counter("failed_permanent"), 1);
  assert.deepEqual(await Array.fromAsync(setup.objects.list("variants/")), []);
});

Deno.test("TaskQueue dead-letters image.variant with an error naming the field when the payload is bad", async () => {
  await using setup = await fixture(1);
  await using queue = await TaskQueue.open({
    workers: 1,
    objectsRoot: setup.dir.path,
    logger: QUIET,
  });
  const image_key = setup.tasks[0]!.image_key;
  const cases: Array<[unknown, RegExp]> = [
    [
      { image_key, size: "big" },
      /payload\.size must look like 200x200, got "big"/,
    ],
    [{ image_key, size: "0x10" }, /payload\.size/],
    [{ size: "10x10" }, /payload\.image_key must be a non-empty string/],
    [{ image_key: "../escape.png", size: "10x10" }, /payload\.image_key/],
  ];
  for (const [payload, pattern] of cases) {
    const handle = await queue.submit({ type: "image.variant", payload });
    const error = await withDeadline(
      handle.result.then(() => null, (e: unknown) => e),
      DEADLINE_MS,
      "bad payload",
    );
    assert.ok(error instanceof TaskFailedError, String(error));
    assert.equal(error.errorClass, "permanent");
    assert.equal(error.attempts, 1);
    assert.match(error.message, pattern);
  }
  assert.equal(queue.metrics.counter("dead_lettered"), cases.length);
  assert.equal(queue.metrics.counter("retried"), 0);
  assert.deepEqual(await Array.fromAsync(setup.objects.list("variants/")), []);
});
