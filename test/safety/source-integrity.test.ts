import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { ksp } from '../support/cli.js';
import { FIXTURES } from '../support/env.js';
import { useTempDirs } from '../write/support.js';
import { convertCanonical, copySavepoint, editMetadata, errorCodes, rejection, relocate, reseal, verifySavepoint } from './source-support.js';

/**
 * Issue 12, item 6 and the second pass: every command checks the source's
 * integrity before it uses it (unless --trust-source), parses as strictly as
 * the engine, refuses ids the writers refuse, and reports a repeated task as
 * a typed error.
 */

const tmp = useTempDirs('ksp-src-integrity-');

function setup(): { src: string; out: string } {
  const root = tmp();
  return { src: copySavepoint(join(root, 'sp')), out: join(root, 'out') };
}

describe('the source manifest is checked before a write', () => {
  it.each([
    ['missing', (src: string) => rmSync(join(src, 'manifest.sha256')), 'MANIFEST_MISSING'],
    ['empty', (src: string) => writeFileSync(join(src, 'manifest.sha256'), ''), 'MANIFEST_INCOMPLETE'],
    ['whitespace only', (src: string) => writeFileSync(join(src, 'manifest.sha256'), ' \n\t\n  '), 'MANIFEST_INCOMPLETE'],
    ['malformed', (src: string) => writeFileSync(join(src, 'manifest.sha256'), 'sha256:xyz  metadata.json\n'), 'MANIFEST_MALFORMED'],
    ['starting with a BOM', (src: string) => writeFileSync(join(src, 'manifest.sha256'), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), readFileSync(join(src, 'manifest.sha256'))])), 'MANIFEST_MALFORMED'],
  ])('a %s manifest is refused naming the source file, unless --trust-source', async (_what, spoil, code) => {
    const { src, out } = setup();
    spoil(src);
    for (const run of [relocate, convertCanonical]) {
      const e = await rejection(run(src, out));
      expect(e.code).toBe(code);
      expect(e.data.file).toBe(join(src, 'manifest.sha256'));
      expect(existsSync(out)).toBe(false);
    }
    // verify reports the same problem.
    const v = await verifySavepoint(src);
    expect(v.ok).toBe(false);
    await convertCanonical(src, out, { trustSource: true });
    expect((await verifySavepoint(out)).ok).toBe(true);
  });

  it('metadata.json whose hash differs is refused naming the source metadata.json', async () => {
    const { src, out } = setup();
    editMetadata(src, (t) => t.replace('"coordinator_id": "coordinator-a"', '"coordinator_id": "coordinator-b"'));
    const e = await rejection(convertCanonical(src, out));
    expect(e.code).toBe('HASH_MISMATCH');
    expect(e.data.file).toBe(join(src, 'metadata.json'));
    expect(errorCodes(await verifySavepoint(src))).toEqual(['HASH_MISMATCH']);
    const r = await ksp(['convert', src, out, '--to', 'canonical', '--mode', 'relative']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`[HASH_MISMATCH]: ${join(src, 'metadata.json')}`);
    const t = await ksp(['convert', src, out, '--to', 'canonical', '--mode', 'relative', '--trust-source']);
    expect(t.code).toBe(0);
    expect(t.stderr).toContain('--trust-source');
  });

  it('a state file whose hash differs is refused naming the SOURCE file, copied or rewritten', async () => {
    const { src, out } = setup();
    const f = join(src, 'orders-agg/task-1/state.bin');
    const b = readFileSync(f);
    b[b.length - 1] ^= 0x01; // a value byte: still decodes
    writeFileSync(f, b);
    const copied = await rejection(relocate(src, out));
    expect(copied.code).toBe('HASH_MISMATCH');
    expect(copied.data.file).toBe(f);
    expect(existsSync(join(out, 'manifest.sha256'))).toBe(false);
    // A rewrite (rename) reads and re-encodes the file: checked as it is read.
    const sp = await Savepoint.open(src);
    const rewritten = await rejection(SavepointWriter.from(sp).renameOperator('orders-agg', 'orders').write(out, { mode: 'relative' }));
    expect(rewritten.code).toBe('HASH_MISMATCH');
    expect(rewritten.data.file).toBe(f);
    expect(existsSync(join(out, 'manifest.sha256'))).toBe(false);
  });

  it('a state file inside the directory that the manifest does not list is refused', async () => {
    const { src, out } = setup();
    const m = readFileSync(join(src, 'manifest.sha256'), 'utf8').split('\n').filter((l) => !l.endsWith('  sink/task-0/state.bin')).join('\n');
    writeFileSync(join(src, 'manifest.sha256'), m);
    const e = await rejection(relocate(src, out));
    expect(e.code).toBe('MANIFEST_INCOMPLETE');
    expect(e.message).toContain('sink/task-0/state.bin');
    expect(errorCodes(await verifySavepoint(src))).toContain('MANIFEST_INCOMPLETE');
  });
});

describe('parsed as strictly as the engine', () => {
  it('metadata.json with a UTF-8 BOM is refused by every command', async () => {
    const { src, out } = setup();
    writeFileSync(join(src, 'metadata.json'), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), readFileSync(join(src, 'metadata.json'))]));
    reseal(src);
    const v = await verifySavepoint(src);
    expect(errorCodes(v)).toEqual(['JSON_SYNTAX']);
    expect(v.findings[0]!.message).toContain('byte order mark');
    expect((await rejection(inspectSavepoint(src))).code).toBe('JSON_SYNTAX');
    expect((await rejection(relocate(src, out))).code).toBe('JSON_SYNTAX');
  });

  it('metadata.json in Latin-1 (not UTF-8) is refused', async () => {
    const { src, out } = setup();
    editMetadata(src, (t) => t.replace('"coordinator_id": "coordinator-a"', '"coordinator_id": "coordinator-\u00e9"'));
    const latin1 = Buffer.from(readFileSync(join(src, 'metadata.json'), 'utf8'), 'latin1');
    writeFileSync(join(src, 'metadata.json'), latin1);
    reseal(src);
    expect(errorCodes(await verifySavepoint(src))).toEqual(['JSON_SYNTAX']);
    const e = await rejection(relocate(src, out));
    expect(e.code).toBe('JSON_SYNTAX');
    expect(e.message).toContain('not valid UTF-8');
  });

  it('a sink_id of "../.." is accepted and kept as it is: the engine never uses it as a path', async () => {
    // krishiv-executor runner/executor_task_runner.rs sets sink_id to the
    // prepare_path, and krishiv-scheduler checkpoint.rs
    // collect_sink_transactions keys by prepare_path: sink_id is an opaque
    // label (also a metrics label), never joined into a path.
    const { src, out } = setup();
    editMetadata(src, (t) => {
      const i = t.lastIndexOf('\n}');
      return t.slice(0, i) + ',\n  "sink_transactions": [\n    {\n      "sink_id": "../..",\n      "epoch": 7,\n      "committed": true\n    }\n  ]' + t.slice(i);
    });
    reseal(src);
    expect(errorCodes(await verifySavepoint(src))).toEqual([]);
    await relocate(src, out);
    expect(readFileSync(join(out, 'metadata.json'), 'utf8')).toContain('"sink_id": "../.."');
    expect((await verifySavepoint(out)).ok).toBe(true);
  });
});

describe('ids the writers refuse are refused by verify, at open time', () => {
  it.each([
    ['/abs/x', 'operator_id'],
    ['.', 'operator_id'],
    ['..\\x', 'operator_id'],
    ['a\u0000b', 'task_id'],
    ['a\nb', 'task_id'],
  ])('%j as %s', async (bad, field) => {
    const { src, out } = setup();
    const from = field === 'operator_id' ? '"operator_id": "fraud"' : '"task_id": "task-0",\n      "snapshot_path": "fraud/task-0/state.bin"';
    const to = field === 'operator_id' ? `"operator_id": ${JSON.stringify(bad)}` : `"task_id": ${JSON.stringify(bad)},\n      "snapshot_path": "fraud/task-0/state.bin"`;
    editMetadata(src, (t) => {
      expect(t).toContain(from);
      return t.replace(from, to);
    });
    reseal(src);
    const v = await verifySavepoint(src);
    expect(errorCodes(v)).toEqual(['PATH_UNSAFE']);
    expect(v.findings[0]!.message).toContain(`operator_snapshots[5].${field}`);
    const e = await rejection(relocate(src, out));
    expect(e.code).toBe('PATH_UNSAFE');
    expect(e.data.field).toBe(`operator_snapshots[5].${field}`);
    // Refused at open, before any plan: a dry run refuses it too.
    const sp = Savepoint.open(src);
    await expect(sp).rejects.toMatchObject({ code: 'PATH_UNSAFE' });
    expect(existsSync(out)).toBe(false);
  });
});

describe('a task listed twice', () => {
  it.each([
    ['the same file', 'fraud/task-0/state.bin'],
    ['another file', 'sink/task-1/state.bin'],
  ])('with %s: DUPLICATE_TASK naming both indexes, never INTERNAL', async (_what, path) => {
    const { src, out } = setup();
    editMetadata(src, (t) => t.replace('"operator_snapshots": [', `"operator_snapshots": [\n    {\n      "operator_id": "fraud",\n      "task_id": "task-0",\n      "snapshot_path": "${path}"\n    },`));
    reseal(src);
    for (const run of [relocate, convertCanonical]) {
      const e = await rejection(run(src, out));
      expect(e.code).toBe('DUPLICATE_TASK');
      expect(e.message).toContain('operator_snapshots[6]');
      expect(e.message).toContain('operator_snapshots[0]');
    }
    expect(errorCodes(await verifySavepoint(src))).toContain('DUPLICATE_TASK');
  });

  it('two tasks sharing one state file: SHARED_STATE_FILE, as verify says', async () => {
    const { src, out } = setup();
    editMetadata(src, (t) => t.replace('"snapshot_path": "sink/task-1/state.bin"', '"snapshot_path": "sink/task-0/state.bin"'));
    reseal(src);
    expect((await rejection(relocate(src, out))).code).toBe('SHARED_STATE_FILE');
    expect(errorCodes(await verifySavepoint(src))).toContain('SHARED_STATE_FILE');
  });
});

void FIXTURES;
