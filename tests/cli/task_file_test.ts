import assert from "node:assert/strict";
import { readTaskFile, streamTaskFile } from "../../lib/cli/task_file.ts";
import type { TaskInput } from "../../lib/queue/types.ts";
import { tempDir } from "../_helpers.ts";

/** Every batch of `streamTaskFile`, and the tasks in order. */
async function stream(
  path: string,
  size: number,
): Promise<{ sizes: number[]; tasks: TaskInput[] }> {
  const sizes: number[] = [];
  const tasks: TaskInput[] = [];
  for await (const batch of streamTaskFile(path, size)) {
    sizes.push(batch.length);
    tasks.push(...batch);
  }
  return { sizes, tasks };
}

Deno.test("streamTaskFile() reads what readTaskFile() reads, across many reads and characters split between them", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.json`;
  // Far more than one read, with two-, three- and four-byte characters,
  // strings holding brackets, commas and escaped quotes, and nesting, so
  // that reads end inside items, strings and characters alike.
  const items = Array.from(
    { length: 3000 },
    (_, i) =>
      i % 3 === 0 ? { image_key: `img/é${i}.png`, size: "thumb" } : {
        type: "noop",
        payload: {
          n: i,
          text: `€ ${"😀".repeat(i % 7)} [x, "y"] }`,
          deep: [[i]],
        },
        ...(i % 5 === 0 && { queue: "q", priority: i, maxAttempts: 2 }),
      },
  );
  const text = "[\n " +
    items.map((item) => JSON.stringify(item)).join(" ,\n ") + "\n]\n";
  await Deno.writeTextFile(path, text);
  const whole = await readTaskFile(path);
  assert.equal(whole.length, items.length);
  const { sizes, tasks } = await stream(path, 256);
  assert.deepEqual(tasks, whole);
  assert.deepEqual(sizes, [...Array(11).fill(256), 3000 - 11 * 256]);
  // A byte order mark is skipped.
  await Deno.writeTextFile(path, "\uFEFF" + text);
  assert.deepEqual((await stream(path, 256)).tasks, whole);
});

Deno.test("streamTaskFile() yields nothing for an empty array, and names what is wrong with a bad file", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.json`;
  await Deno.writeTextFile(path, " [ \n ] ");
  assert.deepEqual(await stream(path, 10), { sizes: [], tasks: [] });
  await Deno.writeTextFile(
    path,
    `[${'{"type":"noop"},'.repeat(2000)}{"type":"noop"}`,
  );
  await assert.rejects(stream(path, 10), /the array is not closed/);
  await Deno.writeTextFile(
    path,
    `[${'{"type":"noop"},'.repeat(1500)}{"type":1}]`,
  );
  await assert.rejects(stream(path, 10), /Cannot read task 1500:/);
});
