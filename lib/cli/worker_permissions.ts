/**
 * The flags that narrow the permissions of the workers `run` and `start`
 * run handlers in: `--worker-allow-KIND[=LIST]`, one per kind of Deno's
 * `--allow-KIND`, and `--worker-deny-all`. A process runs one queue, so a
 * queue's handlers are narrowed by starting its process with these flags.
 *
 * @module
 */
import {
  PERMISSION_KINDS,
  type PermissionKind,
  UNSTABLE_FLAG,
  type WorkerPermissions,
} from "../pool/worker_permissions.ts";
import type { Command, FlagSpec, ParsedCommand } from "./command.ts";
import { UsageError } from "./command.ts";

const DENY_ALL = "worker-deny-all";

function allowFlag(kind: PermissionKind): string {
  return `worker-allow-${kind}`;
}

/** The flags, by name without `--`. */
export const WORKER_PERMISSION_FLAGS: Readonly<Record<string, FlagSpec>> = {
  ...Object.fromEntries(
    PERMISSION_KINDS.map((kind) => [allowFlag(kind), { type: "string" }]),
  ),
  [DENY_ALL]: { type: "boolean" },
};

const WHAT: Readonly<Record<PermissionKind, readonly [string, string]>> = {
  read: ["PATHS", "Files and directories handlers may read"],
  write: ["PATHS", "Files and directories handlers may write"],
  net: ["HOSTS", "Hosts (host[:port]) handlers may reach"],
  env: ["NAMES", "Environment variables handlers may read"],
  sys: ["NAMES", "System information handlers may read"],
  run: ["PROGRAMS", "Programs handlers may run"],
  ffi: ["PATHS", "Native libraries handlers may load"],
  import: ["HOSTS", "Hosts handlers may import modules from"],
};

/** Their help lines. */
export const WORKER_PERMISSION_HELP: ReadonlyArray<readonly [string, string]> =
  [
    [
      "--worker-deny-all",
      `Run handlers with no permissions but those the\n--worker-allow-* flags give (any of them implies\nthis); needs deno ${UNSTABLE_FLAG}`,
    ],
    ...PERMISSION_KINDS.map((kind): readonly [string, string] => [
      `--${allowFlag(kind)}[=${WHAT[kind][0]}]`,
      `\n${WHAT[kind][1]}:\nall, or only the comma-separated ${
        WHAT[kind][0]
      }\n(as deno --allow-${kind})`,
    ]),
  ];

/**
 * Wraps a command so that a bare `--worker-allow-KIND` (no `=LIST`) means
 * all of KIND, as Deno's own `--allow-KIND` does.
 *
 * @param command The command.
 * @returns The command, taking the bare flags.
 */
export function acceptBareAllowFlags(command: Command): Command {
  const bare = new Set(PERMISSION_KINDS.map((kind) => `--${allowFlag(kind)}`));
  return (args) => command(args.map((arg) => bare.has(arg) ? `${arg}=*` : arg));
}

/**
 * The queue's `permissions` option from the flags, or `undefined` (the
 * workers inherit the process's permissions) when none is given.
 *
 * @param parsed The command line.
 * @returns The option.
 * @throws {UsageError} When a list is empty or has an empty item.
 */
export function workerPermissions(
  parsed: ParsedCommand,
): WorkerPermissions | undefined {
  let narrowed = parsed.boolean(DENY_ALL);
  const permissions: WorkerPermissions = {};
  for (const kind of PERMISSION_KINDS) {
    const text = parsed.string(allowFlag(kind));
    if (text === undefined) continue;
    narrowed = true;
    if (text === "*") {
      permissions[kind] = true;
      continue;
    }
    const items = text.split(",").map((item) => item.trim());
    if (items.some((item) => item === "")) {
      throw new UsageError(
        `--${
          allowFlag(kind)
        } must be given alone or with a comma-separated list, got ${
          JSON.stringify(text)
        }`,
      );
    }
    permissions[kind] = items;
  }
  return narrowed ? permissions : undefined;
}
