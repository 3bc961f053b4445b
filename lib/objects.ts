/**
 * A local directory used as an object store: keys are slash-separated
 * relative paths, reads are streams of chunks, and writes land atomically
 * (temp file in the same directory, optional fsync, rename).
 *
 * @module
 */
import type { ErrorClass } from "./errors.ts";

/** Longest key accepted, in UTF-16 code units. */
const MAX_KEY_LENGTH = 1024;

/** Names of in-progress writes: `.<name>.<random>.tmp`. */
const TEMP_NAME = /^\..+\.[0-9a-z]+\.tmp$/;

/**
 * A key was rejected: empty, too long, absolute, containing `..`, `.`, empty
 * segments, NUL or backslashes, or resolving (through a symlink) outside the
 * store's root. Permanent: the same key will always be rejected.
 *
 * @example Catching a bad key
 * ```ts
 * import { InvalidObjectKeyError, ObjectStore } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const store = new ObjectStore(await Deno.makeTempDir());
 * await assert.rejects(store.stat("../etc/passwd"), InvalidObjectKeyError);
 * await Deno.remove(store.root, { recursive: true });
 * ```
 */
export class InvalidObjectKeyError extends TypeError {
  /** Always `"permanent"`. */
  readonly errorClass: ErrorClass = "permanent";
  /** The rejected key, as given. */
  readonly key: unknown;

  /**
   * Creates the error.
   *
   * @param key The rejected key.
   * @param reason Why it was rejected.
   * @param options Standard error options; `cause` is kept.
   */
  constructor(key: unknown, reason: string, options?: ErrorOptions) {
    super(
      `Cannot use object key ${JSON.stringify(String(key))}: ${reason}`,
      options,
    );
    this.name = "InvalidObjectKeyError";
    this.key = key;
  }
}

/**
 * The object asked for does not exist. Permanent.
 *
 * @example Reading a missing object
 * ```ts
 * import { ObjectNotFoundError, ObjectStore } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const store = new ObjectStore(await Deno.makeTempDir());
 * await assert.rejects(store.get("missing.png"), ObjectNotFoundError);
 * await Deno.remove(store.root, { recursive: true });
 * ```
 */
export class ObjectNotFoundError extends Error {
  /** Always `"permanent"`. */
  readonly errorClass: ErrorClass = "permanent";
  /** The missing key. */
  readonly key: string;

  /**
   * Creates the error.
   *
   * @param key The missing key.
   * @param options Standard error options; `cause` is kept.
   */
  constructor(key: string, options?: ErrorOptions) {
    super(
      `Cannot read object ${JSON.stringify(key)}: it does not exist`,
      options,
    );
    this.name = "ObjectNotFoundError";
    this.key = key;
  }
}

/** Options for {@linkcode ObjectStore}. */
export interface ObjectStoreOptions {
  /**
   * Size of the chunks `get` yields, in bytes. An integer of at least 1.
   *
   * @default {65536}
   */
  chunkSize?: number;
  /**
   * Whether `put` fsyncs the temp file before renaming it into place, so a
   * power loss never exposes a renamed but empty object.
   *
   * @default {true}
   */
  durable?: boolean;
}

/** Options for a single read or write. */
export interface ObjectRequestOptions {
  /**
   * Aborts the transfer; a write that is aborted leaves no object behind.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** What `put` wrote. */
export interface PutResult {
  /** The key written. */
  key: string;
  /** The object's size in bytes. */
  size: number;
}

/** What `stat` knows about an object. */
export interface ObjectInfo {
  /** The object's key. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Last modification time, when the file system records one. */
  mtime: Date | null;
}

/**
 * Objects under a root directory, read and written as streams.
 *
 * A `put` streams into `.<name>.<random>.tmp` next to the target and renames
 * it into place only once the source stream completes, so readers never see
 * a partial object and a failed or aborted write leaves nothing behind. Only
 * `--allow-read` and `--allow-write` on the root are needed.
 *
 * @example Writing and reading an object
 * ```ts
 * import { ObjectStore } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const store = new ObjectStore(await Deno.makeTempDir(), { chunkSize: 4 });
 * const body = new TextEncoder().encode("hello, sluice");
 * const written = await store.put("greetings/en.txt", ReadableStream.from([body]));
 * assert.deepEqual(written, { key: "greetings/en.txt", size: body.length });
 *
 * const text = await new Response(await store.get("greetings/en.txt")).text();
 * assert.equal(text, "hello, sluice");
 * assert.deepEqual(await Array.fromAsync(store.list("greetings/")), ["greetings/en.txt"]);
 * assert.equal(await store.delete("greetings/en.txt"), true);
 * await Deno.remove(store.root, { recursive: true });
 * ```
 */
export class ObjectStore {
  /** The root directory, as given (made absolute when it was relative). */
  readonly root: string;
  /** Chunk size of reads, in bytes. */
  readonly chunkSize: number;
  /** Whether writes are fsynced before the rename. */
  readonly durable: boolean;
  /** `realPath(root)`, resolved once on first use. */
  #realRoot: Promise<string> | undefined;

  /**
   * Creates a store rooted at `root`. The directory is not touched until
   * the first call.
   *
   * @param root The directory that holds the objects.
   * @param options Chunk size and durability.
   * @throws {TypeError} When `root` is not a non-empty string or `durable` is not a boolean.
   * @throws {RangeError} When `chunkSize` is not an integer of at least 1.
   */
  constructor(root: string, options: ObjectStoreOptions = {}) {
    if (typeof root !== "string" || root.length === 0) {
      throw new TypeError(
        `Cannot create object store: root must be a non-empty string, got ${
          JSON.stringify(root)
        }`,
      );
    }
    const chunkSize = options.chunkSize ?? 65536;
    if (!Number.isInteger(chunkSize) || chunkSize < 1) {
      throw new RangeError(
        `Cannot create object store: chunkSize must be an integer >= 1, got ${chunkSize}`,
      );
    }
    const durable = options.durable ?? true;
    if (typeof durable !== "boolean") {
      throw new TypeError(
        `Cannot create object store: durable must be a boolean, got ${
          String(durable)
        }`,
      );
    }
    this.root = isAbsolute(root) ? trimSlashes(root) : `${Deno.cwd()}/${root}`;
    this.chunkSize = chunkSize;
    this.durable = durable;
  }

  /**
   * Opens an object for reading as a stream of chunks of at most
   * `chunkSize` bytes. The file is closed when the stream ends, errors, is
   * cancelled or the signal aborts.
   *
   * @param key The object's key.
   * @param options An abort signal.
   * @returns A stream of the object's bytes; each chunk is a fresh buffer.
   * @throws {InvalidObjectKeyError} When the key is invalid or escapes the root.
   * @throws {ObjectNotFoundError} When no object has this key.
   *
   * @example Streaming an object
   * ```ts
   * import { ObjectStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const store = new ObjectStore(await Deno.makeTempDir(), { chunkSize: 2 });
   * await store.put("a.bin", ReadableStream.from([new Uint8Array([1, 2, 3])]));
   * const chunks = await Array.fromAsync(await store.get("a.bin"));
   * assert.deepEqual(chunks.map((c) => [...c]), [[1, 2], [3]]);
   * await Deno.remove(store.root, { recursive: true });
   * ```
   */
  async get(
    key: string,
    options: ObjectRequestOptions = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const { signal } = options;
    signal?.throwIfAborted();
    const path = await this.#resolve(key);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new ObjectNotFoundError(key, { cause: error });
      }
      throw error;
    }
    try {
      const info = await file.stat();
      if (!info.isFile) throw new ObjectNotFoundError(key);
    } catch (error) {
      file.close();
      throw error;
    }
    return fileStream(file, this.chunkSize, signal);
  }

  /**
   * Writes `stream` to `key`. Bytes go to a temp file in the target's
   * directory (created when missing), which is fsynced when `durable` and
   * renamed into place only once the stream has completed. On an error or
   * abort the temp file is removed, the source is cancelled, and no object
   * appears; an existing object under `key` is left as it was.
   *
   * @param key The object's key.
   * @param stream The bytes to write.
   * @param options An abort signal.
   * @returns The key and the number of bytes written.
   * @throws {InvalidObjectKeyError} When the key is invalid or escapes the root.
   * @throws {unknown} The source stream's error, or the signal's reason.
   *
   * @example Writing an object atomically
   * ```ts
   * import { ObjectStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const store = new ObjectStore(await Deno.makeTempDir());
   * const failing = new ReadableStream<Uint8Array>({
   *   pull(controller) {
   *     controller.error(new Error("source broke"));
   *   },
   * });
   * await assert.rejects(store.put("out/x.bin", failing), /source broke/);
   * assert.equal(await store.exists("out/x.bin"), false);
   * await Deno.remove(store.root, { recursive: true });
   * ```
   */
  async put(
    key: string,
    stream: ReadableStream<Uint8Array>,
    options: ObjectRequestOptions = {},
  ): Promise<PutResult> {
    const { signal } = options;
    const reader = stream.getReader();
    let readerDone = false;
    const onAbort = (): void => {
      reader.cancel(signal?.reason).catch(() => {});
    };
    let file: Deno.FsFile | undefined;
    let tempPath: string | undefined;
    try {
      signal?.throwIfAborted();
      signal?.addEventListener("abort", onAbort, { once: true });
      const path = await this.#resolve(key);
      const slash = path.lastIndexOf("/");
      const dir = path.slice(0, slash);
      const name = path.slice(slash + 1);
      await Deno.mkdir(dir, { recursive: true });
      // The parent may have been created through a symlink placed after
      // the first check; check again now that it exists.
      await this.#resolve(key);
      tempPath = `${dir}/.${name}.${randomSuffix()}.tmp`;
      file = await Deno.open(tempPath, { write: true, createNew: true });
      let size = 0;
      while (true) {
        const { done, value } = await reader.read();
        // A cancel from onAbort resolves the pending read as done, so the
        // signal must be checked before trusting `done`.
        signal?.throwIfAborted();
        if (done) {
          readerDone = true;
          break;
        }
        await writeAll(file, value);
        size += value.byteLength;
      }
      if (this.durable) await file.sync();
      file.close();
      file = undefined;
      signal?.throwIfAborted();
      await Deno.rename(tempPath, path);
      tempPath = undefined;
      return { key, size };
    } catch (error) {
      if (!readerDone) await reader.cancel(error).catch(() => {});
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      reader.releaseLock();
      if (file !== undefined) file.close();
      if (tempPath !== undefined) await Deno.remove(tempPath).catch(() => {});
    }
  }

  /**
   * Describes an object.
   *
   * @param key The object's key.
   * @returns Its key, size and mtime, or `null` when it does not exist.
   * @throws {InvalidObjectKeyError} When the key is invalid or escapes the root.
   *
   * @example Checking an object's size
   * ```ts
   * import { ObjectStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const store = new ObjectStore(await Deno.makeTempDir());
   * assert.equal(await store.stat("a"), null);
   * await store.put("a", ReadableStream.from([new Uint8Array(5)]));
   * assert.equal((await store.stat("a"))?.size, 5);
   * await Deno.remove(store.root, { recursive: true });
   * ```
   */
  async stat(key: string): Promise<ObjectInfo | null> {
    const path = await this.#resolve(key);
    try {
      const info = await Deno.stat(path);
      if (!info.isFile) return null;
      return { key, size: info.size, mtime: info.mtime };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
  }

  /**
   * Reports whether an object exists.
   *
   * @param key The object's key.
   * @returns `true` when an object has this key.
   * @throws {InvalidObjectKeyError} When the key is invalid or escapes the root.
   *
   * @example Checking for an object
   * ```ts
   * import { ObjectStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const store = new ObjectStore(await Deno.makeTempDir());
   * assert.equal(await store.exists("a"), false);
   * await Deno.remove(store.root, { recursive: true });
   * ```
   */
  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== null;
  }

  /**
   * Deletes an object. Empty directories are left in place.
   *
   * @param key The object's key.
   * @returns `true` when an object was deleted, `false` when none existed.
   * @throws {InvalidObjectKeyError} When the key is invalid or escapes the root.
   *
   * @example Deleting an object
   * ```ts
   * import { ObjectStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const store = new ObjectStore(await Deno.makeTempDir());
   * await store.put("a", ReadableStream.from([new Uint8Array(1)]));
   * assert.equal(await store.delete("a"), true);
   * assert.equal(await store.delete("a"), false);
   * await Deno.remove(store.root, { recursive: true });
   * ```
   */
  async delete(key: string): Promise<boolean> {
    const path = await this.#resolve(key);
    try {
      const info = await Deno.lstat(path);
      if (!info.isFile) return false;
      await Deno.remove(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  /**
   * Lists the keys that start with `prefix`, in sorted order. Temp files of
   * writes in progress and symlinks are skipped.
   *
   * @param prefix A key prefix; `""` lists everything.
   * @returns The matching keys.
   * @throws {InvalidObjectKeyError} When the prefix contains NUL, a backslash, or `.`/`..` segments.
   *
   * @example Listing by prefix
   * ```ts
   * import { ObjectStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const store = new ObjectStore(await Deno.makeTempDir());
   * for (const key of ["b/2", "a/1", "b/1"]) {
   *   await store.put(key, ReadableStream.from([new Uint8Array(1)]));
   * }
   * assert.deepEqual(await Array.fromAsync(store.list("b/")), ["b/1", "b/2"]);
   * await Deno.remove(store.root, { recursive: true });
   * ```
   */
  async *list(prefix: string = ""): AsyncIterable<string> {
    if (typeof prefix !== "string") {
      throw new InvalidObjectKeyError(prefix, "a prefix must be a string");
    }
    if (prefix !== "") {
      const reason = keyProblem(prefix, true);
      if (reason !== null) throw new InvalidObjectKeyError(prefix, reason);
    }
    // Walk only the directory that contains every match.
    const base = prefix.slice(0, prefix.lastIndexOf("/") + 1);
    const keys: string[] = [];
    const walk = async (relative: string): Promise<void> => {
      let entries: AsyncIterable<Deno.DirEntry>;
      try {
        entries = Deno.readDir(
          relative === "" ? this.root : `${this.root}/${relative}`,
        );
        for await (const entry of entries) {
          const key = relative + entry.name;
          if (entry.isDirectory) {
            if (
              key.length < prefix.length ? prefix.startsWith(key) : true
            ) {
              await walk(`${key}/`);
            }
          } else if (
            entry.isFile && !TEMP_NAME.test(entry.name) &&
            key.startsWith(prefix)
          ) {
            keys.push(key);
          }
        }
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return;
        throw error;
      }
    };
    await walk(base);
    keys.sort();
    yield* keys;
  }

  /** Validates `key` and returns its absolute path, refusing symlink escapes. */
  async #resolve(key: string): Promise<string> {
    const reason = keyProblem(key, false);
    if (reason !== null) throw new InvalidObjectKeyError(key, reason);
    this.#realRoot ??= Deno.realPath(this.root).catch(async (error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      await Deno.mkdir(this.root, { recursive: true });
      return await Deno.realPath(this.root);
    });
    let realRoot: string;
    try {
      realRoot = await this.#realRoot;
    } catch (error) {
      this.#realRoot = undefined;
      throw error;
    }
    const path = `${this.root}/${key}`;
    // The deepest existing ancestor (or the path itself) decides where the
    // path really points: anything below it does not exist yet, so it
    // cannot be a link.
    let probe = path;
    while (true) {
      try {
        const real = await Deno.realPath(probe);
        if (real !== realRoot && !real.startsWith(`${realRoot}/`)) {
          throw new InvalidObjectKeyError(key, "it resolves outside the root");
        }
        return path;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        const slash = probe.lastIndexOf("/");
        if (probe.length <= this.root.length || slash <= 0) return path;
        probe = probe.slice(0, slash);
      }
    }
  }
}

/** Why `key` is not a valid key (or prefix), or `null` when it is. */
function keyProblem(key: unknown, isPrefix: boolean): string | null {
  if (typeof key !== "string") return "a key must be a string";
  if (key.length === 0) return "a key must not be empty";
  if (key.length > MAX_KEY_LENGTH) {
    return `a key must be at most ${MAX_KEY_LENGTH} characters, got ${key.length}`;
  }
  if (key.includes("\0")) return "a key must not contain NUL";
  if (key.includes("\\")) return "a key must not contain backslashes";
  if (key.startsWith("/")) return "a key must be relative";
  const segments = key.split("/");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (segment === "" && !(isPrefix && last)) {
      return "a key must not contain empty segments";
    }
    if (segment === "." || segment === "..") {
      return `a key must not contain "${segment}" segments`;
    }
    if (last && !isPrefix && TEMP_NAME.test(segment)) {
      return "a key must not name a temp file";
    }
  }
  return null;
}

function isAbsolute(path: string): boolean {
  return path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path);
}

function trimSlashes(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? "/" : trimmed;
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(36)).join("");
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    offset += await file.write(bytes.subarray(offset));
  }
}

/** A pull stream over `file` that owns it: every way out closes it once. */
function fileStream(
  file: Deno.FsFile,
  chunkSize: number,
  signal: AbortSignal | undefined,
): ReadableStream<Uint8Array> {
  let open = true;
  const close = (): void => {
    if (!open) return;
    open = false;
    signal?.removeEventListener("abort", onAbort);
    file.close();
  };
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;
  const onAbort = (): void => {
    controllerRef?.error(signal?.reason);
    close();
  };
  return new ReadableStream<Uint8Array>({
    start(controller): void {
      controllerRef = controller;
      signal?.addEventListener("abort", onAbort, { once: true });
    },
    async pull(controller): Promise<void> {
      if (!open) return;
      const buffer = new Uint8Array(chunkSize);
      let read: number | null;
      try {
        read = await file.read(buffer);
      } catch (error) {
        if (!open) return;
        close();
        controller.error(error);
        return;
      }
      if (!open) return;
      if (read === null) {
        close();
        controller.close();
        return;
      }
      controller.enqueue(read === chunkSize ? buffer : buffer.slice(0, read));
    },
    cancel(): void {
      close();
    },
  }, { highWaterMark: 1 });
}
