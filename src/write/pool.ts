/**
 * Runs `run` over `items`, `n` at a time. After the first failure no new item
 * starts; the ones already running finish (a rollback must not race a write
 * still in flight), then that first error is thrown.
 */
export async function pool<T>(items: readonly T[], n: number, run: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  let failed: unknown = null;
  const worker = async (): Promise<void> => {
    while (i < items.length && failed === null) {
      const item = items[i++]!;
      try {
        await run(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== null) throw failed;
}
