import assert from "node:assert/strict";

const cli = new URL("../cli.ts", import.meta.url).pathname;

async function run(
  args: string[],
  permissions: string[] = ["--allow-read", "--allow-env"],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, cli, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("cli.ts --help prints usage and exits 0", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /Usage:/);
  assert.match(stdout, /--benchmark/);
});

Deno.test("cli.ts exits 2 with a clear error on an unknown flag", async () => {
  const { code, stderr } = await run(["--frobnicate"]);
  assert.equal(code, 2);
  assert.match(stderr, /error: .*frobnicate/);
});
