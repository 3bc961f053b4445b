/**
 * The README's permission block, run line by line under a pseudo-terminal
 * with standard input closed: on a terminal Deno asks for a permission a
 * process lacks instead of failing, so a command that touches anything
 * beyond its documented flags shows a prompt here. A prompt, or a non-zero
 * exit, fails the test.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { PostgresTaskStore } from "../../store.ts";
import { tempDir } from "../_helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);
const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;
const MARKER = "<!-- permissions:";

/**
 * Lines run whether or not the README has them yet (its rows for `purge`
 * and `schedule` are added separately); a line the README has is run once.
 */
const REQUIRED: readonly string[] = [
  "deno run --allow-read=$DIR --allow-ffi $SLUICE/cli.ts purge --db $DIR/tasks.db --keep 1 --dry-run",
  "deno run --allow-read=$DIR --allow-write=$DIR --allow-ffi $SLUICE/cli.ts purge --db $DIR/tasks.db --older-than 7d",
  "deno run --allow-net=HOST:PORT --allow-env=PGAPPNAME,PGTARGETSESSIONATTRS $SLUICE/cli.ts purge --db $PG --keep 1",
  'deno run --allow-read=$DIR --allow-write=$DIR --allow-ffi $SLUICE/cli.ts schedule add nightly --db $DIR/tasks.db --cron "0 3 * * *" --type noop',
  "deno run --allow-read=$DIR --allow-ffi $SLUICE/cli.ts schedule list --db $DIR/tasks.db",
  "deno run --allow-read=$DIR --allow-write=$DIR --allow-ffi $SLUICE/cli.ts schedule remove nightly --db $DIR/tasks.db",
  'deno run --allow-net=HOST:PORT --allow-env=PGAPPNAME,PGTARGETSESSIONATTRS $SLUICE/cli.ts schedule add nightly --db $PG --cron "0 3 * * *" --type noop',
  "deno run --allow-net=HOST:PORT --allow-env=PGAPPNAME,PGTARGETSESSIONATTRS $SLUICE/cli.ts schedule list --db $PG",
  "deno run --allow-net=HOST:PORT --allow-env=PGAPPNAME,PGTARGETSESSIONATTRS $SLUICE/cli.ts schedule remove nightly --db $PG",
];

/** The command lines of the README's permission block. */
async function documentedCommands(): Promise<string[]> {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const start = readme.indexOf(MARKER);
  assert.ok(start >= 0, "the README has a permission block");
  const open = readme.indexOf("```sh\n", start);
  const close = readme.indexOf("```", open + 6);
  return readme.slice(open + 6, close).split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

interface Outcome {
  code: number;
  prompted: boolean;
  output: string;
}

/**
 * Runs `command` under `script` (a pseudo-terminal). `stopOn`: once the
 * output matches it, the command is sent SIGTERM (for `start`).
 */
async function underTerminal(
  command: string,
  cwd: string,
  stopOn?: RegExp,
): Promise<Outcome> {
  const child = new Deno.Command("script", {
    args: ["-qec", `exec ${command}`, "/dev/null"],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  let prompted = false;
  let stopped = false;
  // A prompt waits forever for an answer: the deadline ends that wait.
  const deadline = setTimeout(() => child.kill("SIGKILL"), 120_000);
  try {
    for await (const chunk of child.stdout) {
      output += decoder.decode(chunk, { stream: true });
      if (!prompted && /Deno requests|Allow\?/.test(output)) {
        prompted = true;
        child.kill("SIGKILL");
        break;
      }
      if (stopOn !== undefined && !stopped && stopOn.test(output)) {
        stopped = true;
        // script's child is the command itself (exec): signal it.
        await new Deno.Command("pkill", {
          args: ["-TERM", "-P", String(child.pid)],
        }).output();
      }
    }
    await child.stderr.cancel();
    const { code } = await child.status;
    return { code, prompted, output };
  } finally {
    clearTimeout(deadline);
  }
}

Deno.test("every command of the README's permission block runs with exactly its flags and never prompts", async (t) => {
  await using dir = await tempDir();
  const documented = await documentedCommands();
  const commands = [
    ...documented,
    ...REQUIRED.filter((line) => !documented.includes(line)),
  ];
  assert.ok(commands.length >= 15, `${commands.length} commands`);
  await Deno.mkdir(`${dir.path}/objects`);
  for await (const entry of Deno.readDir(`${ROOT}/input/objects/img`)) {
    await Deno.mkdir(`${dir.path}/objects/img`, { recursive: true });
    await Deno.copyFile(
      `${ROOT}/input/objects/img/${entry.name}`,
      `${dir.path}/objects/img/${entry.name}`,
    );
  }
  await Deno.writeTextFile(
    `${dir.path}/your_script.ts`,
    `import { TaskQueue } from ${JSON.stringify(`file://${ROOT}/mod.ts`)};
await using queue = await TaskQueue.open({ db: "${dir.path}/library.db", workers: 1 });
const handle = await queue.submit({ type: "compute", payload: { operation: "double", value: 2 } });
console.log(JSON.stringify(await handle.result));
`,
  );
  const schema = `sluice_perm_${crypto.randomUUID().slice(0, 8)}`;
  const pg = PG === undefined ? undefined : new URL(PG);
  try {
    for (const line of commands) {
      const postgres = line.includes("$PG");
      if (postgres && pg === undefined) continue;
      let command = line
        .replace(/^deno /, `${Deno.execPath()} `)
        .replaceAll("$SLUICE", ROOT)
        .replaceAll("$DIR", dir.path);
      if (pg !== undefined) {
        command = command
          .replaceAll("HOST:PORT", `${pg.hostname}:${pg.port || "5432"}`)
          .replaceAll("$PG", `${PG} --pg-schema ${schema}`);
      }
      const start = / start /.test(command);
      await t.step(line, async () => {
        const outcome = await underTerminal(
          command,
          dir.path,
          start ? /worker_started/ : undefined,
        );
        assert.equal(
          outcome.prompted,
          false,
          `it prompted:\n${outcome.output.slice(-600)}`,
        );
        assert.equal(
          outcome.code,
          0,
          `exit ${outcome.code}:\n${outcome.output.slice(-600)}`,
        );
      });
    }
  } finally {
    if (PG !== undefined) await PostgresTaskStore.drop(PG, { schema });
  }
});
