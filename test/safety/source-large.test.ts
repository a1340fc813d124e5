import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { generateLargeMetadata } from '../../src/tools/bench-large-metadata.js';
import { useTempDirs } from '../write/support.js';
import { rejection, relocate, verifySavepoint } from './source-support.js';

/**
 * Issue 12, second pass: metadata with many snapshots is legitimate. A
 * scaled-down case here (npm run bench:metadata measures 20K to 200K);
 * FILES_MISSING names the first missing file first and lists a bounded number.
 */

const tmp = useTempDirs('ksp-src-large-');

describe('large metadata', () => {
  it('3,000 snapshots: verify, inspect and relocate', async () => {
    // 0-byte files: every writer rewrites each one, the heaviest path per task.
    const sp = await generateLargeMetadata(tmp(), 3000, { zeroByte: true });
    const v = await verifySavepoint(sp);
    expect(v.ok).toBe(true);
    expect(v.totals.tasks).toBe(3000);
    expect(v.tasks.map((t) => `${t.operator}/${t.task}`).slice(0, 2)).toEqual(['op-0/task-0', 'op-0/task-1']);
    const i = await inspectSavepoint(sp);
    expect(i.totals).toMatchObject({ tasks: 3000, entries: 30 * 3, statelessTasks: 2970 });
    const out = join(tmp(), 'out');
    await relocate(sp, out);
    expect((await verifySavepoint(out)).ok).toBe(true);
  }, 120_000);

  it('FILES_MISSING names the first missing file on its first line and at most 20, then how many more', async () => {
    const sp = await generateLargeMetadata(tmp(), 500);
    // Tasks 10..39 of op-1 (50 per operator): 30 missing files.
    for (let t = 10; t < 40; t++) rmSync(join(sp, 'op-1', `task-${t}`, 'state.bin'));
    const e = await rejection(relocate(sp, join(tmp(), 'out')));
    expect(e.code).toBe('FILES_MISSING');
    const lines = e.message.split('\n');
    expect(lines[0]).toContain(join(sp, 'op-1', 'task-10', 'state.bin'));
    expect(lines[0]).toContain('30 file(s)');
    expect(lines.slice(1).filter((l) => l.includes('state.bin (state of'))).toHaveLength(20);
    expect(lines[lines.length - 1]).toBe('  and 10 more');
    expect(e.data).toMatchObject({ count: 30, file: join(sp, 'op-1', 'task-10', 'state.bin') });
  });
});
