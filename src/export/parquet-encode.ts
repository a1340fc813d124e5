/**
 * The Parquet encoding itself (parquet-wasm's streaming writer), fed Arrow
 * IPC streams, one per record batch, each becoming one row group: shared by
 * the in-thread path and the encoding thread (parquet.ts, parquet-worker.ts),
 * so the bytes are the same wherever it runs.
 */

/** Rows per row group: one Arrow batch each, so the wasm heap holds one batch at a time. */
export const ROW_GROUP_ROWS = 16384;

export type ParquetCompression = 'zstd' | 'snappy' | 'gzip' | 'lz4' | 'none';

/**
 * Parquet bytes from `ipcStreams` (each an Arrow IPC stream holding one
 * batch). Wasm memory never shrinks, so row groups are kept bounded
 * (arrow-batches.ts). `inputError` is what the input iterator threw, if it did.
 */
export async function* encodeParquet(ipcStreams: AsyncIterable<Uint8Array>, compression: ParquetCompression): AsyncGenerator<Uint8Array> {
  const pq = await import('parquet-wasm/node');
  const codec = { zstd: pq.Compression.ZSTD, snappy: pq.Compression.SNAPPY, gzip: pq.Compression.GZIP, lz4: pq.Compression.LZ4_RAW, none: pq.Compression.UNCOMPRESSED }[compression];
  // The builder's setters consume it: chain, never call twice on one object.
  // Keys and values are mostly unique: a dictionary for them costs memory and time for nothing.
  const props = new pq.WriterPropertiesBuilder().setCompression(codec).setMaxRowGroupSize(ROW_GROUP_ROWS)
    .setColumnDictionaryEnabled('key', false).setColumnDictionaryEnabled('value', false).setCreatedBy('ksp').build();
  const it = ipcStreams[Symbol.asyncIterator]();
  // parquet-wasm replaces an input stream's error with its own ("Dyn casting
  // error"): keep the real one (e.g. a corrupt state file) to rethrow.
  let inputError: unknown;
  const input = new ReadableStream({
    async pull(controller) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await it.next();
      } catch (e) {
        inputError = e;
        controller.error(e);
        return;
      }
      if (r.done) {
        controller.close();
        return;
      }
      const t = pq.Table.fromIPCStream(r.value);
      for (const b of t.recordBatches()) controller.enqueue(b);
      // wasm-bindgen objects are otherwise freed only by a JS GC finalizer,
      // and the JS GC cannot see the wasm heap they hold.
      t.free();
    },
    async cancel() {
      await it.return?.();
    },
  }, { highWaterMark: 1 });
  try {
    const out = await pq.transformParquetStream(input, props);
    for await (const chunk of out as unknown as AsyncIterable<Uint8Array>) yield chunk;
  } catch (e) {
    throw inputError ?? e;
  }
}
