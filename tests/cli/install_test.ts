/**
 * The README's install line for the command line: `deno install -g` with
 * the documented flags, then the installed `sluice` run as a user would,
 * from another directory.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { tempDir } from "../_helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);
const decoder = new TextDecoder();

/** The README's `deno install` line, with `$SLUICE` for the checkout. */
async function documentedInstall(): Promise<string[]> {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const line = readme.split("\n").find((l) =>
    l.startsWith("deno install -g -n sluice ")
  );
  assert.ok(line !== undefined, "the README has a deno install line");
  return line.split(" ").slice(1).map((arg) => arg.replaceAll("$SLUICE", ROOT));
}

async function run(
  command: string,
  args: string[],
  cwd: string,
): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = decoder.decode(output.stderr);
  assert.equal(output.code, 0, `${command} ${args.join(" ")}: ${stderr}`);
  return decoder.decode(output.stdout);
}

Deno.test("deno install -g with the README's flags gives a sluice command that works from any directory", async () => {
  await using root = await tempDir();
  await using work = await tempDir();
  const args = await documentedInstall();
  await run(Deno.execPath(), [
    ...args.slice(0, 1),
    "--root",
    root.path,
    ...args.slice(1),
  ], work.path);
  const sluice = `${root.path}/bin/sluice`;
  assert.equal((await run(sluice, ["--version"], work.path)).trim(), "0.1.0");
  const ids = await run(
    sluice,
    ["submit", "--db", "tasks.db", "--type", "noop", "--count", "2"],
    work.path,
  );
  assert.equal(ids.trim().split("\n").length, 2);
  const status = JSON.parse(
    await run(sluice, ["status", "--db", "tasks.db", "--json"], work.path),
  );
  assert.equal(status.counts.queued, 2);
});
