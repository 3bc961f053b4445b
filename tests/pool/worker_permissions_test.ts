import assert from "node:assert/strict";
import { type PoolResult, WorkerPool } from "../../lib/pool/worker_pool.ts";
import {
  checkWorkerPermissions,
  unstableWorkerOptions,
} from "../../lib/pool/worker_permissions.ts";
import { errorClassOf } from "../../lib/errors.ts";
import { tempDir } from "../_helpers.ts";

const SANDBOXED = new URL("../fixtures/sandboxed.ts", import.meta.url);
const BUILTIN = new URL("../../lib/handlers/builtin.ts", import.meta.url);
/**
 * Narrowing needs `--unstable-worker-options` (the test task passes it);
 * without it Deno would end the test process, so these tests are skipped.
 */
const NARROWING = unstableWorkerOptions() === "enabled";

let nextId = 0;
function run(
  pool: WorkerPool,
  type: string,
  payload: unknown,
): Promise<PoolResult> {
  return pool.run({
    id: `p${++nextId}`,
    type,
    payload,
    attempt: 1,
    idempotencyKey: null,
  });
}

/** A server on 127.0.0.1 that answers "hello"; `await using` stops it. */
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

Deno.test("WorkerPool.start() refuses a bad permissions option with a TypeError naming the field", async () => {
  const cases: [unknown, RegExp][] = [
    [{ net: 3 }, /permissions\.net must be "inherit", a boolean or an array/],
    [{ read: ["ok", 1] }, /permissions\.read must be .*non-string item/],
    [{ write: "objects/" }, /permissions\.write must be .*"objects\/"/],
    [{ network: true }, /permissions has no kind "network"/],
    ["all", /permissions must be "inherit", "none" or an object/],
    [null, /permissions must be .*received null/],
  ];
  for (const [permissions, message] of cases) {
    await assert.rejects(
      WorkerPool.start({
        handlers: SANDBOXED,
        workers: 1,
        permissions: permissions as "none",
      }),
      (error: Error) => {
        assert.ok(error instanceof TypeError, error.message);
        assert.match(error.message, /^Cannot create worker pool: /);
        assert.match(error.message, message);
        return true;
      },
    );
  }
});

Deno.test("checkWorkerPermissions() accepts every documented form", () => {
  for (
    const ok of [
      "inherit",
      "none",
      {},
      { net: ["api.example.com"], read: ["objects/"], write: false },
      { env: true, sys: ["cpus"], run: "inherit", ffi: false, import: [] },
    ]
  ) {
    checkWorkerPermissions(ok, "test");
  }
});

Deno.test("errorClassOf() makes Deno's permission errors permanent, also as a cause", () => {
  const notCapable = new Error('Requires net access to "x"');
  notCapable.name = "NotCapable";
  const denied = new Error("Permission denied (os error 13)");
  denied.name = "PermissionDenied";
  assert.equal(errorClassOf(notCapable), "permanent");
  assert.equal(errorClassOf(denied), "permanent");
  assert.equal(
    errorClassOf(new Error("Cannot fetch", { cause: notCapable })),
    "permanent",
  );
  assert.equal(errorClassOf(new Error("flaky")), "transient");
});

Deno.test({
  name:
    "WorkerPool.run() fails a handler refused network access with a permanent NotCapable error naming permissions.net",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    await using server = helloServer();
    const host = server.host;
    for (const net of [false, ["127.0.0.1:1"]]) {
      await using pool = await WorkerPool.start({
        handlers: SANDBOXED,
        workers: 1,
        permissions: { net },
      });
      const result = await run(pool, "fetchText", { url: server.url });
      assert.equal(result.ok, false);
      if (result.ok) return;
      assert.equal(result.started, true);
      assert.equal(result.error.name, "NotCapable");
      assert.equal(result.error.errorClass, "permanent");
      assert.match(result.error.message, /^Cannot run task: /);
      assert.ok(
        result.error.message.includes(
          `Requires net access to "${host}" (not granted by permissions.net)`,
        ),
        result.error.message,
      );
    }
  },
});

Deno.test({
  name:
    "WorkerPool.run() lets a handler reach a host its permissions grant, by host or host:port",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    await using server = helloServer();
    const host = server.host;
    for (const net of [["127.0.0.1"], [host]]) {
      await using pool = await WorkerPool.start({
        handlers: SANDBOXED,
        workers: 1,
        permissions: { net },
      });
      const result = await run(pool, "fetchText", { url: server.url });
      assert.deepEqual(result.ok && result.value, "hello");
    }
  },
});

Deno.test({
  name:
    "WorkerPool.run() classifies a permission error wrapped by the handler as permanent",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    await using server = helloServer();
    await using pool = await WorkerPool.start({
      handlers: SANDBOXED,
      workers: 1,
      permissions: "none",
    });
    const result = await run(pool, "fetchWrapped", { url: server.url });
    assert.equal(
      !result.ok && result.error.message,
      "Cannot fetch: the request failed",
    );
    assert.equal(!result.ok && result.error.errorClass, "permanent");
  },
});

Deno.test({
  name:
    "WorkerPool.start() loads a handler module and its static imports with no permissions at all",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    // The built-ins re-export a module per handler.
    await using pool = await WorkerPool.start({
      handlers: BUILTIN,
      workers: 1,
      permissions: "none",
    });
    const result = await run(pool, "compute", {
      operation: "double",
      value: 21,
    });
    assert.ok(result.ok, result.ok ? "" : result.error.message);
  },
});

Deno.test({
  name:
    "WorkerPool.start() loads a file: handler module with no read permission, which handlers then lack",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    await using dir = await tempDir();
    await Deno.writeTextFile(`${dir.path}/secret.txt`, "secret");
    await using pool = await WorkerPool.start({
      handlers: SANDBOXED,
      workers: 1,
      permissions: { read: false, env: ["SLUICE_PERMISSION_TEST"] },
    });
    const read = await run(pool, "readFile", {
      path: `${dir.path}/secret.txt`,
    });
    assert.equal(!read.ok && read.error.name, "NotCapable");
    assert.match(!read.ok ? read.error.message : "", /permissions\.read/);
    // A granted variable reads; another is refused.
    const granted = await run(pool, "readEnv", {
      name: "SLUICE_PERMISSION_TEST",
    });
    assert.equal(granted.ok, true);
    const other = await run(pool, "readEnv", { name: "HOME" });
    assert.equal(!other.ok && other.error.name, "NotCapable");
    assert.match(!other.ok ? other.error.message : "", /permissions\.env/);
  },
});

Deno.test({
  name:
    "WorkerPool.run() gives handlers ctx.objects when its root is granted read and write, and refuses writes when only read is",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    await using dir = await tempDir();
    const root = `${dir.path}/objects`;
    await Deno.mkdir(root);
    {
      await using pool = await WorkerPool.start({
        handlers: SANDBOXED,
        workers: 1,
        objectsRoot: root,
        permissions: { read: [root], write: [root] },
      });
      const result = await run(pool, "putObject", {
        key: "out/a.txt",
        text: "stored",
      });
      assert.equal(result.ok && result.value, "stored");
      assert.equal(await Deno.readTextFile(`${root}/out/a.txt`), "stored");
    }
    await using pool = await WorkerPool.start({
      handlers: SANDBOXED,
      workers: 1,
      objectsRoot: root,
      permissions: { read: [root] },
    });
    const result = await run(pool, "putObject", { key: "b.txt", text: "x" });
    assert.equal(!result.ok && result.error.name, "NotCapable");
    assert.equal(!result.ok && result.error.errorClass, "permanent");
    assert.match(!result.ok ? result.error.message : "", /permissions\.write/);
  },
});

Deno.test({
  name:
    "WorkerPool.start() refuses permissions the process does not have, naming the field, and leaves no worker",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    // The tests run with --allow-net=127.0.0.1 only.
    await assert.rejects(
      WorkerPool.start({
        handlers: SANDBOXED,
        workers: 2,
        permissions: { net: ["api.example.com"] },
      }),
      /^Error: Cannot start worker pool: permissions\.net grants "api\.example\.com", which this process does not have \(start Deno with --allow-net=api\.example\.com\)/,
    );
  },
});

Deno.test({
  name:
    "WorkerPool.start() with narrowed permissions rejects with the module's error when the handler module fails to load",
  ignore: !NARROWING,
  async fn(): Promise<void> {
    await assert.rejects(
      WorkerPool.start({
        handlers: new URL("../fixtures/bad_module.ts", import.meta.url),
        workers: 1,
        permissions: "none",
      }),
      /^Error: Cannot start worker pool: .*Cannot load handlers: bad_module fixture/,
    );
  },
});
