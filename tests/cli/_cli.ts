/**
 * Helpers for the CLI tests: `cli.ts` run as a child process (as users
 * run it), on real SQLite files and PostgreSQL schemas.
 *
 * Children run with `--no-check`, so that no deadline includes a type
 * check.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { waitFor, withDeadline } from "../_helpers.ts";

/** Path of `cli.ts`. */
export const CLI: string = fileURLToPath(
  new URL("../../cli.ts", import.meta.url),
);

/** Path of the handler module the CLI tests load with `--handlers`. */
export const HANDLERS: string = fileURLToPath(
  new URL("../fixtures/cli_handlers.ts", import.meta.url),
);

/**
 * Where a command works: a `--db` value, or the arguments that name it
 * (`["--db", url, "--pg-schema", schema]`).
 */
export type Db = string | readonly string[];

/**
 * The arguments that name `db`.
 *
 * @param db Where.
 * @returns `["--db", db]`, or `db` itself.
 */
export function dbArgs(db: Db): string[] {
  return typeof db === "string" ? ["--db", db] : [...db];
}

/** The commands, as `cli.ts --help` lists them. */
export const COMMANDS = [
  "run",
  "submit",
  "start",
  "status",
  "monitor",
  "dlq",
  "export",
  "purge",
  "schedule",
] as const;

/** The permissions the CLI runs with in these tests. */
export const PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-net=127.0.0.1",
];

const decoder = new TextDecoder();

/** How to run the CLI. */
export interface CliOptions {
  /** Permission flags; {@linkcode PERMISSIONS} by default. */
  permissions?: readonly string[];
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** What a finished CLI process left. */
export interface Output {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

function command(
  args: readonly string[],
  options: CliOptions,
  stdio: Pick<Deno.CommandOptions, "stdin" | "stdout" | "stderr">,
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      ...(options.permissions ?? PERMISSIONS),
      CLI,
      ...args,
    ],
    ...stdio,
    ...(options.cwd !== undefined && { cwd: options.cwd }),
    ...(options.env !== undefined && { env: options.env }),
  });
}

/**
 * Runs `cli.ts` with `args` to the end.
 *
 * @param args The command line.
 * @param options Permissions, working directory, environment.
 * @returns Exit code and output.
 */
export async function cli(
  args: readonly string[],
  options: CliOptions = {},
): Promise<Output> {
  const output = await command(args, options, {
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * Runs `cli.ts` with `args` and asserts that it exits 0.
 *
 * @param args The command line.
 * @param options Permissions, working directory, environment.
 * @returns Its stdout.
 */
export async function ok(
  args: readonly string[],
  options: CliOptions = {},
): Promise<string> {
  const result = await cli(args, options);
  assert.equal(
    result.code,
    0,
    `${args.join(" ")} exited ${result.code}: ${result.stderr}`,
  );
  return result.stdout;
}

/**
 * Submits `count` tasks of one type and payload with `cli.ts submit`.
 *
 * @param db Where.
 * @param type The task type.
 * @param payload The payload (JSON).
 * @param count How many.
 * @param more Further `submit` flags (e.g. `--queue`).
 * @returns Their ids.
 */
export async function submitTasks(
  db: Db,
  type: string,
  payload: unknown = null,
  count = 1,
  more: readonly string[] = [],
): Promise<string[]> {
  const stdout = await ok([
    "submit",
    ...dbArgs(db),
    "--type",
    type,
    "--payload",
    JSON.stringify(payload),
    "--count",
    String(count),
    ...more,
  ]);
  return stdout.trim().split("\n");
}

/** What `status --json` prints. */
export interface Status {
  /** Tasks by state. */
  counts: Record<
    "queued" | "claimed" | "running" | "succeeded" | "failed" | "dead",
    number
  >;
  /** Queued plus failed due. */
  depth: number;
  /** Dead tasks. */
  dead_letters: number;
  /** Every task. */
  total: number;
  /** Tasks ever succeeded and dead-lettered. */
  totals: { succeeded: number; dead: number };
  /** Age of the oldest due task. */
  oldest_queued_age_ms: number | null;
  /** Each queue's tasks by store status, and its totals. */
  queues: {
    queue: string;
    counts: Record<
      "queued" | "running" | "succeeded" | "failed" | "dead",
      number
    >;
    totals: { submitted: number; succeeded: number; dead: number };
  }[];
  /** The oldest running tasks, with their handlers' progress. */
  running: {
    id: string;
    type: string;
    attempts: number;
    started_at: string | null;
    progress: unknown;
  }[];
}

/**
 * `cli.ts status --json` of a database.
 *
 * @param db Where.
 * @returns The snapshot.
 */
export async function status(db: Db): Promise<Status> {
  return JSON.parse(await ok(["status", ...dbArgs(db), "--json"])) as Status;
}

/**
 * Writes a task file.
 *
 * @param path Where.
 * @param tasks The items.
 * @returns `path`.
 */
export async function taskFile(
  path: string,
  tasks: readonly unknown[],
): Promise<string> {
  await Deno.writeTextFile(path, JSON.stringify(tasks));
  return path;
}

/**
 * A running `cli.ts` process whose output is collected as it comes.
 * Disposing kills it if it is still running.
 */
export interface CliProcess extends AsyncDisposable {
  /** The child. */
  readonly child: Deno.ChildProcess;
  /** Stdout so far. */
  readonly stdout: string;
  /** Stderr so far. */
  readonly stderr: string;
  /**
   * Waits until stdout or stderr so far satisfies `test`.
   *
   * @param test Checks the text so far.
   * @param what For the timeout message.
   * @param timeoutMs The deadline.
   */
  until(
    test: (output: { stdout: string; stderr: string }) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<void>;
  /**
   * Writes to its stdin (spawned with `stdin: "piped"`).
   *
   * @param text What to write.
   */
  write(text: string): Promise<void>;
  /**
   * Sends `signal` and waits for it to exit, as {@linkcode CliProcess.exit}.
   *
   * @param signal The signal.
   * @returns Exit code and output.
   */
  stop(signal?: Deno.Signal): Promise<Output>;
  /**
   * Waits for it to exit, within a deadline, with all its output read.
   *
   * @param timeoutMs The deadline.
   * @returns Exit code and output.
   */
  exit(timeoutMs?: number): Promise<Output>;
}

/**
 * Starts `cli.ts` with `args` in the background.
 *
 * @param args The command line.
 * @param options Permissions, working directory, environment, and whether
 *   stdin is a pipe the test writes to.
 * @returns The process.
 */
export function spawn(
  args: readonly string[],
  options: CliOptions & { stdin?: "piped" | "null" } = {},
): CliProcess {
  const child = command(args, options, {
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const text = { stdout: "", stderr: "" };
  const collect = async (
    stream: ReadableStream<Uint8Array>,
    into: "stdout" | "stderr",
  ): Promise<void> => {
    const textDecoder = new TextDecoder();
    for await (const chunk of stream) {
      text[into] += textDecoder.decode(chunk, { stream: true });
    }
  };
  const collected = Promise.all([
    collect(child.stdout, "stdout"),
    collect(child.stderr, "stderr"),
  ]);
  const writer = options.stdin === "piped"
    ? child.stdin.getWriter()
    : undefined;
  const encoder = new TextEncoder();
  return {
    child,
    get stdout(): string {
      return text.stdout;
    },
    get stderr(): string {
      return text.stderr;
    },
    async until(test, what, timeoutMs = 20_000): Promise<void> {
      await waitFor(() => test(text), { timeoutMs, what });
    },
    async write(value): Promise<void> {
      await writer!.write(encoder.encode(value));
    },
    stop(signal: Deno.Signal = "SIGTERM"): Promise<Output> {
      child.kill(signal);
      return this.exit();
    },
    async exit(timeoutMs = 20_000): Promise<Output> {
      const { code } = await withDeadline(
        child.status,
        timeoutMs,
        `${args[0]} to exit`,
      );
      await collected;
      return { code, ...text };
    },
    async [Symbol.asyncDispose](): Promise<void> {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await writer?.close().catch(() => {});
      await child.status;
      await collected;
    },
  };
}

/**
 * Starts `cli.ts start` on `db`, logging at warn.
 *
 * @param db Where.
 * @param extra More arguments.
 * @returns The process.
 */
export function startWorker(
  db: Db,
  extra: readonly string[] = [],
): CliProcess {
  return spawn(["start", ...dbArgs(db), "--log-level", "warn", ...extra]);
}

/**
 * Waits until `status --json` of `db` satisfies `test`.
 *
 * @param db Where.
 * @param test Checks a snapshot.
 * @param what For the timeout message.
 * @returns The snapshot that passed.
 */
export async function untilStatus(
  db: Db,
  test: (s: Status) => boolean,
  what: string,
): Promise<Status> {
  let seen: Status | undefined;
  await waitFor(async () => {
    const s = await status(db);
    if (test(s)) seen = s;
    return seen !== undefined;
  }, { timeoutMs: 30_000, what });
  return seen!;
}
