import assert from "node:assert/strict";
import { VERSION } from "../mod.ts";

Deno.test("VERSION matches the version in deno.json", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  assert.equal(VERSION, config.version);
});

/** A project of its own, beside this one, that imports Sluice by path. */
async function project(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sluice-user-" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return dir;
}

const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;

Deno.test("TaskQueue opens SQLite and PostgreSQL queues when imported by path from a project with its own deno.json", async () => {
  const sluice = new URL("../mod.ts", import.meta.url).href;
  const schema = `sluice_user_${crypto.randomUUID().slice(0, 8)}`;
  const dir = await project({
    // The project maps a name of its own to Sluice; it knows nothing of
    // Sluice's dependencies (no "postgres" entry).
    "deno.json": JSON.stringify({ imports: { "sluice": sluice } }),
    "main.ts": `import { TaskQueue } from "sluice";
import { PostgresTaskStore } from ${
      JSON.stringify(new URL("../store.ts", import.meta.url).href)
    };
const [dir, pg, schema] = Deno.args;
const results = [];
for (const db of [\`\${dir}/tasks.db\`, ...(pg ? [pg] : [])]) {
  await using queue = await TaskQueue.open({
    db,
    postgres: { schema },
    workers: 1,
    logger: { level: "error" },
  });
  const handle = await queue.submit({
    type: "compute",
    payload: { operation: "double", value: 21 },
  });
  results.push([queue.store.kind, await handle.result]);
}
if (pg) await PostgresTaskStore.drop(pg, { schema });
console.log(JSON.stringify(results));
`,
  });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        `--allow-read`,
        `--allow-write=${dir}`,
        "--allow-ffi",
        "--allow-net=127.0.0.1:5432",
        "--allow-env=PGAPPNAME,PGTARGETSESSIONATTRS",
        "main.ts",
        dir,
        ...(PG === undefined ? [] : [PG, schema]),
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const results = JSON.parse(new TextDecoder().decode(output.stdout));
    assert.deepEqual(results[0], ["sqlite-ffi", { result: "42" }]);
    if (PG !== undefined) {
      assert.deepEqual(results[1], ["postgres", { result: "42" }]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
