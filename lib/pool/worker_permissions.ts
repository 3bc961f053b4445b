/**
 * Narrowed Deno permissions for the workers that run handlers: the option's
 * types, its validation, and whether Deno's `--unstable-worker-options`
 * flag, which `new Worker(..., { deno: { permissions } })` needs, is on.
 *
 * @module
 */

/**
 * One kind of access a worker gets: `"inherit"` takes the process's,
 * `true` all of it, `false` none, and a list only those paths, hosts,
 * variables or commands. Asking for more than the process has is refused.
 */
export type WorkerPermission = "inherit" | boolean | string[];

/**
 * What a worker may do, by kind, as in Deno's `--allow-*` flags. A kind
 * left out is denied, as in Deno's own `deno.permissions` object.
 *
 * @example Network to one host, the object store read-write, nothing else
 * ```ts
 * import type { WorkerPermissions } from "@sluice/sluice/pool";
 *
 * const permissions: WorkerPermissions = {
 *   net: ["api.example.com"],
 *   read: ["objects/"],
 *   write: ["objects/"],
 * };
 * ```
 */
export interface WorkerPermissions {
  /**
   * Files and directories handlers may read (`--allow-read`). The handler
   * module and its static imports load without it.
   *
   * @default {false}
   */
  read?: WorkerPermission;
  /**
   * Files and directories handlers may write (`--allow-write`).
   *
   * @default {false}
   */
  write?: WorkerPermission;
  /**
   * Hosts (`host[:port]`) handlers may reach (`--allow-net`).
   *
   * @default {false}
   */
  net?: WorkerPermission;
  /**
   * Environment variables handlers may read (`--allow-env`).
   *
   * @default {false}
   */
  env?: WorkerPermission;
  /**
   * System information handlers may read (`--allow-sys`).
   *
   * @default {false}
   */
  sys?: WorkerPermission;
  /**
   * Programs handlers may run (`--allow-run`).
   *
   * @default {false}
   */
  run?: WorkerPermission;
  /**
   * Native libraries handlers may load (`--allow-ffi`).
   *
   * @default {false}
   */
  ffi?: WorkerPermission;
  /**
   * Hosts handlers may import modules from at run time, with `import()`
   * (`--allow-import`).
   *
   * @default {false}
   */
  import?: WorkerPermission;
}

/**
 * The permissions of the workers that run handlers: `"inherit"` (the
 * process's own), `"none"`, or a {@linkcode WorkerPermissions} object.
 */
export type WorkerPermissionOptions = "inherit" | "none" | WorkerPermissions;

/** The kinds of {@linkcode WorkerPermissions}, as Deno names them. */
export const PERMISSION_KINDS = [
  "read",
  "write",
  "net",
  "env",
  "sys",
  "run",
  "ffi",
  "import",
] as const satisfies readonly (keyof WorkerPermissions)[];

/** A kind of {@linkcode WorkerPermissions}. */
export type PermissionKind = typeof PERMISSION_KINDS[number];

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "an array with a non-string item";
  if (value === null) return "null";
  return typeof value === "object" ? "an object" : String(value);
}

/**
 * Checks a `permissions` option.
 *
 * @param value The option as given.
 * @param action What is refused, for the message ("create worker pool").
 * @throws {TypeError} "Cannot <action>: permissions.<kind> must be ...",
 *   naming the bad field and its value, or an unknown kind.
 */
export function checkWorkerPermissions(value: unknown, action: string): void {
  if (value === "inherit" || value === "none") return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(
      `Cannot ${action}: permissions must be "inherit", "none" or an object, received ${
        describe(value)
      }`,
    );
  }
  for (const [kind, field] of Object.entries(value)) {
    if (!(PERMISSION_KINDS as readonly string[]).includes(kind)) {
      throw new TypeError(
        `Cannot ${action}: permissions has no kind ${
          JSON.stringify(kind)
        } (known: ${PERMISSION_KINDS.join(", ")})`,
      );
    }
    if (field === undefined) continue;
    const ok = field === "inherit" || typeof field === "boolean" ||
      (Array.isArray(field) &&
        field.every((item) => typeof item === "string" && item !== ""));
    if (!ok) {
      throw new TypeError(
        `Cannot ${action}: permissions.${kind} must be "inherit", a boolean or an array of non-empty strings, received ${
          describe(field)
        }`,
      );
    }
  }
}

/**
 * The first thing `permissions` grants that this process lacks, described
 * for an error message, or `null` when the process has all of it (a worker
 * cannot have more than its parent). Asks without prompting.
 *
 * @param permissions The checked option.
 * @returns "permissions.net grants \"host\" ..." or `null`.
 */
export function missingGrant(
  permissions: WorkerPermissionOptions,
): string | null {
  if (permissions === "inherit" || permissions === "none") return null;
  for (const kind of PERMISSION_KINDS) {
    const field = permissions[kind];
    if (field === undefined || field === false || field === "inherit") {
      continue;
    }
    const items: (string | undefined)[] = field === true ? [undefined] : field;
    for (const item of items) {
      const status = Deno.permissions.querySync(descriptor(kind, item));
      if (status.state === "granted") continue;
      const flag = `--allow-${kind}${item === undefined ? "" : `=${item}`}`;
      return `permissions.${kind} grants ${
        item === undefined ? "everything" : JSON.stringify(item)
      }, which this process does not have (start Deno with ${flag})`;
    }
  }
  return null;
}

function descriptor(
  kind: PermissionKind,
  item: string | undefined,
): Deno.PermissionDescriptor {
  switch (kind) {
    case "read":
    case "write":
    case "ffi":
      return item === undefined ? { name: kind } : { name: kind, path: item };
    case "net":
    case "import":
      return item === undefined ? { name: kind } : { name: kind, host: item };
    case "env":
      return item === undefined
        ? { name: "env" }
        : { name: "env", variable: item };
    case "sys":
      return item === undefined ? { name: "sys" } : {
        name: "sys",
        kind: item as NonNullable<Deno.SysPermissionDescriptor["kind"]>,
      };
    case "run":
      return item === undefined
        ? { name: "run" }
        : { name: "run", command: item };
  }
}

/** The flag `new Worker(..., { deno: { permissions } })` needs. */
export const UNSTABLE_FLAG = "--unstable-worker-options";

/**
 * Whether Deno's `--unstable-worker-options` flag is on: `"enabled"`,
 * `"missing"`, or `"unknown"` when this process cannot tell.
 *
 * Without the flag, Deno ends the whole process (exit code 70) when a
 * worker is created with permissions, and nothing in the runtime says
 * whether the flag was given. So the answer comes from the configuration
 * file Deno reads (`"unstable": ["worker-options"]`, found from the main
 * module's directory up, as Deno finds it) and, when the process has every
 * permission (which Deno asks for to read it), from the process's command
 * line (`/proc/self/cmdline`, Linux). Permissions are queried first, so
 * this never prompts.
 *
 * @returns What is known about the flag.
 */
export function unstableWorkerOptions(): "enabled" | "missing" | "unknown" {
  return cachedFlag ??= detectFlag();
}

let cachedFlag: "enabled" | "missing" | "unknown" | undefined;

const CONFIG_ENABLES = /"unstable"\s*:\s*\[[^\]]*"worker-options"/;

function canRead(path: string): boolean {
  return Deno.permissions.querySync({ name: "read", path }).state ===
    "granted";
}

/** Whether the file at `path` turns the flag on; `null` when unreadable. */
function configEnables(path: string): boolean | null {
  if (!canRead(path)) return null;
  try {
    return CONFIG_ENABLES.test(Deno.readTextFileSync(path));
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? false : null;
  }
}

/** Whether a configuration found from the main module up turns it on. */
function discoveredConfigEnables(): boolean {
  const main = new URL(Deno.mainModule);
  if (main.protocol !== "file:") return false;
  let dir = decodeURIComponent(main.pathname);
  while (dir.lastIndexOf("/") >= 0 && dir !== "") {
    dir = dir.slice(0, dir.lastIndexOf("/"));
    for (const name of ["deno.json", "deno.jsonc"]) {
      const enables = configEnables(`${dir}/${name}`);
      if (enables === null) return false;
      if (enables) return true;
    }
  }
  return false;
}

/** The process's command line, when it can be read without a prompt. */
function commandLine(): string[] | null {
  if (Deno.build.os !== "linux") return null;
  for (const name of PERMISSION_KINDS) {
    if (Deno.permissions.querySync({ name }).state !== "granted") return null;
  }
  try {
    const args = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
    if (args.at(-1) === "") args.pop();
    return args;
  } catch {
    return null;
  }
}

function detectFlag(): "enabled" | "missing" | "unknown" {
  const build = Deno.build as { standalone?: boolean };
  // A compiled binary carries its flags inside; its command line has none.
  if (build.standalone === true) return "unknown";
  const args = commandLine();
  if (args === null) return discoveredConfigEnables() ? "enabled" : "unknown";
  // Deno's own flags come before the script and its arguments.
  const flags = args.slice(0, args.length - Deno.args.length);
  if (flags.includes(UNSTABLE_FLAG)) return "enabled";
  if (flags.includes("--no-config")) return "missing";
  const at = flags.findIndex((arg) =>
    arg === "--config" || arg === "-c" || arg.startsWith("--config=")
  );
  if (at < 0) return discoveredConfigEnables() ? "enabled" : "missing";
  const arg = flags[at]!;
  const path = arg.startsWith("--config=")
    ? arg.slice("--config=".length)
    : flags[at + 1];
  return path !== undefined && configEnables(path) ? "enabled" : "missing";
}
