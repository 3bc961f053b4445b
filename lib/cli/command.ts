/**
 * What every command shares: parsing its flags (numbers checked against
 * their range before anything is opened), `--help`, the output format flag,
 * the configuration flags and their `SLUICE_*` variables, and the
 * deprecated spellings kept as hidden aliases.
 *
 * A command is declared once with {@linkcode defineCommand}: its help text,
 * its flags, and a body that receives the parsed, checked values.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  type CliConfig,
  CONFIG_DOCS,
  configHelp,
  type ConfigKey,
  ENV_NAMES,
  FLAG_NAMES,
  parseChoice,
  parseInteger,
  readEnv,
  resolveConfig,
} from "./config.ts";
import { err, out } from "./output.ts";

/** A bad command line: printed as `error: ...`, exit code 2. */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the flag and its value.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Largest timer delay, ms: longer ones fire at once. */
export const MAX_MS = 2 ** 31 - 1;

/** One flag of a command. */
export type FlagSpec =
  | { type: "boolean" }
  | { type: "string" }
  | {
    type: "integer";
    /** Least value accepted. */
    min: number;
    /** Greatest value accepted. */
    max: number;
  };

/**
 * A deprecated spelling, accepted for one version and left out of `--help`:
 * using it prints a warning on stderr.
 */
export interface AliasSpec {
  /** The flag it stands for, without `--`. */
  for: string;
  /** The replacement, as the warning shows it (`--max-attempts N+1`). */
  use: string;
  /**
   * Turns the alias's value into the flag's.
   *
   * @default {the identity}
   */
  convert?: (value: string) => string;
}

/** What a command accepts. */
export interface CommandSpec {
  /** The full `--help` text. */
  usage: string;
  /**
   * The command's own flags, by name without `--`.
   *
   * @default {{}}
   */
  flags?: Readonly<Record<string, FlagSpec>>;
  /**
   * The configuration settings it takes (flags and `SLUICE_*` variables).
   *
   * @default {[]}
   */
  config?: readonly ConfigKey[];
  /**
   * Output formats, when it has a choice: adds `--format FORMAT` and its
   * short form `--json`.
   *
   * @default {undefined}
   */
  formats?: readonly string[];
  /**
   * The format without `--format`; without one, `--format` is required.
   *
   * @default {undefined}
   */
  defaultFormat?: string;
  /**
   * Whether it takes positional arguments.
   *
   * @default {false}
   */
  positionals?: boolean;
  /**
   * Deprecated spellings, by name without `--`.
   *
   * @default {{}}
   */
  aliases?: Readonly<Record<string, AliasSpec>>;
}

/** A command line, parsed and checked. */
export interface ParsedCommand {
  /** The configuration: flags, then `SLUICE_*` variables, then defaults. */
  readonly config: CliConfig;
  /** Positional arguments. */
  readonly positionals: readonly string[];
  /** The output format, or `undefined` when none was given and there is no default. */
  readonly format: string | undefined;
  /**
   * A string flag's value.
   *
   * @param name The flag, without `--`.
   * @returns Its value, or `undefined` when absent.
   */
  string(name: string): string | undefined;
  /**
   * Whether a boolean flag was given.
   *
   * @param name The flag, without `--`.
   * @returns `true` when given.
   */
  boolean(name: string): boolean;
  /**
   * An integer flag's value, already checked against its range.
   *
   * @param name The flag, without `--`.
   * @returns Its value, or `undefined` when absent.
   */
  integer(name: string): number | undefined;
}

/** A command: its arguments in, its exit code out. */
export type Command = (args: string[]) => Promise<number>;

type Values = Record<string, string | boolean | undefined>;

/**
 * Declares a command: `--help` prints `spec.usage` and exits 0; any other
 * command line is parsed and checked, then handed to `body`.
 *
 * @param spec The flags and help text.
 * @param body Runs the command; returns its exit code.
 * @returns The command.
 */
export function defineCommand(
  spec: CommandSpec,
  body: (parsed: ParsedCommand) => Promise<number>,
): Command {
  return async (args) => {
    const parsed = parseCommand(args, spec);
    if (parsed === undefined) {
      out(spec.usage);
      return 0;
    }
    return await body(parsed);
  };
}

/**
 * Parses and checks `args` against `spec`.
 *
 * @param args The command's arguments.
 * @param spec What it accepts.
 * @returns The parsed command, or `undefined` when `--help` was asked for.
 * @throws {UsageError} When a flag is unknown, missing its value, or out of range.
 */
export function parseCommand(
  args: readonly string[],
  spec: CommandSpec,
): ParsedCommand | undefined {
  const flags: Record<string, FlagSpec> = { ...spec.flags };
  for (const key of spec.config ?? []) {
    flags[FLAG_NAMES[key].slice(2)] = { type: "string" };
    const shorthand = CONFIG_DOCS[key].shorthand;
    if (shorthand !== undefined) {
      flags[shorthand.flag.slice(2)] = { type: "boolean" };
    }
  }
  if (spec.formats !== undefined) {
    flags["format"] = { type: "string" };
    flags["json"] = { type: "boolean" };
  }
  const aliases = spec.aliases ?? {};
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string }
  > = { help: { type: "boolean", short: "h" } };
  for (const [name, flag] of Object.entries(flags)) {
    options[name] = { type: flag.type === "boolean" ? "boolean" : "string" };
  }
  for (const [name, alias] of Object.entries(aliases)) {
    options[name] = { type: options[alias.for]?.type ?? "string" };
  }
  const { values: parsed, positionals } = parseArgs({
    args: joinNegativeValues(args, options),
    options,
    strict: true,
    allowPositionals: spec.positionals === true,
  });
  const values = parsed as Values;
  if (values["help"] === true) return undefined;

  // Which spelling set each flag, so that errors name what the user typed.
  const given: Record<string, string> = {};
  for (const [name, alias] of Object.entries(aliases)) {
    const value = values[name];
    if (value === undefined) continue;
    if (values[alias.for] !== undefined) {
      throw new UsageError(
        `--${name} and --${alias.for} set the same thing: give only --${alias.for}`,
      );
    }
    err(
      `warning: --${name} is deprecated and will be removed; use ${alias.use}\n`,
    );
    values[alias.for] = typeof value === "string" && alias.convert !== undefined
      ? alias.convert(value)
      : value;
    given[alias.for] = `--${name}`;
  }
  const flagName = (name: string): string => given[name] ?? `--${name}`;

  const integers: Record<string, number> = {};
  for (const [name, flag] of Object.entries(flags)) {
    const value = values[name];
    if (flag.type !== "integer" || typeof value !== "string") continue;
    integers[name] = asUsage(() =>
      parseInteger(flagName(name), value, flag.min, flag.max)
    );
  }

  const keys = spec.config ?? [];
  for (const key of keys) {
    const shorthand = CONFIG_DOCS[key].shorthand;
    if (shorthand === undefined || values[shorthand.flag.slice(2)] !== true) {
      continue;
    }
    const name = FLAG_NAMES[key].slice(2);
    const text = values[name];
    if (text !== undefined && text !== shorthand.value) {
      throw new UsageError(
        `${shorthand.flag} is --${name} ${shorthand.value}: it cannot go with --${name} ${text}`,
      );
    }
    values[name] = shorthand.value;
  }
  const config = resolveConfig(
    Object.fromEntries(
      keys.map((key) => [key, values[FLAG_NAMES[key].slice(2)]]),
    ),
    readEnv(keys.map((key) => ENV_NAMES[key])),
  );

  let format = spec.defaultFormat;
  if (spec.formats !== undefined) {
    const text = values["format"];
    if (values["json"] === true && text !== undefined && text !== "json") {
      throw new UsageError(
        `--json is --format json: it cannot go with ${
          flagName("format")
        } ${text}`,
      );
    }
    if (values["json"] === true) format = "json";
    if (typeof text === "string") {
      format = asUsage(() =>
        parseChoice(flagName("format"), text, spec.formats!)
      );
    }
  }

  return {
    config,
    positionals,
    format,
    string: (name) => {
      const value = values[name];
      return typeof value === "string" ? value : undefined;
    },
    boolean: (name) => values[name] === true,
    integer: (name) => integers[name],
  };
}

/** Runs `parse`, reporting a bad value as a usage error. */
function asUsage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * Joins `--flag -1` into `--flag=-1` for flags that take a value, so that
 * a negative number reaches the range check (and its message names the
 * flag) instead of being taken for an unknown option.
 */
function joinNegativeValues(
  args: readonly string[],
  options: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    if (
      arg.startsWith("--") && options[arg.slice(2)]?.type === "string" &&
      next !== undefined && /^-\d/.test(next)
    ) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

/** The parts of a command's `--help`. */
export interface HelpText {
  /** The synopsis lines, after `Usage:`. */
  usage: readonly string[];
  /** What the command does: paragraphs. */
  about: string;
  /** The command's own options: `[flag and argument, meaning]`. */
  options: ReadonlyArray<readonly [string, string]>;
  /**
   * The configuration settings it takes.
   *
   * @default {[]}
   */
  config?: readonly ConfigKey[];
}

/**
 * Lays out a command's `--help`: usage, description, options (ending with
 * `-h, --help`) and the configuration table.
 *
 * @param help The parts.
 * @returns The text.
 */
export function helpText(help: HelpText): string {
  const usage = help.usage.length === 1
    ? `Usage: ${help.usage[0]}\n`
    : `Usage:\n${help.usage.map((line) => `  ${line}\n`).join("")}`;
  const options = [...help.options, ["-h, --help", "Show this help"] as const]
    .map(([flag, meaning]) => {
      const [first = "", ...rest] = meaning.split("\n");
      return `  ${flag.padEnd(23)}${first}\n${
        rest.map((line) => `${" ".repeat(25)}${line}\n`).join("")
      }`;
    }).join("");
  const config = help.config ?? [];
  return `${usage}\n${help.about.trim()}\n\nOptions:\n${options}${
    config.length === 0
      ? ""
      : `\nConfiguration (flags win over SLUICE_* variables, which win over defaults):\n${
        configHelp(config)
      }`
  }`;
}

/**
 * Runs a check of a command-line value, turning the error it throws into a
 * {@linkcode UsageError} (exit code 2) without its "Cannot …: " prefix.
 *
 * @param check Throws when the value is bad.
 * @returns What `check` returns.
 * @throws {UsageError} When `check` throws.
 */
export function checkArg<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new UsageError(
      (error as Error).message.replace(/^Cannot [^:]*: /, ""),
    );
  }
}

/**
 * Reads a JSON flag such as `--payload`.
 *
 * @param parsed The parsed command.
 * @param name The flag, without `--`.
 * @returns Its value parsed, or `null` when it is not given.
 * @throws {UsageError} When it is not JSON.
 */
export function jsonFlag(parsed: ParsedCommand, name: string): unknown {
  const text = parsed.string(name);
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--${name} must be JSON: ${(error as Error).message}`);
  }
}

/**
 * Runs the action a command's first positional names (`dlq list`,
 * `schedule add`), with the other positionals.
 *
 * @param command The command's name, for messages.
 * @param parsed The parsed command.
 * @param actions The actions by name.
 * @returns The action's exit code.
 * @throws {UsageError} When the action is missing or unknown.
 */
export async function runAction(
  command: string,
  parsed: ParsedCommand,
  actions: Readonly<
    Record<string, (parsed: ParsedCommand, args: string[]) => Promise<number>>
  >,
): Promise<number> {
  const [action, ...args] = parsed.positionals;
  const names = Object.keys(actions);
  const expected = `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
  if (action === undefined) {
    throw new UsageError(`${command} needs an action: ${expected}`);
  }
  const run = Object.hasOwn(actions, action) ? actions[action] : undefined;
  if (run === undefined) {
    throw new UsageError(
      `unknown ${command} action ${
        JSON.stringify(action)
      }: expected ${expected}`,
    );
  }
  return await run(parsed, args);
}
