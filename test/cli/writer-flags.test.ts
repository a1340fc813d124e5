import { describe, expect, it } from 'vitest';
import { WRITER_NODE_FLAGS, needsMallocEnv, writerNodeFlags } from '../../src/cli/malloc-env.js';

describe("the writing child's settings (bin/ksp.js)", () => {
  it('gives writing commands a small young generation unless the user set one', () => {
    expect(writerNodeFlags([], {})).toEqual([...WRITER_NODE_FLAGS]);
    expect(writerNodeFlags(['--max-semi-space-size=32'], {})).toEqual([]);
    expect(writerNodeFlags([], { NODE_OPTIONS: '--enable-source-maps --max-semi-space-size=1' })).toEqual([]);
    expect(writerNodeFlags(['--max-old-space-size=512'], { NODE_OPTIONS: '' })).toEqual([...WRITER_NODE_FLAGS]);
  });

  it('only writing commands run in the child', () => {
    if (process.platform !== 'linux') return;
    expect(needsMallocEnv(['relocate', 'a', 'b'], {})).toBe(true);
    expect(needsMallocEnv(['verify', 'a'], {})).toBe(false);
    expect(needsMallocEnv(['relocate', 'a', 'b'], { MALLOC_TRIM_THRESHOLD_: '1' })).toBe(false);
  });
});
