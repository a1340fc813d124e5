import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { ReadRoots } from '../../src/model/read-roots.js';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { locate } from '../../src/storage/uri.js';
import { ksp } from '../support/cli.js';
import { treeHashes, useTempDirs } from '../write/support.js';
import { convertCanonical, copySavepoint, editMetadata, errorCodes, rejection, relocate, reseal, verifySavepoint } from './source-support.js';

/**
 * Issue 12, items 4, 5 and 10: a savepoint cannot make ksp read outside its
 * roots (its storage base or its own directory, plus --allow-root), through
 * symlinks or absolute stored paths, and files that are not regular files are
 * refused without being opened. verify reports exactly what the writers refuse.
 */

const tmp = useTempDirs('ksp-src-roots-');

/** A source savepoint and an "outside" folder next to it (not under its roots). */
function setup(): { src: string; outside: string; out: string } {
  const root = tmp();
  const src = copySavepoint(join(root, 'sp'));
  const outside = join(root, 'outside');
  mkdirSync(outside);
  return { src, outside, out: join(root, 'out') };
}

/** verify, inspect, relocate and convert all refuse with `code`; nothing is written. */
async function refusedEverywhere(src: string, out: string, code: string, mention?: string): Promise<void> {
  const r = await verifySavepoint(src);
  expect(r.ok).toBe(false);
  expect(errorCodes(r)).toContain(code);
  if (mention) expect(r.findings.find((f) => f.code === code)!.message).toContain(mention);
  expect((await rejection(inspectSavepoint(src))).code).toBe(code);
  const e = await rejection(relocate(src, out));
  expect(e.code).toBe(code);
  if (mention) expect(e.message).toContain(mention);
  expect((await rejection(convertCanonical(src, out))).code).toBe(code);
  expect(existsSync(out)).toBe(false);
}

describe('symlinks out of the savepoint', () => {
  it('a state.bin symlinked outside is refused, though the manifest carries its hash', async () => {
    const { src, outside, out } = setup();
    const f = join(src, 'orders-agg/task-0/state.bin');
    renameSync(f, join(outside, 'state.bin'));
    symlinkSync(join(outside, 'state.bin'), f);
    reseal(src);
    await refusedEverywhere(src, out, 'PATH_UNSAFE', 'operator_snapshots[0].snapshot_path');
  });

  it('metadata.json symlinked outside is refused', async () => {
    const { src, outside, out } = setup();
    renameSync(join(src, 'metadata.json'), join(outside, 'metadata.json'));
    symlinkSync(join(outside, 'metadata.json'), join(src, 'metadata.json'));
    reseal(src);
    // Refused before it is read: verify cannot even name the savepoint's job.
    await expect(verifySavepoint(src)).resolves.toMatchObject({ ok: false });
    await refusedEverywhere(src, out, 'PATH_UNSAFE', 'metadata.json');
  });

  it('an operator folder symlinked outside is refused', async () => {
    const { src, outside, out } = setup();
    renameSync(join(src, 'windows'), join(outside, 'windows'));
    symlinkSync(join(outside, 'windows'), join(src, 'windows'));
    reseal(src);
    await refusedEverywhere(src, out, 'PATH_UNSAFE', 'windows/task-0/state.bin');
  });

  it('a symlink that stays inside the roots is followed', async () => {
    const { src, out } = setup();
    const f = join(src, 'sink/task-1/state.bin');
    rmSync(f);
    symlinkSync('../task-0/state.bin', f);
    reseal(src);
    const r = await verifySavepoint(src);
    expect(errorCodes(r)).not.toContain('PATH_UNSAFE');
    await relocate(src, out);
    expect(existsSync(join(out, 'manifest.sha256'))).toBe(true);
  });

  it('--allow-root lets a savepoint read there', async () => {
    const { src, outside, out } = setup();
    const f = join(src, 'orders-agg/task-0/state.bin');
    renameSync(f, join(outside, 'state.bin'));
    symlinkSync(join(outside, 'state.bin'), f);
    reseal(src);
    const r = await verifySavepoint(src, { allowRoots: [outside] });
    expect(errorCodes(r)).toEqual([]);
    await relocate(src, out, { allowRoots: [outside] });
    // The copy is a real file in the output, not a link.
    expect(existsSync(join(out, 'orders-agg/task-0/state.bin'))).toBe(true);
  });

  it('the CLI refuses and names --allow-root; with it, verify passes', async () => {
    const { src, outside } = setup();
    const f = join(src, 'fraud/task-0/state.bin');
    renameSync(f, join(outside, 'state.bin'));
    symlinkSync(join(outside, 'state.bin'), f);
    reseal(src);
    const r = await ksp(['verify', src]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[PATH_UNSAFE]');
    expect(r.stdout).toContain('--allow-root');
    const ok = await ksp(['verify', src, '--allow-root', outside]);
    expect(ok.code).toBe(0);
    const w = await ksp(['relocate', src, join(outside, '..', 'o'), '--mode', 'relative']);
    expect(w.code).toBe(3);
    expect(w.stderr).toContain('[PATH_UNSAFE]');
    const i = await ksp(['inspect', src, '--allow-root', outside]);
    expect(i.code).toBe(0);
  });

  it('a 10 GiB sparse file reached by a symlink is refused before anything is copied', async () => {
    const { src, outside, out } = setup();
    const big = join(outside, 'big.bin');
    writeFileSync(big, '');
    truncateSync(big, 10 * 1024 ** 3);
    const f = join(src, 'orders-agg/task-1/state.bin');
    rmSync(f);
    symlinkSync(big, f);
    const started = Date.now();
    for (const run of [() => relocate(src, out), () => convertCanonical(src, out)]) {
      expect((await rejection(run())).code).toBe('PATH_UNSAFE');
    }
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(out)).toBe(false);
  });
});

describe('files that are not regular files', () => {
  it('a FIFO where state.bin should be is refused without blocking', async () => {
    const { src, out } = setup();
    const f = join(src, 'windows/task-1/state.bin');
    rmSync(f);
    execFileSync('mkfifo', [f]);
    const started = Date.now();
    await refusedEverywhere(src, out, 'NOT_REGULAR_FILE', 'FIFO');
    const r = await ksp(['verify', src]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('a FIFO (named pipe) where a file should be');
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('a FIFO as metadata.json is refused without blocking', async () => {
    const { src, out } = setup();
    rmSync(join(src, 'metadata.json'));
    execFileSync('mkfifo', [join(src, 'metadata.json')]);
    expect((await rejection(Savepoint.open(src))).code).toBe('NOT_REGULAR_FILE');
    expect((await rejection(relocate(src, out))).code).toBe('NOT_REGULAR_FILE');
  });

  it('a folder where state.bin should be is refused', async () => {
    const { src, out } = setup();
    const f = join(src, 'fraud/task-0/state.bin');
    rmSync(f);
    mkdirSync(f);
    await refusedEverywhere(src, out, 'NOT_REGULAR_FILE', 'a folder where a file should be');
  });

  it('a device (allowed root or not) is refused', async () => {
    const { src, out } = setup();
    const f = join(src, 'fraud/task-0/state.bin');
    rmSync(f);
    symlinkSync('/dev/zero', f);
    await refusedEverywhere(src, out, 'PATH_UNSAFE');
    const e = await rejection(Savepoint.open(src, { allowRoots: ['/dev'] }));
    expect(e.code).toBe('NOT_REGULAR_FILE');
    expect(e.message).toContain('character device');
  });

  it('the storage layer itself never blocks on a FIFO', async () => {
    const { outside } = setup();
    const f = join(outside, 'fifo');
    execFileSync('mkfifo', [f]);
    const loc = locate(f);
    const e = await rejection((async () => { for await (const _ of loc.storage.read(loc.key)) void _; })());
    expect(e.code).toBe('NOT_REGULAR_FILE');
  });
});

describe('absolute stored paths', () => {
  it('prepare_path is an executor-side name: carried as a string, never read or copied', async () => {
    const { src, out } = setup();
    editMetadata(src, (t) => {
      const i = t.lastIndexOf('\n}');
      return t.slice(0, i) + `,\n  "sink_transactions": [\n    {\n      "sink_id": "s",\n      "epoch": 7,\n      "prepare_path": "/etc/passwd",\n      "committed": false\n    }\n  ]` + t.slice(i);
    });
    reseal(src);
    expect((await verifySavepoint(src)).ok).toBe(true);
    await relocate(src, out);
    const md = JSON.parse(readFileSync(join(out, 'metadata.json'), 'utf8'));
    expect(md.sink_transactions).toEqual([{ sink_id: 's', epoch: 7, prepare_path: '/etc/passwd', committed: false }]);
    // Nothing of the host file reached the output.
    const passwd = readFileSync('/etc/passwd');
    for (const f of Object.keys(treeHashes(out))) expect(readFileSync(join(out, f)).includes(passwd.subarray(0, 16)), f).toBe(false);
  });

  it.each([
    ['buffer_path', '/etc/passwd', 'unaligned_buffer_refs[0].buffer_path'],
  ])('%s %s is refused naming the field', async (field, value, named) => {
    const { src, out } = setup();
    editMetadata(src, (t) => {
      const i = t.lastIndexOf('\n}');
      const extra = field === 'buffer_path'
        ? `,\n  "unaligned_buffer_refs": [\n    {\n      "operator_id": "windows",\n      "channel_index": 0,\n      "record_count": 1,\n      "buffer_path": ${JSON.stringify(value)}\n    }\n  ]`
        : `,\n  "sink_transactions": [\n    {\n      "sink_id": "s",\n      "epoch": 7,\n      "prepare_path": ${JSON.stringify(value)},\n      "committed": false\n    }\n  ]`;
      return t.slice(0, i) + extra + t.slice(i);
    });
    reseal(src);
    await refusedEverywhere(src, out, 'PATH_UNSAFE', named);
    const e = await rejection(relocate(src, out));
    expect(e.data).toMatchObject({ field: named, found: value });
    expect(e.message).toContain('metadata.json');
  });

  it('snapshot_path /proc/self/environ is refused (not taken for a stateless task)', async () => {
    const { src, out } = setup();
    editMetadata(src, (t) => t.replace('"snapshot_path": "fraud/task-0/state.bin"', '"snapshot_path": "/proc/self/environ"'));
    reseal(src);
    await refusedEverywhere(src, out, 'PATH_UNSAFE', 'operator_snapshots[5].snapshot_path');
  });

  it('an s3:// path in a local savepoint is refused unless its bucket is allowed', async () => {
    const { src, out } = setup();
    editMetadata(src, (t) => t.replace('"snapshot_path": "fraud/task-0/state.bin"', '"snapshot_path": "s3://someone-elses-bucket/x/state.bin"'));
    reseal(src);
    await refusedEverywhere(src, out, 'PATH_UNSAFE', 's3://someone-elses-bucket/x/state.bin');
    const sp = await Savepoint.open(src, { allowRoots: ['s3://someone-elses-bucket/x'] });
    expect(sp.tasks.find((t) => t.operatorId === 'fraud')!.location.storage.kind).toBe('s3');
  });

  it('an S3 savepoint reads only in its own bucket, plus allowed roots', async () => {
    const dir = locate('s3://team-bucket/base/job/savepoints/00000000000000000001');
    const roots = await ReadRoots.of(dir, null);
    expect(roots.contains(locate('s3://team-bucket/other/job/state.bin'))).toBe(true);
    expect(roots.contains(locate('s3://other-bucket/job/state.bin'))).toBe(false);
    expect(roots.contains(locate('/etc/passwd'))).toBe(false);
    const allowed = await ReadRoots.of(dir, null, ['s3://other-bucket/shared']);
    expect(allowed.contains(locate('s3://other-bucket/shared/a'))).toBe(true);
    expect(allowed.contains(locate('s3://other-bucket/sharedx/a'))).toBe(false);
  });

  it('an engine-layout savepoint reads under its storage base, and no further', async () => {
    const root = tmp();
    const base = join(root, 'base');
    cpSync(join(RELATIVE_BASE), base, { recursive: true });
    const sp = join(base, 'shop', 'savepoints', '00000000000000000007');
    expect(errorCodes(await verifySavepoint(sp))).toEqual([]);
    // The same savepoint pointing one level above its base is refused.
    editMetadata(sp, (t) => t.replace('"snapshot_path": "shop/checkpoints/00000000000000000007/fraud/task-0/state.bin"', `"snapshot_path": ${JSON.stringify(join(root, 'elsewhere', 'state.bin'))}`));
    reseal(sp);
    expect(errorCodes(await verifySavepoint(sp))).toContain('PATH_UNSAFE');
    expect(readdirSync(root)).toEqual(['base']);
  });
});

const RELATIVE_BASE = join(new URL('../..', import.meta.url).pathname, 'fixtures', 'base');
