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

/** Their help lines. */
export const WORKER_PERMISSION_HELP: ReadonlyArray<readonly [string, string]> =
  [
    [
      "--worker-allow-KIND",
      "Let handlers have all of KIND: read, write, net, env,\nsys, run, ffi or import (as deno --allow-KIND); any\n--worker-* flag denies handlers every kind not given",
    ],
    [
      "--worker-allow-KIND=L",
      "Let handlers have only the comma-separated list L of\nKIND (paths, hosts, variables, ...)",
    ],
    [
      "--worker-deny-all",
      `Run handlers with no permissions but those given by\n--worker-allow-*. These flags need deno\n${UNSTABLE_FLAG} (see the README section\n"Least-privilege handlers")`,
    ],
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
