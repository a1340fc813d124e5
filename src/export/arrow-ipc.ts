import type * as Arrow from 'apache-arrow';

/**
 * Arrow IPC bytes (stream or file format) from record batches, pulled as the
 * consumer writes them out. apache-arrow's own Node/DOM stream adapters have
 * no backpressure and queue every byte; this sink is drained after each batch,
 * before the next batch is asked for.
 */
export async function* arrowIpcChunks(A: typeof Arrow, schema: Arrow.Schema, batches: AsyncIterable<Arrow.RecordBatch>, format: 'stream' | 'file'): AsyncGenerator<Uint8Array> {
  const pending: Uint8Array[] = [];
  class DrainedSink extends A.AsyncByteQueue {
    override write(value: Uint8Array): void {
      pending.push(value);
    }
    override close(): void {}
  }
  const writer = format === 'file' ? new A.RecordBatchFileWriter({ autoDestroy: false }) : new A.RecordBatchStreamWriter({ autoDestroy: false });
  writer.reset(new DrainedSink() as unknown as Arrow.AsyncByteQueue, schema);
  // A batch's bytes go out as one copy: the writer hands out views of the
  // batch's buffers, which the batch builder reuses for the next batch
  // (arrow-batches.ts), and one write per batch instead of one per buffer.
  const drain = function* (): Generator<Uint8Array> {
    if (pending.length === 0) return;
    let n = 0;
    for (const p of pending) n += p.length;
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    for (const p of pending) {
      out.set(p, o);
      o += p.length;
    }
    pending.length = 0;
    yield out;
  };
  let wrote = false;
  for await (const b of batches) {
    writer.write(b);
    wrote = true;
    yield* drain();
  }
  // An empty export still gets a valid file with the schema.
  if (!wrote) writer.write(new A.RecordBatch(schema, A.makeData({ type: new A.Struct(schema.fields), length: 0, nullCount: 0, children: schema.fields.map((f) => A.makeData({ type: f.type, length: 0 } as never)) })));
  writer.finish();
  yield* drain();
}
