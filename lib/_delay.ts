/**
 * An abortable delay. Private: not part of the public API.
 *
 * @module
 */

/**
 * Resolves after `ms` milliseconds, or rejects with the signal's reason as
 * soon as it aborts. The timer and the abort listener are always removed
 * once the promise settles, so nothing outlives the wait.
 *
 * @param ms Milliseconds to wait; 0 or less still yields one macrotask.
 * @param signal Aborts the wait.
 * @returns A promise that settles when the wait ends.
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
