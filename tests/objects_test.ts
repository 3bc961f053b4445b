import assert from "node:assert/strict";
import {
  InvalidObjectKeyError,
  ObjectNotFoundError,
  ObjectStore,
} from "../lib/objects.ts";
import { runProbe, tempDir, withDeadline } from "./_helpers.ts";

const MiB = 1024 * 1024;

function bytes(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Every file name under `dir`, recursively, relative to it. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) {
      out.push(
        ...await filesUnder(`${dir}/${entry.name}`, `${prefix}${entry.name}/`),
      );
    } else out.push(prefix + entry.name);
  }
  return out.sort();
}

Deno.test("new ObjectStore() throws RangeError when chunkSize is below 1", () => {
  assert.throws(
    () => new ObjectStore("/tmp/x", { chunkSize: 0 }),
    (error: unknown) =>
      error instanceof RangeError && /chunkSize/.test(error.message) &&
      /got 0/.test(error.message),
  );
  assert.throws(
    () => new ObjectStore("/tmp/x", { chunkSize: 1.5 }),
    RangeError,
  );
  assert.throws(() => new ObjectStore(""), TypeError);
  const store = new ObjectStore("/tmp/x/");
  assert.equal(store.root, "/tmp/x");
  assert.equal(store.chunkSize, 65536);
});

Deno.test("ObjectStore.get() streams chunks of chunkSize when the object exists", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path, { chunkSize: 1000 });
  const body = bytes(2500);
  const written = await store.put("a/b/c.bin", ReadableStream.from([body]));
  assert.deepEqual(written, { key: "a/b/c.bin", size: 2500 });
  const chunks = await Array.fromAsync(await store.get("a/b/c.bin"));
  assert.deepEqual(chunks.map((c) => c.length), [1000, 1000, 500]);
  // Each chunk is its own buffer, safe to keep.
  assert.notEqual(chunks[0]!.buffer, chunks[1]!.buffer);
  const joined = new Uint8Array(2500);
  chunks.forEach((c, i) => joined.set(c, i * 1000));
  assert.deepEqual(joined, body);
});

Deno.test("ObjectStore.get() closes the file when the stream is cancelled", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path, { chunkSize: 10 });
  await store.put("x", ReadableStream.from([bytes(100)]));
  const reader = (await store.get("x")).getReader();
  const first = await reader.read();
  assert.equal(first.value?.length, 10);
  await reader.cancel();
  // The resource sanitizer fails this test if the file stayed open.
});

Deno.test("ObjectStore.get() errors the stream when the signal aborts mid-read", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path, { chunkSize: 10 });
  await store.put("x", ReadableStream.from([bytes(100)]));
  const controller = new AbortController();
  const reader = (await store.get("x", { signal: controller.signal }))
    .getReader();
  await reader.read();
  controller.abort(new Error("stop reading"));
  await assert.rejects(
    withDeadline(
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })(),
      2000,
      "the aborted read",
    ),
    /stop reading/,
  );
});

Deno.test("ObjectStore.get() throws ObjectNotFoundError when the object is missing", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path);
  const error = await store.get("nope/x.png").catch((e) => e);
  assert.ok(error instanceof ObjectNotFoundError);
  assert.equal(error.errorClass, "permanent");
  assert.match(error.message, /nope\/x\.png/);
  await Deno.mkdir(`${dir.path}/adir`);
  await assert.rejects(store.get("adir"), ObjectNotFoundError);
});

Deno.test("ObjectStore.put() replaces an object atomically when the stream completes", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path, { durable: false });
  await store.put("k", ReadableStream.from([bytes(10, 1)]));
  await store.put("k", ReadableStream.from([bytes(20, 2)]));
  assert.deepEqual(await readAll(await store.get("k")), bytes(20, 2));
  assert.deepEqual(await filesUnder(dir.path), ["k"]);
});

Deno.test("ObjectStore.put() leaves no object and no temp file when aborted mid-stream", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path);
  await store.put("out/keep.bin", ReadableStream.from([bytes(5)]));
  const controller = new AbortController();
  let pulls = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c): void {
      pulls++;
      c.enqueue(bytes(1000));
      if (pulls === 3) controller.abort(new Error("client went away"));
    },
  });
  await assert.rejects(
    withDeadline(
      store.put("out/x.bin", source, { signal: controller.signal }),
      5000,
      "aborted put",
    ),
    /client went away/,
  );
  assert.equal(await store.exists("out/x.bin"), false);
  assert.deepEqual(await filesUnder(dir.path), ["out/keep.bin"]);
});

Deno.test("ObjectStore.put() leaves no object and no temp file when the source errors", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path);
  await store.put("x.bin", ReadableStream.from([bytes(5, 9)]));
  let pulls = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c): void {
      if (++pulls > 2) c.error(new Error("disk on fire"));
      else c.enqueue(bytes(1000));
    },
  });
  await assert.rejects(store.put("x.bin", source), /disk on fire/);
  // The previous object survives untouched.
  assert.deepEqual(await readAll(await store.get("x.bin")), bytes(5, 9));
  assert.deepEqual(await filesUnder(dir.path), ["x.bin"]);
});

Deno.test("ObjectStore.put() rejects at once when the signal is already aborted", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path);
  let cancelled = false;
  const source = new ReadableStream<Uint8Array>({
    cancel(): void {
      cancelled = true;
    },
  });
  await assert.rejects(
    store.put("x", source, { signal: AbortSignal.abort(new Error("early")) }),
    /early/,
  );
  assert.equal(cancelled, true);
  assert.deepEqual(await filesUnder(dir.path), []);
});

const BAD_KEYS = [
  "../x",
  "/etc/passwd",
  "a/../../x",
  "a\\b",
  "a\u0000b",
  "",
  "a//b",
  "./a",
  "a/.",
  "a/",
  "x".repeat(1025),
  ".k.abc.tmp",
];

Deno.test("ObjectStore methods throw InvalidObjectKeyError when a key tries to escape", async (t) => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path);
  for (const key of BAD_KEYS) {
    await t.step(JSON.stringify(key).slice(0, 30), async () => {
      const check = (error: unknown): boolean =>
        error instanceof InvalidObjectKeyError && error instanceof TypeError &&
        error.errorClass === "permanent" && error.key === key;
      await assert.rejects(store.get(key), check);
      await assert.rejects(
        store.put(key, ReadableStream.from([bytes(1)])),
        check,
      );
      await assert.rejects(store.stat(key), check);
      await assert.rejects(store.delete(key), check);
      await assert.rejects(store.exists(key), check);
    });
  }
  const error = await store.get("../x").catch((e) => e);
  assert.match(error.message, /"\.\.\/x"/);
  assert.deepEqual(await filesUnder(dir.path), []);
});

Deno.test("ObjectStore.get() and put() refuse a symlink inside the root that points outside", async () => {
  await using dir = await tempDir();
  await using outside = await tempDir();
  await Deno.writeTextFile(`${outside.path}/secret.txt`, "secret");
  const root = `${dir.path}/root`;
  await Deno.mkdir(root);
  await Deno.symlink(outside.path, `${root}/escape`);
  await Deno.symlink(`${outside.path}/secret.txt`, `${root}/file-link`);
  const store = new ObjectStore(root);
  await assert.rejects(store.get("escape/secret.txt"), InvalidObjectKeyError);
  await assert.rejects(store.get("file-link"), InvalidObjectKeyError);
  await assert.rejects(
    store.put("escape/new.txt", ReadableStream.from([bytes(3)])),
    /resolves outside the root/,
  );
  await assert.rejects(
    store.put("escape/deep/new.txt", ReadableStream.from([bytes(3)])),
    InvalidObjectKeyError,
  );
  await assert.rejects(
    store.delete("escape/secret.txt"),
    InvalidObjectKeyError,
  );
  assert.deepEqual(await filesUnder(outside.path), ["secret.txt"]);
  // A symlink that stays inside the root is fine.
  await Deno.mkdir(`${root}/real`);
  await Deno.symlink(`${root}/real`, `${root}/inside`);
  await store.put("inside/ok.txt", ReadableStream.from([bytes(2)]));
  assert.equal((await store.stat("real/ok.txt"))?.size, 2);
});

Deno.test("ObjectStore.list() yields sorted keys under a prefix and skips temp files", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path);
  for (const key of ["b/2", "a/1", "b/1", "ba", "c/d/e"]) {
    await store.put(key, ReadableStream.from([bytes(1)]));
  }
  await Deno.writeFile(`${dir.path}/b/.3.x1y2.tmp`, bytes(1));
  assert.deepEqual(await Array.fromAsync(store.list()), [
    "a/1",
    "b/1",
    "b/2",
    "ba",
    "c/d/e",
  ]);
  assert.deepEqual(await Array.fromAsync(store.list("b")), [
    "b/1",
    "b/2",
    "ba",
  ]);
  assert.deepEqual(await Array.fromAsync(store.list("b/")), ["b/1", "b/2"]);
  assert.deepEqual(await Array.fromAsync(store.list("c/d/")), ["c/d/e"]);
  assert.deepEqual(await Array.fromAsync(store.list("zzz/")), []);
  await assert.rejects(
    Array.fromAsync(store.list("../")),
    InvalidObjectKeyError,
  );
});

Deno.test("ObjectStore.stat() and delete() report missing objects as null and false", async () => {
  await using dir = await tempDir();
  const store = new ObjectStore(dir.path);
  assert.equal(await store.stat("m"), null);
  assert.equal(await store.delete("m"), false);
  const before = Date.now();
  await store.put("m", ReadableStream.from([bytes(7)]));
  const info = await store.stat("m");
  assert.equal(info?.key, "m");
  assert.equal(info?.size, 7);
  assert.ok(info?.mtime instanceof Date);
  assert.ok(info.mtime.getTime() >= before - 2000);
  assert.equal(await store.delete("m"), true);
  assert.equal(await store.exists("m"), false);
});

Deno.test("ObjectStore.get() and put() copy 50 MiB with peak RSS growth far below the object size", async () => {
  await using dir = await tempDir();
  const size = 50 * MiB;
  {
    using file = await Deno.open(`${dir.path}/big.bin`, {
      write: true,
      create: true,
    });
    const block = bytes(MiB, 3);
    for (let i = 0; i < size / MiB; i++) {
      let at = 0;
      while (at < block.length) at += await file.write(block.subarray(at));
    }
  }
  const objectsUrl = new URL("../lib/objects.ts", import.meta.url).href;
  const report = await runProbe(
    dir.path,
    `import { ObjectStore } from ${JSON.stringify(objectsUrl)};
const store = new ObjectStore(Deno.args[0]);
let peak = 0;
const sample = () => { const r = Deno.memoryUsage().rss; if (r > peak) peak = r; };
const probe = () => new TransformStream({ transform(c, ctl) { sample(); ctl.enqueue(c); } });
await store.put("warm.bin", ReadableStream.from(Array.from({ length: 256 }, () => new Uint8Array(65536))));
await store.put("warm2.bin", (await store.get("warm.bin")).pipeThrough(probe()));
const baseline = Deno.memoryUsage().rss;
peak = baseline;
const timer = setInterval(sample, 1);
const result = await store.put("copy.bin", (await store.get("big.bin")).pipeThrough(probe()));
sample();
clearInterval(timer);
console.log(JSON.stringify({ baseline, peak, size: result.size }));
`,
  ) as { baseline: number; peak: number; size: number };
  assert.equal(report.size, size);
  const growth = report.peak - report.baseline;
  assert.ok(
    growth < 25 * MiB,
    `peak RSS grew by ${(growth / MiB).toFixed(1)} MiB copying 50 MiB`,
  );
  const [a, b] = await Promise.all([
    Deno.readFile(`${dir.path}/big.bin`),
    Deno.readFile(`${dir.path}/copy.bin`),
  ]);
  assert.ok(a.length === b.length && a.every((v, i) => v === b[i]));
});
