import assert from "node:assert/strict";
import { CONFIG_DOCS } from "../../lib/cli/config.ts";
import { COMMANDS as SUBCOMMANDS, ok } from "./_cli.ts";

const COMMANDS = [...SUBCOMMANDS, "--benchmark"] as const;

/** The README's "The command line" section, up to the next `## `. */
async function section(): Promise<string> {
  const readme = await Deno.readTextFile(
    new URL("../../README.md", import.meta.url),
  );
  const start = readme.indexOf("## The command line\n");
  assert.ok(start >= 0, 'README has "## The command line"');
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

/** The flags a command's `--help` lists (options and configuration). */
async function helpFlags(command: string): Promise<Set<string>> {
  const help = await ok([command, "--help"]);
  const flags = new Set<string>();
  for (const match of help.matchAll(/^ {2}(--[a-z-]+)/gm)) flags.add(match[1]!);
  // --format's short form.
  if (flags.has("--format")) flags.add("--json");
  return flags;
}

const ENV_OF: ReadonlyMap<string, string> = new Map(
  Object.values(CONFIG_DOCS).map((doc) => [doc.flag, doc.env]),
);

Deno.test("README's command-line section lists every flag of every command's --help, with its SLUICE_* variable", async () => {
  const text = await section();
  const lines = text.split("\n").filter((l) => l.startsWith("|"));
  for (const command of COMMANDS) {
    for (const flag of await helpFlags(command)) {
      const rows = lines.filter((line) =>
        new RegExp("`" + flag + "[` ]").test(line) &&
        (line.includes("`" + command + "`") || line.includes("all commands"))
      );
      assert.ok(rows.length > 0, `${command} ${flag} is in the README`);
      // --benchmark has its own --workers, --concurrency and --db.
      const env = command === "--benchmark" ? undefined : ENV_OF.get(flag);
      if (env !== undefined) {
        assert.ok(
          rows.some((row) => row.includes("`" + env + "`")),
          `${flag} is shown with ${env}`,
        );
      }
    }
  }
});

Deno.test("README's command-line section lists no flag that --help does not", async () => {
  const text = await section();
  const helps = new Map<string, Set<string>>();
  for (const command of COMMANDS) helps.set(command, await helpFlags(command));
  const all = [...COMMANDS];
  let checked = 0;
  for (const line of text.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    if (cells.length < 4) continue;
    // Command flags: | `command` | `--flag ARG` | meaning |
    const own = cells[1]!.match(/^`(--?[a-z-]+)`$/);
    const flag = cells[2]!.match(/^`(--[a-z-]+)/);
    if (own !== null && flag !== null && helps.has(own[1]!)) {
      assert.ok(helps.get(own[1]!)!.has(flag[1]!), `${own[1]} ${flag[1]}`);
      checked++;
      continue;
    }
    // Configuration: | `--flag` | `SLUICE_X` | default | commands | meaning |
    const setting = cells[1]!.match(/^`(--[a-z-]+)`$/);
    if (setting === null || cells.length < 6) continue;
    const commands = cells[4] === "all commands"
      ? all.filter((c) => c !== "--benchmark")
      : [...cells[4]!.matchAll(/`([a-z]+)`/g)].map((m) => m[1]!);
    assert.ok(commands.length > 0, `${setting[1]} names its commands`);
    for (const command of commands) {
      assert.ok(
        helps.get(command)?.has(setting[1]!),
        `${command} takes ${setting[1]}`,
      );
      checked++;
    }
  }
  assert.ok(checked > 40, `only ${checked} rows were checked`);
});
