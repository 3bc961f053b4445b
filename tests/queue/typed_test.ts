import assert from "node:assert/strict";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import type * as H from "../fixtures/typed/handlers.ts";

const fixtures = new URL("../fixtures/typed/", import.meta.url);
const handlers = new URL("handlers.ts", fixtures);
const config = new URL("../../deno.json", import.meta.url);

/**
 * Type-checks a fixture. A must-fail fixture is kept as `*.ts.txt`, so
 * that `deno task check` (which checks `tests/`) skips it; it is copied to
 * a temporary directory with its relative imports made absolute.
 */
async function check(name: string): Promise<{ ok: boolean; stderr: string }> {
  let path = new URL(name, fixtures).pathname;
  const dir = await Deno.makeTempDir();
  try {
    if (name.endsWith(".ts.txt")) {
      const source = await Deno.readTextFile(path);
      path = `${dir}/${name.slice(0, -".txt".length)}`;
      await Deno.writeTextFile(
        path,
        source.replace(
          /from "(\.{1,2}\/[^"]+)"/g,
          (_, specifier: string) => `from "${new URL(specifier, fixtures)}"`,
        ),
      );
    }
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", "--config", config.pathname, path],
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    return {
      ok: output.success,
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("TaskQueue.submit() types results by the handler module when opened typed", async () => {
  await using queue = await TaskQueue.open<typeof H>({ handlers, workers: 1 });
  const sum = await queue.submit({ type: "add", payload: { a: 2, b: 3 } });
  const hi = await queue.submit({ type: "greet", payload: { name: "ada" } });
  const pong = await queue.submit({ type: "ping" });
  const n: number = await sum.result;
  const greeting: { greeting: string; attempt: number } = await hi.result;
  const p: "pong" = await pong.result;
  assert.equal(n, 5);
  assert.deepEqual(greeting, { greeting: "hello, ada", attempt: 1 });
  assert.equal(p, "pong");
});

Deno.test("TaskQueue.submitMany() types every handle when opened typed", async () => {
  await using queue = await TaskQueue.open<
    typeof import("../fixtures/typed/handlers.ts")
  >({
    handlers,
    workers: 1,
  });
  const handles = await queue.submitMany([
    { type: "add", payload: { a: 1, b: 1 } },
    { type: "add", payload: { a: 2, b: 2 } },
  ]);
  const sums: number[] = await Promise.all(handles.map((h) => h.result));
  assert.deepEqual(sums, [2, 4]);
});

Deno.test("TaskQueue.open() typed accepts well-typed submissions under deno check", async () => {
  const { ok, stderr } = await check("ok.ts");
  assert.ok(ok, stderr);
});

Deno.test("TaskQueue.submit() fails deno check when the payload does not match its handler", async () => {
  const { ok, stderr } = await check("wrong_payload.ts.txt");
  assert.equal(ok, false);
  assert.match(stderr, /TS2353/);
  assert.match(
    stderr,
    /'c' does not exist in type '\{ a: number; b: number; \}'/,
  );
});

Deno.test("TaskQueue.submit() fails deno check when the type names no handler", async () => {
  const { ok, stderr } = await check("wrong_type.ts.txt");
  assert.equal(ok, false);
  assert.match(
    stderr,
    /'"resize"' is not assignable to type '"add" \| "greet" \| "ping"'/,
  );
});
