import assert from "node:assert/strict";
import { generateTasks, SIZES } from "../../input/generate_tasks.ts";
import { tempDir } from "../_helpers.ts";

const script =
  new URL("../../input/generate_tasks.ts", import.meta.url).pathname;

async function generate(
  args: string[],
): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-write", script, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

Deno.test("generateTasks() gives the same tasks for the same seed", () => {
  const a = generateTasks(500, { seed: 7, dupRate: 0.2 });
  assert.deepEqual(a, generateTasks(500, { seed: 7, dupRate: 0.2 }));
  assert.notDeepEqual(a, generateTasks(500, { seed: 8, dupRate: 0.2 }));
  assert.equal(a[0]!.image_key, "img/000000.jpg");
  assert.ok(a.every((t) => SIZES.includes(t.size)));
});

Deno.test("generateTasks() repeats earlier pairs at about the dup rate", () => {
  const tasks = generateTasks(5000, { seed: 1, dupRate: 0.3 });
  const unique = new Set(tasks.map((t) => `${t.image_key}:${t.size}`)).size;
  const duplicates = (tasks.length - unique) / tasks.length;
  assert.ok(
    duplicates > 0.25 && duplicates < 0.35,
    `duplicate share ${duplicates}`,
  );
  assert.equal(
    new Set(generateTasks(1000, { seed: 1 }).map((t) => t.image_key)).size,
    1000,
  );
});

Deno.test("generate_tasks.ts writes a file and exits 2 on bad arguments", async () => {
  await using dir = await tempDir();
  const out = `${dir.path}/tasks.json`;
  assert.equal((await generate(["20", out, "--seed", "3"])).code, 0);
  const written = JSON.parse(await Deno.readTextFile(out));
  assert.deepEqual(written, generateTasks(20, { seed: 3 }));
  for (
    const bad of [[], ["x", out], ["-1", out], ["5"], [
      "5",
      out,
      "--dup-rate",
      "1",
    ], [
      "5",
      out,
      "--nope",
    ]]
  ) {
    const { code, stderr } = await generate(bad);
    assert.equal(code, 2, `args ${JSON.stringify(bad)}`);
    assert.match(stderr, /error: .+\nusage:/);
  }
});
