import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runPlace, runRoute } from '../../src/write/route-pass.js';
import { ksp } from '../support/cli.js';
import { buildSavepoint } from './build.js';
import { entry, files, useTempDirs } from './support.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';

/**
 * The write units (write/units.ts) on worker threads, through the built CLI:
 * a source the route pass does not accept falls back to the streaming path,
 * which reports the exact error; a failing migration step in a thread is
 * the same typed error as in the calling thread; either way nothing stays
 * at the target.
 */

const tmp = useTempDirs('ksp-units-');

async function savepoint(): Promise<string> {
  const dir = tmp();
  const tasks: StateEntry[][] = [];
  for (let t = 0; t < 3; t++) {
    const list: StateEntry[] = [];
    for (let i = 0; i < 2000; i++) list.push(entry('agg', i % 2 ? 'sum' : 'count', `key-${t}-${i}`, `value-${i}`));
    tasks.push(list);
  }
  await buildSavepoint(dir, [{ id: 'agg', tasks }]);
  return dir;
}

/** Replaces a state file and its manifest line, so only the file's content is wrong. */
function replaceState(sp: string, rel: string, bytes: Buffer): void {
  const old = createHash('sha256').update(readFileSync(join(sp, rel))).digest('hex');
  writeFileSync(join(sp, rel), bytes);
  const fresh = createHash('sha256').update(bytes).digest('hex');
  const manifest = join(sp, 'manifest.sha256');
  writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(old, fresh));
}

describe('write units on threads', () => {
  for (const threads of ['1', '2']) {
    it(`--threads ${threads}: a malformed source falls back to the streaming path's exact error, and nothing stays`, async () => {
      const sp = await savepoint();
      const rel = 'agg/task-1/state.bin';
      const bytes = readFileSync(join(sp, rel));
      // The key length of entry 5 runs past the end of the file.
      let p = 12;
      for (let e = 0; e < 5; e++) for (let f = 0; f < 4; f++) p += 8 + Number(bytes.readBigUInt64LE(p));
      for (let f = 0; f < 2; f++) p += 8 + Number(bytes.readBigUInt64LE(p)); // operator id, state name
      bytes.writeBigUInt64LE(BigInt(bytes.length), p); // the key's length
      replaceState(sp, rel, bytes);
      const out = join(tmp(), 'out');
      const r = await ksp(['rescale', sp, out, '-p', '4', '--routing', 'state-key', '--mode', 'relative', '--threads', threads]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain('[STATE_BIN_LENGTH]');
      expect(r.stderr).toContain(rel);
      expect(existsSync(out) ? files(out) : []).toEqual([]);
    });

    it(`--threads ${threads}: a source that differs from its manifest is refused, and nothing stays`, async () => {
      const sp = await savepoint();
      const rel = 'agg/task-2/state.bin';
      const bytes = readFileSync(join(sp, rel));
      bytes[bytes.length - 1] ^= 1;
      writeFileSync(join(sp, rel), bytes);
      const out = join(tmp(), 'out');
      const r = await ksp(['rescale', sp, out, '-p', '2', '--routing', 'state-key', '--mode', 'relative', '--threads', threads]);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toContain('HASH_MISMATCH');
      expect(existsSync(out) ? files(out) : []).toEqual([]);
    });

    it(`--threads ${threads}: a migration step that throws names operator, task and entry, as in the calling thread`, async () => {
      const sp = await savepoint();
      const mod = join(tmp(), 'm.mjs');
      writeFileSync(mod, `export default (m, codecs) => {
  m.value('agg', 1, 2, codecs.utf8, codecs.utf8, (v) => { if (v === 'value-1777') throw new Error('boom'); return v + '!'; }, { state: 'sum' });
};\n`);
      const out = join(tmp(), 'out');
      const r = await ksp(['migrate', sp, out, '--migrations', mod, '--mode', 'relative', '--threads', threads]);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toContain('[MIGRATION_FAILED]');
      expect(r.stderr).toMatch(/operator agg, state sum, task task-\d, entry #1777/);
      expect(existsSync(out) ? files(out) : []).toEqual([]);
    });
  }
});

describe('route pass', () => {
  it('answers fallback for what only the streaming decoder may judge: another version, trailing bytes, a wrong hash', async () => {
    const sp = await savepoint();
    const path = join(sp, 'agg/task-0/state.bin');
    const good = readFileSync(path);
    const unit = { kind: 'route' as const, path, size: good.length, routing: 'state-key' as const, owners: [0, 1, 2] };
    const ok = await runRoute(unit);
    expect(ok.fallback).toBeUndefined();
    expect(ok.entries).toBe(2000);
    expect(ok.counts.reduce((a, b) => a + b, 0)).toBe(2000);
    expect(ok.bytes.reduce((a, b) => a + b, 0)).toBe(good.length - 12);
    expect((await runRoute({ ...unit, sha256: '0'.repeat(64) })).fallback).toBe('hash mismatch');
    const v2 = Buffer.from(good);
    v2.writeUInt32LE(2, 0);
    writeFileSync(path, v2);
    expect((await runRoute(unit)).fallback).toBe('not state.bin v1');
    writeFileSync(path, Buffer.concat([good, Buffer.alloc(3)]));
    expect((await runRoute({ ...unit, size: good.length + 3 })).fallback).toBe('trailing bytes');
  });

  it('window routing sends watermarks and keys outside the layouts to every output, and routes tw:/sw:/ses: keys by their group key', async () => {
    const dir = tmp();
    const gk = Buffer.from('user-42');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(gk.length);
    const tw = Buffer.concat([Buffer.from('tw:'), len, gk, Buffer.alloc(8, 1)]);
    const ses = Buffer.concat([Buffer.from('ses:'), len, gk, Buffer.alloc(16, 2)]);
    await buildSavepoint(dir, [{ id: 'w', tasks: [[entry('w', 'a', tw, 'x'), entry('w', 'wm', 'wm:', Buffer.alloc(8)), entry('w', 'b', ses, 'y'), entry('w', 'c', 'plain', 'z')]] }]);
    const path = join(dir, 'w/task-0/state.bin');
    const r = await runRoute({ kind: 'route', path, size: readFileSync(path).length, routing: 'window', owners: [0, 1, 2, 3, 4] });
    expect(r.fallback).toBeUndefined();
    expect(r.broadcast.map((b) => b.index)).toEqual([1, 3]);
    // Both window keys share the group key, so the same output.
    expect(r.routes[0]).toBe(r.routes[2]);
    expect(r.counts.reduce((a, b) => a + b, 0)).toBe(2);
  });

  it('the place pass writes every output exactly as routed, across many buffer flushes and an entry larger than the buffer', async () => {
    const dir = tmp();
    const list: StateEntry[] = [];
    for (let i = 0; i < 400; i++) list.push(entry('big', 's', `key-${i}`, Buffer.alloc(8000 + ((i * 7919) % 30000), i & 0xff)));
    list.push(entry('big', 's', 'huge', Buffer.alloc(1536 * 1024, 7)));
    await buildSavepoint(dir, [{ id: 'big', tasks: [list] }]);
    const path = join(dir, 'big/task-0/state.bin');
    const src = readFileSync(path);
    const r = await runRoute({ kind: 'route', path, size: src.length, routing: 'state-key', owners: [0, 1, 2] });
    expect(r.fallback).toBeUndefined();
    // What each output must hold: the source's raw entries routed to it, in order.
    const want: Buffer[][] = [[], [], []];
    let p = 12;
    for (let e = 0; e < r.entries; e++) {
      let q = p;
      for (let f = 0; f < 4; f++) q += 8 + src.readUInt32LE(q);
      want[r.routes[e]!]!.push(src.subarray(p, q));
      p = q;
    }
    const outs = [0, 1, 2].map((i) => {
      const out = join(dir, `out-${i}.bin`);
      writeFileSync(out, Buffer.alloc(r.bytes[i]!));
      return { path: out, offset: 0, bytes: r.bytes[i]! };
    });
    expect(Math.max(...r.bytes)).toBeGreaterThan(3 * 1024 * 1024);
    await runPlace({ kind: 'place', path, size: src.length, routes: r.routes, outs });
    outs.forEach((o, i) => expect(readFileSync(o.path).equals(Buffer.concat(want[i]!)), `output ${i}`).toBe(true));
  });
});
