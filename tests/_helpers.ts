/**
 * Test helpers: waiting on events under a deadline, and temporary
 * directories that clean themselves up.
 *
 * @module
 */

/**
 * Waits until `predicate` returns true, checking after each macrotask turn,
 * and fails after `timeoutMs`. For conditions with no event to await.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs = 30_000, what = "condition" }: {
    timeoutMs?: number;
    what?: string;
  } = {},
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await predicate())) {
    if (performance.now() > deadline) {
      throw new Error(
        `Cannot wait for ${what}: still false after ${timeoutMs} ms`,
      );
    }
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
}

/** Races `promise` against a deadline; rejects with a clear message when it passes. */
export async function withDeadline<T>(
  promise: Promise<T>,
  timeoutMs: number,
  what = "promise",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`Cannot wait for ${what}: no result after ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after pending microtasks have run, to check that something is still pending. */
export async function flushMicrotasks(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** Reports whether `promise` is still pending after microtasks have run. */
export async function isPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  await flushMicrotasks();
  return !settled;
}

/** A temporary directory removed on dispose. */
export interface TempDir extends AsyncDisposable {
  /** Absolute path of the directory. */
  readonly path: string;
}

/** Creates a temporary directory; `await using` removes it. */
export async function tempDir(prefix = "sluice-test-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose](): Promise<void> {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Runs `source` as a script in `dir`, a child process allowed to read and
 * write `dir` only, with `dir` as its argument; fails on a non-zero exit
 * and returns the JSON the script printed on stdout.
 */
export async function runProbe(dir: string, source: string): Promise<unknown> {
  const script = `${dir}/probe.ts`;
  await Deno.writeTextFile(script, source);
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      script,
      dir,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.code !== 0) {
    throw new Error(
      `Cannot run probe: exit code ${output.code}\n${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
  return JSON.parse(new TextDecoder().decode(output.stdout));
}
