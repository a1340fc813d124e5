/**
 * A long source_offsets is validated one entry at a time (metadata.ts): the
 * same errors, naming the entry, and the same typed value when asked for.
 */
import { describe, expect, it } from 'vitest';
import { MetadataDoc } from '../../src/formats/metadata/metadata.js';
import { KspError } from '../../src/errors.js';

function doc(offsets: string[]): string {
  return `{"version": 3, "epoch": 7, "job_id": "shop", "fencing_token": 1, "timestamp_ms": 1, "source_offsets": [${offsets.join(',')}], "operator_snapshots": [], "is_savepoint": true, "savepoint_label": null}`;
}
const offsets = (n: number): string[] => Array.from({ length: n }, (_, i) => `{"partition_id": "p-${i}", "offset": ${i}}`);

describe('metadata.json with many source_offsets', () => {
  it('types them on demand and rewrites them unchanged', () => {
    const md = MetadataDoc.decode(doc(offsets(5000)));
    expect(md.value.source_offsets.length).toBe(5000);
    expect(md.value.source_offsets[4321]).toEqual({ partition_id: 'p-4321', offset: 4321n });
    const again = MetadataDoc.decode(md.encode());
    expect(again.value.source_offsets[4999]!.offset).toBe(4999n);
    expect(md.with({ savepoint_label: 'x' }).value.source_offsets.length).toBe(5000);
  });

  it('names the bad entry as a whole-document check would', () => {
    for (const [bad, field] of [['{"partition_id": "p", "offset": 1.5}', 'source_offsets[3000].offset'], ['{"offset": 1}', 'source_offsets[3000].partition_id']] as const) {
      const list = offsets(5000);
      list[3000] = bad;
      let e: unknown;
      try { MetadataDoc.decode(doc(list)); } catch (x) { e = x; }
      expect(e).toBeInstanceOf(KspError);
      expect((e as KspError).code).toBe('METADATA_INVALID');
      expect((e as KspError).message).toContain(`field ${field}:`);
      // The short path words it the same way.
      let s: unknown;
      try { MetadataDoc.decode(doc([bad])); } catch (x) { s = x; }
      expect((s as KspError).message.replace('[0]', '[3000]')).toBe((e as KspError).message);
    }
  });
});

describe('prettyBytes', () => {
  it('writes what stringifyPretty writes, across its megabyte pieces', async () => {
    const { parseJson, prettyBytes, stringifyPretty } = await import('../../src/formats/json/json-text.js');
    for (const text of [doc(offsets(40_000)), '{"a": [], "b": {}, "c": [1, {"d": "é\\u0001"}], "e": null, "f": true}', '[]', '"x"']) {
      const v = parseJson(text, 'x.json');
      expect(prettyBytes(v).equals(Buffer.from(stringifyPretty(v), 'utf8'))).toBe(true);
    }
  });
});

describe('a snapshot list made when encoded (MetadataDoc.withSnapshots)', () => {
  it('encodes, in pieces, the bytes of the same document built whole', async () => {
    const { stringifyPretty } = await import('../../src/formats/json/json-text.js');
    const src = MetadataDoc.decode(doc(offsets(3)));
    for (const n of [0, 1, 3, 30_000]) {
      const list = Array.from({ length: n }, (_, i): [string, string, string] => [`op-${i % 7}`, `task-${i}`, `op-${i % 7}/task-${i}/state.bin`]);
      const lazy = src.withSnapshots({ savepoint_label: 'é "q"' }, () => list);
      const whole = src.with({ savepoint_label: 'é "q"', operator_snapshots: list.map(([operator_id, task_id, snapshot_path]) => ({ operator_id, task_id, snapshot_path })) });
      const want = Buffer.from(stringifyPretty(whole.doc), 'utf8');
      const pieces = [...lazy.chunks()];
      if (n === 30_000) expect(pieces.length).toBeGreaterThan(2);
      expect(Buffer.concat(pieces).equals(want)).toBe(true);
      expect(Buffer.from(lazy.encode()).equals(want)).toBe(true);
      expect(lazy.value.operator_snapshots.length).toBe(n);
      expect(MetadataDoc.decode(lazy.encode()).value.operator_snapshots.slice(-1)).toEqual(whole.value.operator_snapshots.slice(-1));
    }
  });
});
