import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { ksp } from '../support/cli.js';
import { FIXTURES, ROOT, SHOP_SP, copyOf, tempDir } from '../support/env.js';
import { reseal } from '../support/reseal.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { prng, writeSyntheticSavepoint } from '../../src/tools/synthetic.js';

/**
 * `ksp report` in a real browser (Debian's chromium driven by
 * playwright-core): the page draws the right number of bars, logs no error,
 * and every number on it equals `ksp inspect --json`. A screenshot of each
 * page goes to test-artifacts/ (its path is printed). Skipped when chromium
 * is not installed.
 */

const CHROMIUM = process.env.KSP_CHROMIUM ?? '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
if (!HAS_CHROMIUM) console.warn(`report browser tests skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set KSP_CHROMIUM)`);

const ARTIFACTS = join(ROOT, 'test-artifacts');
const NATIVE_SP = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
const HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';

interface InspectJson {
  jobId: string;
  epoch: string;
  totals: { operators: number; tasks: number; entries: number; bytes: number; repeatedKeys: number };
  operators: Array<{
    id: string; taskCount: number; entries: number; bytes: number; repeatedKeys: number;
    keyGroups: { distinct: number; maxPerGroup: number; watermarkKeys: number };
    states: Array<{ name: string; entryOperator: string; entries: number; keyBytes: number; valueBytes: number }>;
    tasks: Array<{ id: string; entries: number; size: number; native?: { sstBytes: number } }>;
  }>;
}

describe.skipIf(!HAS_CHROMIUM)('ksp report in chromium', () => {
  // Made in beforeAll: a skipped describe still runs its body.
  let tmp: ReturnType<typeof tempDir>;
  let browser: Browser;
  let generated = '';
  let hostile = '';

  beforeAll(async () => {
    tmp = tempDir('ksp-report-');
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM });
    mkdirSync(ARTIFACTS, { recursive: true });
    // A generated savepoint: 6 tasks, 5,000 entries with random 16-byte keys.
    const next = prng(16);
    const r = await writeSyntheticSavepoint(tmp.path, {
      job: 'gen', operator: 'op-gen', entries: 5000, tasks: 6,
      fill: (pool) => { for (let i = 0; i < pool.length; i++) pool[i] = Math.floor(next() * 256); },
    });
    generated = r.sp;
    // The shop fixture with hostile text in keys and a key stored three times in task-0.
    const copy = copyOf(SHOP_SP);
    afterAll(copy.cleanup);
    hostile = copy.path;
    const sp = await Savepoint.open(SHOP_SP);
    const entries: StateEntry[] = [];
    for await (const b of sp.entries({ operator: 'orders-agg' })) for (const e of b) if (e.task.taskId === 'task-0') entries.push({ operatorId: e.operatorId, stateName: e.stateName, key: Buffer.from(e.key), value: Buffer.from(e.value) });
    const key = Buffer.from(HOSTILE);
    for (let i = 0; i < 3; i++) entries.push({ operatorId: 'orders-agg', stateName: 'totals', key, value: Buffer.alloc(4000 + i, 0x61) });
    writeFileSync(join(hostile, 'orders-agg', 'task-0', 'state.bin'), await encodeStateBinToBuffer(entries));
    reseal(hostile);
  });

  afterAll(async () => {
    await browser?.close();
    tmp?.cleanup();
  });

  /** Writes the report, opens it from disk, checks the console stays clean; returns the page and inspect's JSON. */
  async function open(name: string, sp: string, extra: string[] = []): Promise<{ page: Page; inspect: InspectJson; errors: string[] }> {
    const file = join(tmp.path, `${name}.html`);
    const r = await ksp(['report', sp, '--out', file, ...extra]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const i = await ksp(['inspect', sp, '--json']);
    expect(i.code).toBe(0);
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    // Any request beyond the file itself would break "opens from disk, no network".
    page.on('request', (q) => { if (q.url() !== `file://${file}`) errors.push(`request: ${q.url()}`); });
    await page.goto(`file://${file}`);
    const shot = join(ARTIFACTS, `report-${name}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
    return { page, inspect: JSON.parse(i.stdout) as InspectJson, errors };
  }

  /** Every number the page shows equals inspect --json's: totals, operators, states, tasks, bars. */
  async function numbersMatch(page: Page, s: InspectJson): Promise<void> {
    const body = await page.evaluate(() => ({ ...document.body.dataset }));
    expect(body).toMatchObject({ job: s.jobId, epoch: s.epoch, operators: String(s.totals.operators), tasks: String(s.totals.tasks), entries: String(s.totals.entries), bytes: String(s.totals.bytes) });
    const totals = await page.$$eval('.stat', (els) => Object.fromEntries(els.map((e) => [(e as HTMLElement).dataset.total!, Number((e as HTMLElement).dataset.value)])));
    expect(totals).toEqual({ operators: s.totals.operators, tasks: s.totals.tasks, entries: s.totals.entries, bytes: s.totals.bytes, 'repeated-keys': s.totals.repeatedKeys });
    for (const o of s.operators) {
      const sec = page.locator(`section.operator[data-operator="${o.id}"]`);
      expect(await sec.count()).toBe(1);
      const d = await sec.evaluate((e) => ({ ...(e as HTMLElement).dataset }));
      expect(d).toMatchObject({ tasks: String(o.taskCount), entries: String(o.entries), bytes: String(o.bytes), repeatedKeys: String(o.repeatedKeys), kgDistinct: String(o.keyGroups.distinct), kgMax: String(o.keyGroups.maxPerGroup) });
      const states = await sec.locator('tr.state').evaluateAll((els) => els.map((e) => {
        const x = (e as HTMLElement).dataset;
        return { name: x.state, entryOperator: x.entryOperator, entries: Number(x.entries), keyBytes: Number(x.keyBytes), valueBytes: Number(x.valueBytes) };
      }));
      expect(states).toEqual(o.states);
      const want = o.tasks.map((t) => ({ task: t.id, entries: t.entries, bytes: t.native ? t.native.sstBytes : t.size }));
      const rows = await sec.locator('tr.task').evaluateAll((els) => els.map((e) => ({ task: (e as HTMLElement).dataset.task, entries: Number((e as HTMLElement).dataset.entries), bytes: Number((e as HTMLElement).dataset.bytes) })));
      expect(rows).toEqual(want);
      // One bar per task in both task charts, carrying the same numbers.
      const eb = await sec.locator('svg.tasks-entries rect.bar').evaluateAll((els) => els.map((e) => ({ task: (e as SVGElement).dataset.task, entries: Number((e as SVGElement).dataset.entries) })));
      expect(eb).toEqual(want.map(({ task, entries }) => ({ task, entries })));
      const bb = await sec.locator('svg.tasks-bytes rect.bar').evaluateAll((els) => els.map((e) => ({ task: (e as SVGElement).dataset.task, bytes: Number((e as SVGElement).dataset.bytes) })));
      expect(bb).toEqual(want.map(({ task, bytes }) => ({ task, bytes })));
      if (o.entries === 0) continue;
      // Skew: 128 bars of 256 key groups, holding every entry; a boundary line between each two tasks.
      const skew = await sec.locator('svg.skew rect.bar').evaluateAll((els) => els.map((e) => Number((e as SVGElement).dataset.entries)));
      expect(skew).toHaveLength(128);
      expect(skew.reduce((a, b) => a + b, 0)).toBe(o.entries);
      expect(Math.max(...skew)).toBeGreaterThanOrEqual(o.keyGroups.maxPerGroup);
      expect(await sec.locator('svg.skew line.boundary').count()).toBe(o.taskCount - 1);
      const hot = await sec.locator('tr.hot-kg').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.entries)));
      expect(hot[0]).toBe(o.keyGroups.maxPerGroup);
    }
  }

  it('the shop fixture: numbers equal inspect --json, charts have a bar per task and 128 key-group bars, no console error', async () => {
    const { page, inspect, errors } = await open('shop', SHOP_SP);
    await numbersMatch(page, inspect);
    expect(await page.locator('.verdict').getAttribute('data-verify-ok')).toBe('true');
    expect(await page.locator('tr.value').count()).toBe(10);
    // Printed: each operator starts a page, the charts are not split, and it makes a PDF.
    await page.emulateMedia({ media: 'print' });
    expect(await page.locator('section.operator').first().evaluate((e) => getComputedStyle(e).breakBefore)).toBe('page');
    expect(await page.locator('figure').first().evaluate((e) => getComputedStyle(e).breakInside)).toBe('avoid');
    const pdf = join(ARTIFACTS, 'report-shop.pdf');
    await page.pdf({ path: pdf, format: 'A4', printBackground: true });
    console.log(`printed: ${pdf}`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the native fixture: SST levels and compression per operator', async () => {
    const { page, inspect, errors } = await open('native', NATIVE_SP);
    await numbersMatch(page, inspect);
    const native = page.locator('section.operator[data-operator="windows"] p.native');
    expect(await native.count()).toBe(1);
    expect(Number(await native.getAttribute('data-sst-files'))).toBeGreaterThan(0);
    expect(await native.textContent()).toMatch(/L\d+: \d+ file\(s\).*compression \w+/);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a generated savepoint with --what-if-parallelism 4: predicted bars per new task sum to the routed entries', async () => {
    const { page, inspect, errors } = await open('generated', generated, ['--what-if-parallelism', '4']);
    await numbersMatch(page, inspect);
    const o = inspect.operators[0]!;
    const predicted = await page.locator('svg.whatif rect.bar').evaluateAll((els) => els.map((e) => Number((e as SVGElement).dataset.predicted)));
    expect(predicted).toHaveLength(4);
    expect(predicted.reduce((a, b) => a + b, 0)).toBe(o.entries - o.keyGroups.watermarkKeys);
    expect(Number(await page.locator('.whatif-summary').getAttribute('data-predicted-max'))).toBe(Math.max(...predicted));
    // The verdict and findings are verify's.
    const v = JSON.parse((await ksp(['verify', generated, '--json'])).stdout) as { ok: boolean; findings: Array<{ code: string }> };
    expect(await page.locator('.verdict').getAttribute('data-verify-ok')).toBe(String(v.ok));
    expect(await page.locator('tr.finding').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.code)).then((c) => c.sort())).toEqual(v.findings.map((f) => f.code).sort());
    expect(errors).toEqual([]);
    await page.close();
  });

  it('savepoint text is escaped: a hostile key is shown as text, runs nothing; its repeats are listed', async () => {
    const { page, inspect, errors } = await open('hostile', hostile);
    await numbersMatch(page, inspect);
    expect(await page.evaluate(() => document.querySelectorAll('script, img').length)).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    const repeat = page.locator('tr.repeat');
    expect(await repeat.count()).toBe(1);
    expect(await repeat.getAttribute('data-repeats')).toBe('2');
    expect(await repeat.locator('code.key').textContent()).toContain('<script>window.__pwned=1</script>');
    expect(inspect.totals.repeatedKeys).toBe(2);
    // The largest value is the last of the three (4,002 bytes).
    expect(await page.locator('tr.value').first().getAttribute('data-value-bytes')).toBe('4002');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('--what-if-parallelism on the shop fixture: the watermarks (broadcast) are left out of the predicted bars', async () => {
    const { page, inspect, errors } = await open('shop-whatif', SHOP_SP, ['--what-if-parallelism', '5']);
    const win = inspect.operators.find((o) => o.id === 'windows')!;
    expect(win.keyGroups.watermarkKeys).toBeGreaterThan(0);
    for (const o of inspect.operators) {
      const predicted = await page.locator(`section.operator[data-operator="${o.id}"] svg.whatif rect.bar`).evaluateAll((els) => els.map((e) => Number((e as SVGElement).dataset.predicted)));
      expect(predicted).toHaveLength(5);
      expect(predicted.reduce((a, b) => a + b, 0)).toBe(o.entries - o.keyGroups.watermarkKeys);
    }
    expect(errors).toEqual([]);
    await page.close();
  });

  it('--tasks N draws the first N tasks and says how many there are', async () => {
    const { page, inspect, errors } = await open('generated-tasks', generated, ['--tasks', '4', '--no-verify']);
    const o = inspect.operators[0]!;
    const sec = page.locator('section.operator');
    expect(await sec.getAttribute('data-tasks')).toBe('6');
    expect(await sec.getAttribute('data-entries')).toBe(String(o.entries));
    const bars = await sec.locator('svg.tasks-entries rect.bar').evaluateAll((els) => els.map((e) => Number((e as SVGElement).dataset.entries)));
    expect(bars).toEqual(o.tasks.slice(0, 4).map((t) => t.entries));
    expect(await sec.textContent()).toContain('The first 4 of 6 tasks are drawn');
    expect(await page.locator('.findings .none').textContent()).toContain('--no-verify');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('usage: a bad --what-if-parallelism and an existing --out without --overwrite', async () => {
    const bad = await ksp(['report', SHOP_SP, '--out', join(tmp.path, 'x.html'), '--what-if-parallelism', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--what-if-parallelism/);
    const file = join(tmp.path, 'shop.html');
    const again = await ksp(['report', SHOP_SP, '--out', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--overwrite/);
  });
});
