import assert from "node:assert/strict";
import {
  type CommandSpec,
  helpText,
  parseCommand,
  UsageError,
} from "../../lib/cli/command.ts";

const SPEC: CommandSpec = {
  usage: "usage",
  flags: {
    limit: { type: "integer", min: 0, max: 10 },
    name: { type: "string" },
    all: { type: "boolean" },
  },
  config: ["db", "maxAttempts"],
  formats: ["text", "json"],
  defaultFormat: "text",
  aliases: {
    old: { for: "name", use: "--name" },
    retries: {
      for: "max-attempts",
      use: "--max-attempts N+1",
      convert: (v) => String(Number(v) + 1),
    },
  },
};

function parse(args: string[]): NonNullable<ReturnType<typeof parseCommand>> {
  const parsed = parseCommand(args, SPEC);
  assert.ok(parsed !== undefined);
  return parsed;
}

Deno.test("parseCommand() returns undefined for --help, before checking anything else", () => {
  assert.equal(parseCommand(["--limit", "99", "--help"], SPEC), undefined);
  assert.equal(parseCommand(["-h"], SPEC), undefined);
});

Deno.test("parseCommand() checks integers against their range, naming the flag", () => {
  assert.equal(parse(["--limit", "7"]).integer("limit"), 7);
  assert.equal(parse([]).integer("limit"), undefined);
  for (
    const bad of [["--limit", "11"], ["--limit", "-1"], ["--limit=-1"], [
      "--limit",
      "2x",
    ]]
  ) {
    assert.throws(
      () => parseCommand(bad, SPEC),
      (e: unknown) =>
        e instanceof UsageError &&
        /^--limit must be an integer from 0 to 10/.test(e.message),
      bad.join(" "),
    );
  }
});

Deno.test("parseCommand() takes --json as --format json and refuses a conflict", () => {
  assert.equal(parse([]).format, "text");
  assert.equal(parse(["--json"]).format, "json");
  assert.equal(parse(["--format", "JSON"]).format, "json");
  assert.equal(parse(["--json", "--format", "json"]).format, "json");
  assert.throws(
    () => parseCommand(["--json", "--format", "text"], SPEC),
    UsageError,
  );
  assert.throws(
    () => parseCommand(["--format", "xml"], SPEC),
    /--format must be one of text, json/,
  );
});

Deno.test("parseCommand() maps a deprecated alias onto its flag, and refuses both at once", () => {
  assert.equal(parse(["--old", "x"]).string("name"), "x");
  assert.equal(parse(["--retries", "2"]).config.maxAttempts, 3);
  assert.throws(
    () => parseCommand(["--old", "x", "--name", "y"], SPEC),
    /--old and --name set the same thing/,
  );
});

Deno.test("helpText() lists the options, --help and the configuration with its variables", () => {
  const text = helpText({
    usage: ["cli.ts thing"],
    about: "Does a thing.",
    options: [["--flag X", "First line\nsecond line"]],
    config: ["db"],
  });
  assert.match(text, /^Usage: cli\.ts thing\n\nDoes a thing\.\n\nOptions:\n/);
  assert.match(text, /\n {2}--flag X {15}First line\n {25}second line\n/);
  assert.match(text, /\n {2}-h, --help {13}Show this help\n/);
  assert.match(
    text,
    /--db PATH\|URL .*\n {25}\(SLUICE_DB, default tasks\.db\)\n$/,
  );
});
