/**
 * SIGINT and SIGTERM for the long-running commands (`start`, `monitor`).
 *
 * @module
 */

/**
 * Calls `handler` on SIGINT and SIGTERM until the returned function is
 * called. SIGTERM is skipped where the platform has none.
 *
 * @param handler Called with the signal's name.
 * @returns Removes the listeners.
 */
export function onStopSignals(
  handler: (signal: Deno.Signal) => void,
): () => void {
  const added: Array<[Deno.Signal, () => void]> = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const listener = (): void => handler(signal);
    try {
      Deno.addSignalListener(signal, listener);
      added.push([signal, listener]);
    } catch {
      // SIGTERM is not available on every platform.
    }
  }
  return () => {
    for (const [signal, listener] of added.splice(0)) {
      Deno.removeSignalListener(signal, listener);
    }
  };
}
