/**
 * Writes a task file for the baseline and the queue.
 *
 * ```sh
 * deno run --allow-write input/generate_tasks.ts N out.json [--seed S] [--dup-rate R]
 * ```
 *
 * N tasks `{ "image_key": "img/000000.jpg", "size": "400x400" }` with sizes
 * drawn from 200x200, 400x400 and 800x800. The same seed writes the same
 * file. With `--dup-rate R` (0 ≤ R < 1), each task repeats an earlier
 * `(image_key, size)` pair with probability R, so idempotency has work to do.
 * With `--objects DIR` (needs `--allow-read` and `--allow-write` on DIR), a
 * real PNG is also written under DIR for every distinct `image_key` (PNG
 * bytes under the `.jpg` key: handlers read the content, not the name), so
 * every task can run end to end with `image.variant`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ObjectStore } from "../mod.ts";
import { encodePng } from "../image.ts";

/**
 * A seeded PRNG (mulberry32), returning numbers in [0, 1). The same
 * algorithm as the queue's own, kept here so that the generator stands
 * alone on the package's public entry points.
 */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A generated task. */
export interface GeneratedTask {
  /** Source object key. */
  image_key: string;
  /** Variant size. */
  size: string;
}

/** Options for {@linkcode generateTasks}. */
export interface GenerateOptions {
  /**
   * PRNG seed; the same seed gives the same tasks.
   *
   * @default {1}
   */
  seed?: number;
  /**
   * Probability that a task repeats an earlier pair.
   *
   * @default {0}
   */
  dupRate?: number;
}

/** Variant sizes of the original design. */
export const SIZES: readonly string[] = ["200x200", "400x400", "800x800"];

/**
 * Generates `n` tasks deterministically.
 *
 * @param n How many tasks (integer ≥ 0).
 * @param options Seed and duplicate rate.
 * @returns The tasks.
 * @throws {RangeError} On a bad count or rate.
 */
export function generateTasks(
  n: number,
  options: GenerateOptions = {},
): GeneratedTask[] {
  const seed = options.seed ?? 1;
  const dupRate = options.dupRate ?? 0;
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(
      `Cannot generate tasks: N must be an integer >= 0, got ${n}`,
    );
  }
  if (!Number.isInteger(seed)) {
    throw new RangeError(
      `Cannot generate tasks: seed must be an integer, got ${seed}`,
    );
  }
  if (!(dupRate >= 0 && dupRate < 1)) {
    throw new RangeError(
      `Cannot generate tasks: dup-rate must be in [0, 1), got ${dupRate}`,
    );
  }
  const random = mulberry32(seed);
  const tasks: GeneratedTask[] = [];
  let next = 0;
  for (let i = 0; i < n; i++) {
    if (tasks.length > 0 && random() < dupRate) {
      const earlier = tasks[Math.floor(random() * tasks.length)]!;
      tasks.push({ ...earlier });
      continue;
    }
    const image_key = `img/${String(next++).padStart(6, "0")}.jpg`;
    const size = SIZES[Math.floor(random() * SIZES.length)]!;
    tasks.push({ image_key, size });
  }
  return tasks;
}

/**
 * Writes a procedurally generated PNG (gradients plus seeded noise, 64 to
 * 1024 px per side) for every distinct `image_key` of `tasks`, streaming each
 * through the PNG encoder into an object store rooted at `dir`. The same seed
 * writes the same bytes.
 *
 * @param tasks The generated tasks.
 * @param dir The object store's root directory.
 * @param seed The seed the tasks were generated with.
 * @returns How many images were written.
 * @throws {Error} When the directory cannot be written.
 */
export async function writeSourceImages(
  tasks: readonly GeneratedTask[],
  dir: string,
  seed = 1,
): Promise<number> {
  const store = new ObjectStore(dir, { durable: false });
  const keys = [...new Set(tasks.map((task) => task.image_key))];
  for (const key of keys) {
    const random = mulberry32(seed ^ hashKey(key));
    const width = 64 + Math.floor(random() * 961);
    const height = 64 + Math.floor(random() * 961);
    const phase = Math.floor(random() * 256);
    let y = 0;
    const rows = new ReadableStream<Uint8Array>({
      pull(controller): void {
        if (y === height) return controller.close();
        const row = new Uint8Array(width * 4);
        for (let x = 0; x < width; x++) {
          const noise = Math.floor(random() * 16);
          row[x * 4] = ((x * 255) / width + phase + noise) & 0xff;
          row[x * 4 + 1] = ((y * 255) / height + noise) & 0xff;
          row[x * 4 + 2] = ((x ^ y) + phase) & 0xff;
          row[x * 4 + 3] = 255;
        }
        controller.enqueue(row);
        y++;
      },
    });
    await store.put(key, encodePng({ width, height }, rows));
  }
  return keys.length;
}

function hashKey(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  }
  return hash >>> 0;
}

const USAGE =
  "usage: generate_tasks.ts N out.json [--seed S] [--dup-rate R] [--objects DIR]";

function fail(message: string): never {
  Deno.stderr.writeSync(
    new TextEncoder().encode(`error: ${message}\n${USAGE}\n`),
  );
  Deno.exit(2);
}

function parseNumber(text: string, name: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) {
    fail(`${name} must be a number, got "${text}"`);
  }
  return value;
}

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        seed: { type: "string" },
        "dup-rate": { type: "string" },
        objects: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    fail((error as Error).message);
  }
  if (parsed.values.help) {
    Deno.stdout.writeSync(new TextEncoder().encode(USAGE + "\n"));
    Deno.exit(0);
  }
  const [countText, out, ...extra] = parsed.positionals;
  if (countText === undefined || out === undefined) {
    fail("N and out.json are required");
  }
  if (extra.length > 0) fail(`unexpected argument "${extra[0]}"`);
  const n = parseNumber(countText, "N");
  const seed = parsed.values.seed === undefined
    ? 1
    : parseNumber(parsed.values.seed, "--seed");
  const dupRate = parsed.values["dup-rate"] === undefined
    ? 0
    : parseNumber(parsed.values["dup-rate"], "--dup-rate");
  let tasks: GeneratedTask[];
  try {
    tasks = generateTasks(n, { seed, dupRate });
  } catch (error) {
    fail((error as Error).message.replace(/^Cannot generate tasks: /, ""));
  }
  // One task a line: diffable, and still a JSON array.
  await Deno.writeTextFile(
    out,
    "[\n" + tasks.map((task) => "  " + JSON.stringify(task)).join(",\n") +
      "\n]\n",
  );
  const objectsDir = parsed.values.objects;
  if (objectsDir !== undefined) {
    if (objectsDir === "") fail('--objects must be a directory, got ""');
    let written: number;
    try {
      written = await writeSourceImages(tasks, objectsDir, seed);
    } catch (error) {
      fail(`cannot write images to ${objectsDir}: ${(error as Error).message}`);
    }
    Deno.stdout.writeSync(
      new TextEncoder().encode(
        `wrote ${written} source images to ${objectsDir}\n`,
      ),
    );
  }
  const unique = new Set(tasks.map((t) => `${t.image_key}:${t.size}`)).size;
  Deno.stdout.writeSync(
    new TextEncoder().encode(
      `wrote ${tasks.length} tasks (${unique} unique) to ${out}\n`,
    ),
  );
}
