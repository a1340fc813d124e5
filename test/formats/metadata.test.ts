import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MetadataDoc } from '../../src/formats/metadata/metadata.js';
import { MetaDoc } from '../../src/formats/meta/meta.js';
import { KspError } from '../../src/errors.js';
import { ENGINE_CP, ENGINE_SP, HAS_SHARED, SHOP_SP, FIXTURES } from '../support/env.js';

function codeOf(f: () => unknown): KspError {
  try {
    f();
  } catch (e) {
    return e as KspError;
  }
  throw new Error('expected an error');
}

describe.skipIf(!HAS_SHARED)('metadata.json: the engine fixture', () => {
  it.each([ENGINE_SP, ENGINE_CP])('decodes and re-encodes %s byte-identically', (dir) => {
    const bytes = readFileSync(join(dir, 'metadata.json'));
    const doc = MetadataDoc.decode(bytes);
    expect(Buffer.from(doc.encode()).equals(bytes)).toBe(true);
    expect(doc.value.job_id).toBe('fixture-job');
    expect(doc.value.epoch).toBe(1n);
    expect(doc.value.operator_snapshots).toEqual([{ operator_id: 'op-0', task_id: 'task-0', snapshot_path: 'fixture-job/checkpoints/00000000000000000001/op-0/task-0/state.bin' }]);
  });
});

describe('metadata.json', () => {
  const shop = readFileSync(join(SHOP_SP, 'metadata.json'));

  it('keeps u64 above 2^53, unknown members and map order through decode -> encode', () => {
    const doc = MetadataDoc.decode(shop);
    expect(doc.value.iceberg_snapshot_id).toBe(18446744073709551557n);
    expect(Object.keys(doc.value.kafka_offsets!)).toEqual(['orders-1', 'orders-0']);
    expect(doc.value['x_engine_build']).toBe('fixture');
    expect(Buffer.from(doc.encode()).equals(shop)).toBe(true);
  });

  it('edits insert members at their engine position', () => {
    const doc = MetadataDoc.decode(readFileSync(join(FIXTURES, 'absolute-paths', 'metadata.json'))).with({ coordinator_id: undefined });
    const again = doc.with({ coordinator_id: 'c2' });
    const names = again.doc.members.map(([k]) => k);
    expect(names.indexOf('coordinator_id')).toBe(names.indexOf('fencing_token') + 1);
    expect(again.value.coordinator_id).toBe('c2');
  });

  it.each([
    [{ version: 4 }, 'METADATA_VERSION', /field version: unsupported metadata version 4/],
    [{ version: 0 }, 'METADATA_VERSION', /version 0/],
    [{ epoch: -1 }, 'METADATA_INVALID', /field epoch: expected an unsigned integer; found the integer -1/],
    [{ epoch: '7' }, 'METADATA_INVALID', /field epoch: .*found the string "7"/],
    [{ job_id: '' }, 'METADATA_INVALID', /field job_id: must not be empty/],
    [{ fencing_token: new JsonNumber('18446744073709551616') }, 'METADATA_INVALID', /field fencing_token: exceeds u64/],
    [{ is_savepoint: 1 }, 'METADATA_INVALID', /field is_savepoint/],
  ])('rejects %j', (change, code, msg) => {
    const doc = MetadataDoc.decode(shop);
    const bad = Object.entries(change).reduce((d, [k, v]) => d.with(k, fromAny(v)), doc.doc);
    const e = codeOf(() => MetadataDoc.fromJson(bad, 'm.json'));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(msg);
  });

  it('names nested fields and missing members', () => {
    const text = shop.toString().replace('"task_id": "task-0"', '"task_id": 5');
    const e = codeOf(() => MetadataDoc.decode(text, 'm.json'));
    expect(e.message).toMatch(/field operator_snapshots\[\d+\]\.task_id: expected a string; found the integer 5/);
    const missing = shop.toString().replace(/"timestamp_ms": \d+,\n\s*/, '');
    expect(codeOf(() => MetadataDoc.decode(missing, 'm.json')).message).toMatch(/field timestamp_ms: .*it is missing/);
  });

  it('rejects a JSON document that is not an object', () => {
    expect(codeOf(() => MetadataDoc.decode('[1]', 'm.json')).code).toBe('METADATA_INVALID');
  });
});

describe('meta.json', () => {
  const rec = readFileSync(join(FIXTURES, 'base', 'shop', 'savepoints', '5b1f3c7e-2d4a-4e8b-9c61-0a7d2e4f8b13', 'meta.json'));
  it('decodes, keeps operator order and re-encodes identically', () => {
    const m = MetaDoc.decode(rec);
    expect([...m.operatorVersions().keys()]).toEqual(['orders-agg', 'windows', 'fraud', 'sink']);
    expect(m.operatorVersions().get('windows')).toBe(2n);
    expect(Buffer.from(m.encode()).equals(rec)).toBe(true);
  });
  it('treats a missing format_version as 1 and rejects others', () => {
    const m = MetaDoc.decode(rec).with({ format_version: undefined });
    expect(m.value.format_version).toBeUndefined();
    expect(codeOf(() => MetaDoc.fromJson(m.doc.with('format_version', fromAny(2)))).code).toBe('META_VERSION');
  });
  it('rejects an empty operator id', () => {
    const text = rec.toString().replace('"sink": 1', '"": 1');
    expect(codeOf(() => MetaDoc.decode(text, 'meta.json')).message).toMatch(/operator_versions/);
  });
});

import { JsonNumber, fromPlain, type JsonValue } from '../../src/formats/json/json-text.js';
function fromAny(v: unknown): JsonValue {
  return fromPlain(v);
}
