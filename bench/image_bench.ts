/**
 * Image variants: how `image.variant` (decode, resize, encode: CPU-bound)
 * scales from one worker to two through the whole queue. Target: 2 workers
 * at least 1.8× as fast as 1.
 *
 * The sources come from `writeSourceImages` (64..1024 px a side, about
 * 75 ms each to write), written once before any measurement. The runner
 * calls each benchmark about four times even with `n: 2, warmup: 0`, so 500
 * images would take minutes: the default is 100 images (about 40 s for the
 * file); `SLUICE_BENCH_IMAGES=500` runs the full set.
 *
 * ```sh
 * deno bench --allow-read --allow-write --allow-env bench/image_bench.ts
 * ```
 *
 * @module
 */
import { generateTasks, writeSourceImages } from "../input/generate_tasks.ts";
import { TaskQueue } from "../mod.ts";

const IMAGES = Number(Deno.env.get("SLUICE_BENCH_IMAGES") ?? 100);
if (!Number.isInteger(IMAGES) || IMAGES < 1) {
  throw new RangeError(
    `Cannot run image bench: SLUICE_BENCH_IMAGES must be an integer >= 1, got ${IMAGES}`,
  );
}
const SEED = 5;
/** A thumbnail: the cost is mostly decoding the source. */
const SIZE = "128x128";

const root = await Deno.makeTempDir({ prefix: "sluice-image-bench-" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(root, { recursive: true });
});
const sources = generateTasks(IMAGES, { seed: SEED });
await writeSourceImages(sources, root, SEED);
const tasks = sources.map(({ image_key }) => ({
  type: "image.variant",
  payload: { image_key, size: SIZE },
}));

async function variants(b: Deno.BenchContext, workers: number): Promise<void> {
  // A fresh queue and memory store per run: nothing is deduplicated.
  const queue = await TaskQueue.open({
    workers,
    concurrency: 1,
    objectsRoot: root,
  });
  try {
    b.start();
    const handles = await queue.submitMany(tasks);
    await Promise.all(handles.map((h) => h.result));
    b.end();
    if (queue.metrics.counter("succeeded") !== IMAGES) {
      throw new Error(
        `Cannot trust the run: ${
          queue.metrics.counter("succeeded")
        } of ${IMAGES} variants succeeded`,
      );
    }
  } finally {
    await queue.close();
  }
}

Deno.bench({
  name: `image.variant ${IMAGES} images -> ${SIZE}, 1 worker`,
  group: "image.variant scaling",
  baseline: true,
  n: 2,
  warmup: 0,
  async fn(b: Deno.BenchContext): Promise<void> {
    await variants(b, 1);
  },
});

Deno.bench({
  name: `image.variant ${IMAGES} images -> ${SIZE}, 2 workers`,
  group: "image.variant scaling",
  n: 2,
  warmup: 0,
  async fn(b: Deno.BenchContext): Promise<void> {
    await variants(b, 2);
  },
});
