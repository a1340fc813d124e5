/**
 * Runs `run` over `items`, `n` at a time. After the first failure no new item
 * starts; the ones already running finish (a rollback must not race a write
 * still in flight), then that first error is thrown.
 */
export async function pool<T>(items: Iterable<T>, n: number, run: (item: T) => Promise<void>): Promise<void> {
  // An iterator, not an index: the items may be made as they are taken (each-job.ts).
  const it = items[Symbol.iterator]();
  let failed: unknown = null;
  const worker = async (): Promise<void> => {
    while (failed === null) {
      const next = it.next();
      if (next.done) return;
      try {
        await run(next.value);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  const lanes = Array.isArray(items) ? Math.min(n, items.length) : n;
  await Promise.all(Array.from({ length: Math.max(1, lanes) }, worker));
  if (failed !== null) throw failed;
}
