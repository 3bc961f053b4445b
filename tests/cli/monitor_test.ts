import assert from "node:assert/strict";
import { tempDir, waitFor, withDeadline } from "../_helpers.ts";
import {
  CLI,
  cli,
  ok,
  PERMISSIONS,
  spawn,
  type Status,
  taskFile,
} from "./_cli.ts";

/** A `monitor --format json` line. */
interface Frame extends Status {
  rates: {
    window_s: number | null;
    succeeded_per_s: number | null;
    dead_per_s: number | null;
  };
}

Deno.test("cli.ts monitor --once prints one frame, and --format json|csv one snapshot", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/mon.db`;
  await ok(["submit", "--db", db, "--type", "noop", "--count", "3"]);

  const frame = await ok(["monitor", "--db", db, "--once"]);
  assert.match(frame, /queued\s+3/);
  assert.equal(frame.includes("\x1b["), false);

  const csv = (await ok(["monitor", "--db", db, "--once", "--format", "csv"]))
    .trim().split("\n");
  assert.equal(csv.length, 2);
  const header = csv[0]!.split(",");
  const row = csv[1]!.split(",");
  assert.equal(header.length, row.length);
  assert.equal(row[header.indexOf("queued")], "3");
  assert.equal(row[header.indexOf("depth")], "3");
  assert.ok(header.includes("rates.succeeded_per_s"));

  const json = (await ok(["monitor", "--db", db, "--once", "--json"]))
    .trim().split("\n");
  assert.equal(json.length, 1);
  const snapshot = JSON.parse(json[0]!);
  assert.equal(snapshot.counts.queued, 3);
  assert.equal(
    snapshot.rates.succeeded_per_s,
    null,
    "no rate from one reading",
  );
  // The snapshot is status's (without its list of running tasks), plus
  // the rates.
  const { rates: _, ...rest } = snapshot;
  const { running: __, ...counted } = JSON.parse(
    await ok(["status", "--db", db, "--json"]),
  );
  assert.deepEqual(Object.keys(rest), Object.keys(counted));

  // The deprecated spelling still works, with a warning.
  const old = await cli(["monitor", "--db", db, "--once", "--export", "json"]);
  assert.equal(old.code, 0, old.stderr);
  assert.equal(JSON.parse(old.stdout).counts.queued, 3);
  assert.match(old.stderr, /warning: --export is deprecated.*use --format/);
});

Deno.test("cli.ts monitor shows rates over the last seconds and quits on q", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/rates.db`;
  await ok(["submit", "--db", db, "--type", "noop"]);
  await using monitor = spawn(
    ["monitor", "--db", db, "--format", "json", "--interval", "50"],
    { stdin: "piped" },
  );
  await monitor.until((o) => o.stdout.includes("\n"), "the first frame");
  const first = JSON.parse(monitor.stdout.split("\n")[0]!);
  assert.deepEqual(first.rates, {
    window_s: null,
    succeeded_per_s: null,
    dead_per_s: null,
  });
  // Another process runs 20 tasks that succeed and one that dies (and the
  // queued one).
  const file = await taskFile(`${dir.path}/tasks.json`, [
    ...Array.from({ length: 20 }, () => ({ type: "noop" })),
    { type: "fail", payload: { error_message: "no" } },
  ]);
  assert.equal((await cli(["run", "--tasks", file, "--db", db])).code, 1);
  const frames = (): Frame[] =>
    monitor.stdout.trim().split("\n").map((line) => JSON.parse(line));
  await monitor.until(
    () =>
      frames().some((f) =>
        f.totals.succeeded === 21 && f.rates.succeeded_per_s! > 0 &&
        f.rates.dead_per_s! > 0
      ),
    "a frame with both rates",
  );
  const frame = frames().find((f) => f.totals.succeeded === 21)!;
  assert.ok(frame.rates.window_s! > 0 && frame.rates.window_s! <= 5.5);
  await monitor.write("q");
  const exit = await monitor.exit();
  assert.equal(exit.code, 0, exit.stderr);
});

Deno.test("cli.ts monitor exits 0 on SIGINT and SIGTERM", async (t) => {
  await using dir = await tempDir();
  const db = `${dir.path}/sig.db`;
  await ok(["submit", "--db", db, "--type", "noop"]);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    await t.step(signal, async () => {
      await using monitor = spawn(["monitor", "--db", db, "--interval", "50"]);
      await monitor.until((o) => /queued\s+1/.test(o.stdout), "a frame");
      monitor.child.kill(signal);
      assert.equal((await monitor.exit()).code, 0);
    });
  }
});

const ESC = "\x1b";

/** `script` gives monitor a terminal; `stty -a` shows its mode afterwards. */
function onTerminal(
  db: string,
): ReturnType<typeof Deno.Command.prototype.spawn> {
  const monitor = [
    Deno.execPath(),
    "run",
    "--no-check",
    ...PERMISSIONS,
    CLI,
    "monitor",
    "--db",
    db,
    "--interval",
    "50",
  ].join(" ");
  return new Deno.Command("script", {
    args: ["-qec", `${monitor}; code=$?; stty -a; exit $code`, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { TERM: "xterm" },
  }).spawn();
}

Deno.test({
  name:
    "cli.ts monitor on a terminal says how to quit, quits on q and Ctrl-C, and restores the terminal",
  ignore: !(await Deno.stat("/usr/bin/script").then(() => true, () => false)),
  async fn(t): Promise<void> {
    await using dir = await tempDir();
    const db = `${dir.path}/tty.db`;
    await ok(["submit", "--db", db, "--type", "noop", "--count", "2"]);
    for (const [name, key] of [["q", "q"], ["Ctrl-C", "\x03"]] as const) {
      await t.step(name, async () => {
        const child = onTerminal(db);
        const writer = child.stdin.getWriter();
        let output = "";
        const decoder = new TextDecoder();
        const reading = (async () => {
          for await (const chunk of child.stdout) {
            output += decoder.decode(chunk, { stream: true });
          }
        })();
        const stderr = new Response(child.stderr).text();
        try {
          await waitFor(() => output.includes("Press q or Ctrl-C to quit."), {
            timeoutMs: 20_000,
            what: "the quit hint on screen",
          });
          assert.ok(output.includes(`${ESC}[?25l`), "the cursor is hidden");
          assert.match(output, /queued +2 /);
          await writer.write(new TextEncoder().encode(key));
          const status = await withDeadline(child.status, 20_000, "monitor");
          await reading;
          assert.equal(status.code, 0, output + (await stderr));
          const end = output.lastIndexOf("Press q or Ctrl-C to quit.");
          assert.ok(
            output.slice(end).includes(`${ESC}[?25h`),
            "the cursor is back",
          );
          // stty ran after monitor: canonical mode and echo are on again.
          assert.match(output, /(^|\s)icanon(\s|$)/m);
          assert.match(output, /(^|\s)echo(\s|$)/m);
        } finally {
          await writer.close().catch(() => {});
          try {
            child.kill("SIGKILL");
          } catch {
            // Exited.
          }
          await child.status;
          await reading;
          await stderr;
        }
      });
    }
  },
});
