import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkWindowJoinRows, parseWindowJoin } from '../../src/formats/task-format/index.js';
import { buildWindowJoinFixture, windowJoinDocument } from '../../src/tools/window-join-fixture.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { openTask } from '../../src/write/repartition.js';
import { defineMigrations } from '../../src/migrate/registry.js';
import { codecs } from '../../src/migrate/codecs.js';
import { FIXTURES } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { multiset, rows, useTempDirs } from '../write/support.js';

const tmp = useTempDirs();
const SP = join(FIXTURES, 'window-join', 'clicks', 'savepoints', '00000000000000000005');
const JOIN0 = 'join/task-0/state.bin';
const JOIN1 = 'join/task-1/state.bin';
const T0 = '1760000000000';

function bytes(dir: string, rel: string): Buffer {
  return readFileSync(join(dir, rel));
}

/** A copy of the fixture with `rel` replaced, its manifest line updated. */
function withFile(rel: string, data: Buffer): string {
  const dir = join(tmp(), 'clicks', 'savepoints', '00000000000000000005');
  cpSync(SP, dir, { recursive: true });
  writeFileSync(join(dir, rel), data);
  const m = readFileSync(join(dir, 'manifest.sha256'), 'utf8').split('\n').map((l) => (l.endsWith(`  ${rel}`) ? `sha256:${createHash('sha256').update(data).digest('hex')}  ${rel}` : l));
  writeFileSync(join(dir, 'manifest.sha256'), m.join('\n'));
  return dir;
}

describe('window-join documents', () => {
  it('the bundled fixture is what the generator makes, and parses as the engine writes it', async () => {
    const built = await buildWindowJoinFixture();
    for (const [rel, data] of built) expect(readFileSync(join(FIXTURES, rel)).equals(data), rel).toBe(true);
    const doc = bytes(SP, JOIN0);
    expect(doc.subarray(0, 16).toString()).toBe('{"buffered_b64":');
    const p = parseWindowJoin(doc, 'f');
    expect(p.summary).toMatchObject({
      spec: { timeColumn: 'ts', leftKeyColumn: 'user', rightKeyColumn: 'user', windowMs: '5000' },
      watermarkMs: T0, buffered: 3, left: 2, right: 1, keys: 2, hasBuffer: true,
    });
    expect(await checkWindowJoinRows(p, 'f')).toBe(3);
    expect(parseWindowJoin(bytes(SP, JOIN1), 'f').summary).toMatchObject({ buffered: 0, watermarkMs: T0 });
    // Older engine builds wrote no buffered_b64; i64 extremes survive.
    expect(parseWindowJoin(Buffer.from('{"spec":{"left_key_column":"a","right_key_column":"b","time_column":"t","window_ms":1},"watermark_ms":-9223372036854775808}'), 'f').summary)
      .toMatchObject({ hasBuffer: false, buffered: 0, watermarkMs: '-9223372036854775808' });
  });

  it('what the engine could not restore is WINDOW_JOIN_INVALID, naming the field', async () => {
    const bad = (s: string | Buffer) => () => parseWindowJoin(Buffer.from(s), 'f');
    const spec = '"spec":{"left_key_column":"a","right_key_column":"b","time_column":"t","window_ms":1}';
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    expect(bad('{"spec":')).toThrow(expect.objectContaining({ code: 'WINDOW_JOIN_INVALID', message: expect.stringContaining('not valid JSON') }));
    expect(bad('{"watermark_ms":1}')).toThrow(expect.objectContaining({ code: 'WINDOW_JOIN_INVALID', data: expect.objectContaining({ field: 'spec' }) }));
    expect(bad(`{${spec.replace('"window_ms":1', '"window_ms":"1"')}}`)).toThrow(expect.objectContaining({ data: expect.objectContaining({ field: 'spec.window_ms' }) }));
    expect(bad(`{"buffered_b64":"***",${spec}}`)).toThrow(expect.objectContaining({ data: expect.objectContaining({ field: 'buffered_b64' }) }));
    expect(bad(`{"buffered_b64":"${b64('{}')}",${spec}}`)).toThrow(expect.objectContaining({ message: expect.stringContaining('array') }));
    expect(bad(`{"buffered_b64":"${b64('[{"key":"k","side":"l","ipc":"AAAA"}]')}",${spec}}`)).toThrow(expect.objectContaining({ data: expect.objectContaining({ field: 'buffered_b64[0].ts' }) }));
    expect(bad(`{"buffered_b64":"${b64('[{"key":"k","side":"x","ts":1,"ipc":"AAAA"}]')}",${spec}}`)).toThrow(expect.objectContaining({ data: expect.objectContaining({ field: 'buffered_b64[0].side' }) }));
    const notIpc = parseWindowJoin(Buffer.from(`{"buffered_b64":"${b64('[{"key":"k","side":"l","ts":1,"ipc":"AAAAAAAAAAA="}]')}",${spec}}`), 'f');
    await expect(checkWindowJoinRows(notIpc, 'f')).rejects.toMatchObject({ code: 'WINDOW_JOIN_INVALID', data: { field: 'buffered_b64[0].ipc' } });
  });
});

describe('window-join tasks in the commands', () => {
  it('inspect shows them with their watermark and buffered rows (library, text and --json)', async () => {
    const s = await inspectSavepoint(SP);
    const join0 = s.operators.find((o) => o.id === 'join')!.tasks.find((t) => t.id === 'task-0')!;
    expect(join0).toMatchObject({ format: 'window-join', entries: 0, windowJoin: { watermarkMs: T0, buffered: 3, rows: 3, left: 2, right: 1 } });
    expect(s.totals).toMatchObject({ windowJoinTasks: 2, entries: 2 });
    const text = await ksp(['inspect', SP]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`window-join: watermark ${T0} (2025-10-09T08:53:20.000Z), 3 buffered row(s) (2 left, 1 right, 2 key(s))`);
    expect(text.stdout).toContain('2 window-join task(s)');
    const js = await ksp(['inspect', SP, '--json']);
    expect(js.code).toBe(0);
    const j = JSON.parse(js.stdout);
    expect(j.operators.find((o: { id: string }) => o.id === 'join').tasks[1]).toMatchObject({ format: 'window-join', windowJoin: { buffered: 0, rows: 0 } });
    // Entry listing: the join holds no key/value entries, and is not an error.
    const e = await ksp(['inspect', SP, '--entries', '--json']);
    expect(e.code).toBe(0);
    expect(e.stdout.trim().split('\n')).toHaveLength(2);
  });

  it('verify checks them (parse, fields, base64, Arrow IPC) and counts rows; never as state.bin corruption', async () => {
    const v = await verifySavepoint(SP);
    expect(v.findings.filter((f) => f.severity !== 'info')).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.tasks.find((t) => t.operator === 'join' && t.task === 'task-0')).toMatchObject({ format: 'window-join', windowJoin: { rows: 3 } });
    const broken = withFile(JOIN1, Buffer.from(bytes(SP, JOIN1).toString().replace('"W10="', '"W10"')));
    const b = await verifySavepoint(broken);
    expect(b.ok).toBe(false);
    expect(b.findings.filter((f) => f.severity === 'error').map((f) => f.code)).toEqual(['WINDOW_JOIN_INVALID']);
    expect(b.tasks.find((t) => t.operator === 'join' && t.task === 'task-1')!.format).toBe('window-join');
    const cli = await ksp(['verify', broken]);
    expect(cli.code).toBe(1);
    expect(cli.stdout + cli.stderr).toContain('WINDOW_JOIN_INVALID');
    expect(cli.stdout + cli.stderr).not.toContain('STATE_BIN_');
  });

  it('relocate, migrate and convert --to native carry them byte for byte, with a note in the plan', async () => {
    const reg = defineMigrations((m) => m.value('counts', 1, 2, codecs.raw, codecs.raw, (v) => v));
    const cases: Array<[string, (w: SavepointWriter) => SavepointWriter]> = [
      ['relocate', (w) => w.relocate()],
      ['migrate', (w) => w.migrate(reg)],
      ['convert-native', (w) => w.convert('native')],
      ['convert-canonical', (w) => w.convert('canonical')],
    ];
    for (const [name, op] of cases) {
      const out = join(tmp(), name);
      const w = op(SavepointWriter.from(await Savepoint.open(SP)));
      const plan = await w.plan(out, { mode: 'relative' });
      expect(plan.warnings.join('\n'), name).toContain('2 window-join task(s) (join/task-0, join/task-1)');
      const r = await w.write(out, { mode: 'relative' });
      expect(r.verify.ok, name).toBe(true);
      for (const rel of [JOIN0, JOIN1]) expect(bytes(out, rel).equals(bytes(SP, rel)), `${name} ${rel}`).toBe(true);
      expect(multiset(await rows(out)), name).toEqual(multiset(await rows(SP)));
    }
  });

  it('edit renames and removes them like any operator (the document is copied, not opened); a rewrite from entries is refused', async () => {
    const out = join(tmp(), 'e');
    const r = await SavepointWriter.from(await Savepoint.open(SP)).renameOperator('join', 'join2').write(out, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    expect(bytes(out, 'join2/task-0/state.bin').equals(bytes(SP, JOIN0))).toBe(true);
    const gone = join(tmp(), 'g');
    await SavepointWriter.from(await Savepoint.open(SP)).removeOperator('join').write(gone, { mode: 'relative' });
    expect(existsSync(join(gone, 'join'))).toBe(false);
    const sp = await Savepoint.open(SP);
    const t = sp.tasks.find((x) => x.operatorId === 'join')!;
    await expect(openTask(t)).rejects.toMatchObject({ code: 'WINDOW_JOIN_OPAQUE' });
    await expect(openTask(t, undefined, 'rescale')).rejects.toMatchObject({ code: 'RESCALE_WINDOW_JOIN' });
  });

  it('rescale of an operator holding one refuses at plan time with RESCALE_WINDOW_JOIN; other operators rescale', async () => {
    const out = join(tmp(), 'r');
    const w = SavepointWriter.from(await Savepoint.open(SP)).rescale(4, { operators: ['join'] });
    await expect(w.write(out, { mode: 'relative' })).rejects.toMatchObject({ code: 'RESCALE_WINDOW_JOIN', message: expect.stringContaining('redistribute_snapshots') });
    expect(existsSync(out)).toBe(false);
    const cli = await ksp(['rescale', SP, out, '-p', '4', '--dry-run']);
    expect(cli.code).toBe(6); // family 'unsupported'
    expect(cli.stderr).toContain('RESCALE_WINDOW_JOIN');
    const ok = join(tmp(), 'ok');
    const r = await SavepointWriter.from(await Savepoint.open(SP)).rescale(2, { operators: ['counts'] }).write(ok, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    for (const rel of [JOIN0, JOIN1]) expect(bytes(ok, rel).equals(bytes(SP, rel))).toBe(true);
  });

  it('the generator writes the engine\'s member order for any events', () => {
    const d = windowJoinDocument(-5n, []).toString();
    expect(d).toBe('{"buffered_b64":"W10=","spec":{"left_key_column":"user","right_key_column":"user","time_column":"ts","window_ms":5000},"watermark_ms":-5}');
  });
});
