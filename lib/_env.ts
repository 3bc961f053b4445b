/**
 * Reading the environment and the file system's permission state without
 * ever prompting. On a terminal, Deno asks the user for a permission the
 * process lacks when code touches it; a library must not. Every read here
 * queries the permission first and treats "not granted" as "unset".
 *
 * @module
 */

/**
 * Reads an environment variable, or `undefined` when it is unset or the
 * process may not read it (no `--allow-env`, or an allow list without it).
 * Never prompts.
 *
 * @param name The variable.
 * @returns Its value, or `undefined`.
 */
export function readEnv(name: string): string | undefined {
  try {
    const { state } = Deno.permissions.querySync({
      name: "env",
      variable: name,
    });
    if (state !== "granted") return undefined;
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Whether a permission is granted now, without prompting.
 *
 * @param descriptor What to ask about.
 * @returns `true` only when it is granted.
 */
export function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}
