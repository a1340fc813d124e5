import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ksp } from '../support/cli.js';
import { SHOP_SP, tempDir } from '../support/env.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { gatherReport } from '../../src/report/data.js';
import { renderReport } from '../../src/report/html.js';
import { barChart, esc } from '../../src/report/svg.js';

/** The report's HTML without a browser: escaping and chart structure (report.test.ts loads it in chromium). */

const EVIL = `</title><script>alert("x")</script><img src=x onerror='y'>&amp;`;

describe('report HTML', () => {
  it('escapes every character that could end text or an attribute', () => {
    expect(esc(EVIL)).toBe('&lt;/title&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=&#39;y&#39;&gt;&amp;amp;');
  });

  it('draws a bar per value, a boundary per marker, and escapes titles and data', () => {
    const svg = barChart([
      { value: 3, label: EVIL, title: EVIL, data: { task: EVIL, entries: 3 } },
      { value: 0, label: 'b', title: 'b', data: { task: 'b', entries: 0 } },
    ], { cls: 'c', title: EVIL, fmt: String, markers: [{ at: 1, label: EVIL, data: { range: 1 } }] });
    expect(svg.match(/<rect class="bar/g)).toHaveLength(2);
    expect(svg.match(/<line class="boundary"/g)).toHaveLength(1);
    expect(svg).not.toContain('<script');
    expect(svg).not.toContain("onerror='");
  });

  it('a page whose savepoint text is hostile holds no markup of it, and no script at all', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const d = await gatherReport(sp, { verify: false });
    d.summary.label = EVIL;
    d.summary.jobId = EVIL;
    d.summary.sourceOffsets.push({ partitionId: EVIL, offset: '1' });
    d.largest[0]!.key = EVIL;
    d.summary.operators[0]!.states[0]!.name = EVIL;
    const html = renderReport({ ...d, warnings: [EVIL], whatIfParallelism: 3 });
    expect(html).not.toMatch(/<script|<img|onerror='/i);
    expect(html).toContain(esc(EVIL));
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'`);
    // 128 key-group bars per operator with entries, 3 what-if bars per operator.
    const withEntries = d.summary.operators.filter((o) => o.entries > 0).length;
    expect(html.match(/class="chart skew"/g)).toHaveLength(withEntries);
    expect(html.match(/data-predicted=/g)).toHaveLength(3 * d.summary.operators.length);
  });

  it('ksp report --json: says what it wrote; the file is the page', async () => {
    const t = tempDir();
    try {
      const file = join(t.path, 'r.html');
      const r = await ksp(['report', SHOP_SP, '--out', file, '--json', '--no-verify']);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(j).toMatchObject({ operators: 4, tasks: 8, entries: 158, verified: null });
      const html = readFileSync(file, 'utf8');
      expect(html.startsWith('<!doctype html>')).toBe(true);
      expect(Buffer.byteLength(html)).toBe(j.bytes);
    } finally {
      t.cleanup();
    }
  });
});
