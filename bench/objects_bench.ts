/**
 * How close does a streamed ObjectStore copy (get -> put, 64 KiB chunks,
 * fsync, rename) come to `Deno.copyFile` on a 200 MiB object?
 *
 * Run: deno bench --allow-read --allow-write bench/objects_bench.ts
 * MiB/s = 200 / (mean seconds per iteration); the ratio is copyFile's mean
 * time over the store's.
 */
import { ObjectStore } from "../lib/objects.ts";

const MiB = 1024 * 1024;
const SIZE = 200 * MiB;
const root = await Deno.makeTempDir({ prefix: "sluice-bench-objects-" });

// Setup, outside the measured part: one 200 MiB source object.
{
  using file = await Deno.open(`${root}/source.bin`, {
    write: true,
    create: true,
  });
  const block = new Uint8Array(4 * MiB);
  for (let i = 0; i < block.length; i++) block[i] = (i * 131 + 7) & 0xff;
  for (let written = 0; written < SIZE; written += block.length) {
    let at = 0;
    while (at < block.length) at += await file.write(block.subarray(at));
  }
}

globalThis.addEventListener("unload", () => {
  Deno.removeSync(root, { recursive: true });
});

const durable = new ObjectStore(root);
const relaxed = new ObjectStore(root, { durable: false });

Deno.bench({
  name: "Deno.copyFile 200 MiB",
  group: "copy 200 MiB object",
  baseline: true,
  n: 3,
  warmup: 1,
  async fn(): Promise<void> {
    await Deno.copyFile(`${root}/source.bin`, `${root}/copy-baseline.bin`);
  },
});

Deno.bench({
  name: "ObjectStore get -> put 200 MiB (durable)",
  group: "copy 200 MiB object",
  n: 3,
  warmup: 1,
  async fn(): Promise<void> {
    await durable.put("copy-durable.bin", await durable.get("source.bin"));
  },
});

Deno.bench({
  name: "ObjectStore get -> put 200 MiB (no fsync)",
  group: "copy 200 MiB object",
  n: 3,
  warmup: 1,
  async fn(): Promise<void> {
    await relaxed.put("copy-relaxed.bin", await relaxed.get("source.bin"));
  },
});
