/**
 * Bounded concurrency: never one promise per VM. A drain of 500 VMs or a power-on of a whole cluster runs `limit`
 * tasks at a time, and stops starting new ones once `signal` aborts.
 */

/**
 * Runs `fn` over `items` with at most `limit` in flight; resolves with the results in input order. The first
 * rejection is rethrown after the tasks in flight settle; items not started by then are skipped.
 *
 * @example
 * ```ts
 * const results = await mapLimit(vms, 4, (vm) => drainOne(vm));
 * ```
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && !signal?.aborted) {
      const i = next++;
      if (i >= items.length) return;
      try {
        out[i] = await fn(items[i] as T, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const n = Math.max(1, Math.min(limit, items.length));
  await Promise.all(Array.from({ length: n }, worker));
  if (failure !== undefined) throw failure.error;
  return out;
}
