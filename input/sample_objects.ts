/**
 * Writes the source images of `input/sample_tasks_small.json`, so that
 * its five `image.variant` tasks can run.
 *
 * ```sh
 * deno run --allow-read --allow-write input/sample_objects.ts [DIR]
 * ```
 *
 * DIR defaults to `input/objects`, where the images are committed: this
 * script is how they were made, and remakes them byte for byte. They are
 * `writeSourceImages` of `generate_tasks.ts` with {@linkcode SAMPLE_SEED},
 * the seed below 200,000 whose five images are smallest (287 KB in all,
 * 66 to 310 px a side), so the checkout stays small.
 *
 * @module
 */
import tasks from "./sample_tasks_small.json" with { type: "json" };
import { writeSourceImages } from "./generate_tasks.ts";

/** The seed the committed sample images were written with. */
export const SAMPLE_SEED = 164_885;

/**
 * Writes the source image of every task of `sample_tasks_small.json`
 * into an object store rooted at `dir`.
 *
 * @param dir The object store's root directory.
 * @returns How many images were written.
 * @throws {Error} When the directory cannot be written.
 */
export async function writeSampleObjects(dir: string): Promise<number> {
  return await writeSourceImages(tasks, dir, SAMPLE_SEED);
}

if (import.meta.main) {
  const dir = Deno.args[0] ??
    new URL("./objects", import.meta.url).pathname;
  const count = await writeSampleObjects(dir);
  Deno.stdout.writeSync(
    new TextEncoder().encode(`wrote ${count} images under ${dir}\n`),
  );
}
