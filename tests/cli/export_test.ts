import assert from "node:assert/strict";
import { tempDir, withDeadline } from "../_helpers.ts";
import {
  CLI,
  HANDLERS,
  ok,
  PERMISSIONS,
  submitTasks,
  taskFile,
} from "./_cli.ts";

/** Every field of a stored task, in export order. */
const FIELDS = [
  "id",
  "type",
  "status",
  "attempts",
  "error_class",
  "last_error",
  "created_at",
  "updated_at",
  "max_attempts",
  "idempotency_key",
  "run_at",
  "started_at",
  "lease_until",
  "dedupe_until",
  "output_key",
  "version",
  "queue",
  "priority",
  "payload",
  "result",
  "progress",
  "checkpoint",
];

/** Parses CSV with quoted fields (RFC 4180). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else {
      field += c;
    }
  }
  return rows;
}

Deno.test("cli.ts export writes every field of every task as JSON or CSV", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/exp.db`;
  const payload = { text: 'a,b "c"\nd' };
  const file = await taskFile(`${dir.path}/tasks.json`, [
    { type: "shout", payload, idempotencyKey: "k1" },
  ]);
  await ok(["run", "--tasks", file, "--db", db, "--handlers", HANDLERS]);
  await ok(["submit", "--db", db, "--type", "noop", "--payload", '"a,b"']);

  const tasks = JSON.parse(
    await ok(["export", "--db", db, "--format", "json"]),
  ) as Record<string, unknown>[];
  assert.equal(tasks.length, 2);
  const [done, queued] = tasks as [
    Record<string, unknown>,
    Record<string, unknown>,
  ];
  assert.deepEqual(Object.keys(done), FIELDS);
  assert.equal(done["status"], "succeeded");
  assert.equal(done["idempotency_key"], "k1");
  assert.deepEqual(done["payload"], payload, "JSON keeps the payload exact");
  assert.equal(done["result"], 'A,B "C"\nD');
  assert.equal(done["max_attempts"], 3);
  assert.equal(typeof done["version"], "number");
  assert.match(String(done["run_at"]), /^\d{4}-\d\d-\d\dT.*Z$/);
  assert.equal(queued["status"], "queued");
  assert.equal(queued["payload"], "a,b");
  assert.equal(queued["started_at"], null);
  assert.equal(queued["result"], null);

  const csv = parseCsv(await ok(["export", "--db", db, "--format", "csv"]));
  assert.deepEqual(csv[0], FIELDS);
  assert.equal(csv.length, 3);
  const row = Object.fromEntries(FIELDS.map((f, i) => [f, csv[1]![i]]));
  assert.deepEqual(JSON.parse(row["payload"]!), payload);
  assert.equal(JSON.parse(row["result"]!), 'A,B "C"\nD');
  assert.equal(row["id"], done["id"]);
  assert.equal(row["created_at"], done["created_at"]);
  assert.equal(csv[2]![FIELDS.indexOf("payload")], '"a,b"');
  assert.match(csv[2]!.join(","), /^[0-9a-f-]{36},noop,queued,0,,,/);

  // --json is --format json.
  assert.deepEqual(
    JSON.parse(await ok(["export", "--db", db, "--json"])),
    tasks,
  );
});

Deno.test("cli.ts export ends quietly with exit 0 when its reader stops early (| head)", async (t) => {
  await using dir = await tempDir();
  const db = `${dir.path}/pipe.db`;
  await submitTasks(db, "noop", "x".repeat(200), 2000);
  for (const format of ["json", "csv"]) {
    await t.step(format, async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-check",
          ...PERMISSIONS,
          CLI,
          "export",
          "--db",
          db,
          "--format",
          format,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      // Read the first chunk, as `head` does, then close the pipe.
      const reader = child.stdout.getReader();
      const first = await reader.read();
      assert.ok(!first.done && first.value.length > 0);
      await reader.cancel();
      const status = await withDeadline(child.status, 20_000, "export");
      assert.equal(status.code, 0);
      assert.equal(await stderr, "", "nothing is said about the closed pipe");
    });
  }
});
