import type * as Arrow from 'apache-arrow';

/**
 * Parquet through parquet-wasm's streaming writer: each Arrow batch goes in
 * as uncompressed IPC (parquet-wasm cannot read compressed IPC) and becomes
 * one row group; output bytes are pulled as they are produced. Wasm memory
 * never shrinks, so row groups are kept bounded (arrow-batches.ts).
 */

/** Rows per row group: one Arrow batch each, so the wasm heap holds one batch at a time. */
const ROW_GROUP_ROWS = 16384;

export type ParquetCompression = 'zstd' | 'snappy' | 'gzip' | 'lz4' | 'none';

export async function* parquetChunks(A: typeof Arrow, schema: Arrow.Schema, batches: AsyncIterable<Arrow.RecordBatch>, compression: ParquetCompression = 'zstd'): AsyncGenerator<Uint8Array> {
  const pq = await import('parquet-wasm/node');
  const codec = { zstd: pq.Compression.ZSTD, snappy: pq.Compression.SNAPPY, gzip: pq.Compression.GZIP, lz4: pq.Compression.LZ4_RAW, none: pq.Compression.UNCOMPRESSED }[compression];
  // The builder's setters consume it: chain, never call twice on one object.
  // Keys and values are mostly unique: a dictionary for them costs memory and time for nothing.
  const props = new pq.WriterPropertiesBuilder().setCompression(codec).setMaxRowGroupSize(ROW_GROUP_ROWS)
    .setColumnDictionaryEnabled('key', false).setColumnDictionaryEnabled('value', false).setCreatedBy('ksp').build();
  const it = batches[Symbol.asyncIterator]();
  let wroteAny = false;
  // parquet-wasm replaces an input stream's error with its own ("Dyn casting
  // error"): keep the real one (e.g. a corrupt state file) to rethrow.
  let inputError: unknown;
  const input = new ReadableStream({
    async pull(controller) {
      let r: IteratorResult<Arrow.RecordBatch>;
      try {
        r = await it.next();
      } catch (e) {
        inputError = e;
        controller.error(e);
        return;
      }
      if (r.done) {
        if (!wroteAny) {
          // parquet-wasm needs one batch to learn the schema: an empty one.
          const empty = new A.RecordBatch(schema, A.makeData({ type: new A.Struct(schema.fields), length: 0, nullCount: 0, children: schema.fields.map((f) => A.makeData({ type: f.type, length: 0 } as never)) }));
          wroteAny = true;
          for (const b of pq.Table.fromIPCStream(A.tableToIPC(new A.Table([empty]), 'stream')).recordBatches()) controller.enqueue(b);
        }
        controller.close();
        return;
      }
      wroteAny = true;
      const t = pq.Table.fromIPCStream(A.tableToIPC(new A.Table([r.value]), 'stream'));
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
