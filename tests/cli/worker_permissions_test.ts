import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { RunSummary } from "../../lib/cli/run.ts";
import { tempDir } from "../_helpers.ts";
import {
  cli,
  spawn,
  status,
  submitTasks,
  taskFile,
  untilStatus,
} from "./_cli.ts";

const SANDBOXED = fileURLToPath(
  new URL("../fixtures/sandboxed.ts", import.meta.url),
);

/** A server on 127.0.0.1 answering "hello"; `await using` stops it. */
function helloServer(): { host: string; url: string } & AsyncDisposable {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("hello"),
  );
  const host = `127.0.0.1:${server.addr.port}`;
  return {
    host,
    url: `http://${host}/`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** `run` of `items` with the sandboxed handlers, one worker, then `extra`. */
async function runTasks(
  dir: string,
  items: unknown[],
  ...extra: string[]
): Promise<{ code: number; summary: RunSummary | null; stderr: string }> {
  const file = await taskFile(
    `${dir}/tasks-${crypto.randomUUID()}.json`,
    items,
  );
  const result = await cli([
    "run",
    "--tasks",
    file,
    "--db",
    ":memory:",
    "--workers",
    "1",
    "--max-attempts",
    "5",
    "--handlers",
    SANDBOXED,
    "--json",
    ...extra,
  ]);
  return {
    code: result.code,
    summary: result.stdout === "" ? null : JSON.parse(result.stdout),
    stderr: result.stderr,
  };
}

Deno.test("cli.ts run --worker-allow-net lets handlers reach only the hosts listed; a refused task is dead at once, not retried", async () => {
  await using dir = await tempDir();
  await using server = helloServer();
  const fetchIt = { type: "fetchText", payload: { url: server.url } };
  const refused = await runTasks(
    dir.path,
    [fetchIt],
    "--worker-allow-net=127.0.0.1:1,127.0.0.1:2",
  );
  assert.equal(refused.code, 1, refused.stderr);
  assert.equal(refused.summary?.dead, 1);
  assert.equal(refused.summary?.retried, 0);
  assert.match(
    refused.stderr,
    new RegExp(
      `Requires net access to \\\\"${server.host}\\\\" \\(not granted by permissions\\.net\\)`,
    ),
  );
  const allowed = await runTasks(
    dir.path,
    [fetchIt],
    `--worker-allow-net=${server.host}`,
  );
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(allowed.summary?.succeeded, 1);
});

Deno.test("cli.ts run --worker-deny-all denies handlers everything; a bare --worker-allow-env grants all of env", async () => {
  await using dir = await tempDir();
  const readEnv = { type: "readEnv", payload: { name: "HOME" } };
  const denied = await runTasks(dir.path, [readEnv], "--worker-deny-all");
  assert.equal(denied.code, 1, denied.stderr);
  assert.equal(denied.summary?.dead, 1);
  assert.equal(denied.summary?.retried, 0);
  assert.match(denied.stderr, /not granted by permissions\.env/);
  const granted = await runTasks(
    dir.path,
    [readEnv],
    "--worker-deny-all",
    "--worker-allow-env",
  );
  assert.equal(granted.code, 0, granted.stderr);
  assert.equal(granted.summary?.succeeded, 1);
});

Deno.test("cli.ts run refuses an empty item in a --worker-allow-* list as a usage error", async () => {
  const result = await cli([
    "run",
    "--tasks",
    "none.json",
    "--worker-allow-read=objects,,tmp",
  ]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /--worker-allow-read must be given alone or with a comma-separated list, got "objects,,tmp"/,
  );
});

Deno.test("cli.ts run --worker-* without Deno's --unstable-worker-options fails with a clear error, not Deno's exit", async () => {
  await using dir = await tempDir();
  const file = await taskFile(`${dir.path}/tasks.json`, [
    { type: "readEnv", payload: { name: "HOME" } },
  ]);
  // -A lets the CLI read its command line; --no-config drops the
  // project's "unstable": ["worker-options"].
  const result = await cli(
    [
      "run",
      "--tasks",
      file,
      "--db",
      ":memory:",
      "--handlers",
      SANDBOXED,
      "--worker-deny-all",
    ],
    { permissions: ["-A", "--no-config"] },
  );
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    /error: Cannot start worker pool: narrowing worker permissions needs Deno's --unstable-worker-options flag/,
  );
  const inherit = await cli(
    ["run", "--tasks", file, "--db", ":memory:", "--handlers", SANDBOXED],
    { permissions: ["-A", "--no-config"] },
  );
  assert.equal(inherit.code, 0, "without the flags the workers inherit");
});

Deno.test("cli.ts start --worker-allow-* narrows the workers of the queue it runs and logs their permissions", async () => {
  await using dir = await tempDir();
  await using server = helloServer();
  const db = `${dir.path}/tasks.db`;
  await submitTasks(db, "fetchText", { url: server.url });
  await submitTasks(db, "readEnv", { name: "HOME" });
  await using worker = spawn([
    "start",
    "--db",
    db,
    "--handlers",
    SANDBOXED,
    "--workers",
    "1",
    `--worker-allow-net=${server.host}`,
    "--log-level",
    "info",
  ]);
  await worker.until(
    ({ stderr }) => stderr.includes("worker_started"),
    "worker_started",
  );
  assert.ok(
    worker.stderr.includes(
      `"worker_permissions":{"net":["${server.host}"]}`,
    ),
    worker.stderr,
  );
  await untilStatus(
    db,
    (s) => s.counts.succeeded === 1 && s.counts.dead === 1,
    "one succeeded, one dead",
  );
  assert.equal((await worker.stop("SIGTERM")).code, 0);
  const final = await status(db);
  assert.equal(final.counts.failed, 0, "the refused task was not retried");
});
