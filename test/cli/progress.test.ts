import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Progress, duration } from '../../src/cli/progress.js';
import { buildManifest } from '../../src/formats/manifest/manifest.js';
import { MetadataDoc } from '../../src/formats/metadata/metadata.js';
import { fromPlain } from '../../src/formats/json/json-text.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import { estimateTotal } from '../../src/model/read-bytes.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { prng, writeSyntheticSavepoint } from '../../src/tools/synthetic.js';
import { BIN, ksp } from '../support/cli.js';
import { FIXTURES, tempDir } from '../support/env.js';

/**
 * Progress as a user sees it: each long command run under a pseudo-terminal
 * (util-linux `script`), every redraw kept (KSP_PROGRESS_INTERVAL_MS=0), and
 * each phase's frames read back: a total, a percent, a rate and an ETA, and
 * a last frame whose count is its total (the total was the truth).
 */

const hasScript = spawnSync('sh', ['-c', 'command -v script'], { encoding: 'utf8' }).stdout.trim() !== '';
const NATIVE = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
const RELATIVE = join(FIXTURES, 'relative-savepoint');
const tmp = tempDir('ksp-progress-');
let big = '';

beforeAll(async () => {
  if (!hasScript) return;
  // Over the 16 MiB below which scans run inline: worker threads report the bytes here.
  const rand = prng(16);
  big = (await writeSyntheticSavepoint(tmp.path, {
    job: 'big', operator: 'agg', entries: 160_000, tasks: 4,
    fill: (b) => {
      for (let i = 0; i < b.length; i++) b[i] = (rand() * 256) | 0;
    },
  })).sp;
});
afterAll(() => tmp.cleanup());

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs ksp under a pseudo-terminal; `redirect` is appended to the command (e.g. `2>file`). */
function underTerminal(args: string[], redirect = ''): Promise<{ code: number; text: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, KSP_PROGRESS_INTERVAL_MS: '0' };
  delete env.CI;
  const cmd = `stty cols 160; ${q(process.execPath)} ${q(BIN)} ${args.map(q).join(' ')} ${redirect}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.on('error', reject);
    // script passes the command's exit status on (-e).
    child.on('close', (code) => resolve({ code: code ?? -1, text }));
  });
}

const SIZE = String.raw`[\d.]+ (?:B|KiB|MiB|GiB)`;
// An entries phase (import's rows) counts entries: `158 / 158 entries  100%  4,893,004 entries/s`.
const COUNT = String.raw`[\d,]+`;
const FRAME = new RegExp(String.raw`^(?<phase>[a-z]+(?: · [a-z ]+)?)  (?:(?<done>${SIZE}) / (?<total>${SIZE})|(?<doneN>${COUNT}) / (?<totalN>${COUNT}) entries)  (?<pct>\d+)%  (?<rate>${SIZE}|${COUNT} entries)/s  ETA (?<eta>\d+s|\d+m\d\ds|\d+h\d\dm)$`);

interface Frame { phase: string; done: string; total: string; pct: number; rate: string; eta: string }

/** The frames drawn: each redraw starts with \r and ends by clearing the rest of the line. */
function frames(text: string): { all: string[]; full: Frame[] } {
  const all = [...text.matchAll(/\r([^\r\n\x1b]+)\x1b\[K/g)].map((m) => m[1]!);
  const full = all.flatMap((s) => {
    const m = FRAME.exec(s);
    if (!m) return [];
    const g = m.groups!;
    return [{ phase: g.phase!, done: g.done ?? g.doneN!, total: g.total ?? g.totalN!, rate: g.rate!, eta: g.eta!, pct: Number(g.pct) }];
  });
  return { all, full };
}

/** Each phase named drew a total, a rate and an ETA, and ended at its total. */
function expectPhases(text: string, phases: string[]): void {
  const { full } = frames(text);
  for (const p of phases) {
    const mine = full.filter((f) => f.phase === p);
    expect(mine.length, `frames of ${p} in ${JSON.stringify(text.slice(0, 2000))}`).toBeGreaterThan(0);
    const last = mine.at(-1)!;
    expect(last.done, `${p} ends at its total`).toBe(last.total);
    expect(last.pct).toBe(100);
  }
  // Nothing but the named phases was drawn with a total.
  expect([...new Set(full.map((f) => f.phase))].sort()).toEqual([...phases].sort());
  // The line is cleared before the report: the report's first line starts clean.
  expect(text).toMatch(/\r\x1b\[K[^\r]/);
}

describe.skipIf(!hasScript)('progress under a terminal', () => {
  it('verify: the state phase and the other files, each with a total, rate and ETA', async () => {
    const r = await underTerminal(['verify', big, '--threads', '2']);
    expect(r.code).toBe(0);
    expectPhases(r.text, ['verify · state', 'verify · files']);
    expect(frames(r.text).full.filter((f) => f.phase === 'verify · state').length).toBeGreaterThan(1);
  });

  it('verify of native state counts its tables in the total and as read', async () => {
    const r = await underTerminal(['verify', NATIVE]);
    expect(r.code).toBe(0);
    expectPhases(r.text, ['verify · state', 'verify · files']);
  });

  it('inspect --out x.parquet: the source bytes the export reads', async () => {
    const r = await underTerminal(['inspect', big, '--out', join(tmp.path, 'x.parquet')]);
    expect(r.code).toBe(0);
    expectPhases(r.text, ['export']);
    expect(r.text).toMatch(/\r\x1b\[Kwrote 160,000 entries/);
  });

  it('inspect --out of native state', async () => {
    const r = await underTerminal(['inspect', NATIVE, '--out', join(tmp.path, 'n.jsonl')]);
    expect(r.code).toBe(0);
    expectPhases(r.text, ['export']);
  });

  it('rescale: the write, then the re-verify\'s phases', async () => {
    const r = await underTerminal(['rescale', big, join(tmp.path, 'p3'), '-p', '3', '--routing', 'state-key', '--mode', 'relative']);
    expect(r.code).toBe(0);
    expectPhases(r.text, ['rescale · write', 'rescale · verify state', 'rescale · verify files']);
    expect(frames(r.text).full.filter((f) => f.phase === 'rescale · write').length).toBeGreaterThan(1);
  });

  it('rescale of the fixture by window routing (the streaming path)', async () => {
    const r = await underTerminal(['rescale', RELATIVE, join(tmp.path, 'r5'), '-p', '5', '--mode', 'relative']);
    expect(r.code).toBe(0);
    expectPhases(r.text, ['rescale · write', 'rescale · verify state', 'rescale · verify files']);
  });

  it('convert both ways', async () => {
    const c = await underTerminal(['convert', NATIVE, join(tmp.path, 'canon'), '--to', 'canonical', '--mode', 'relative']);
    expect(c.code).toBe(0);
    expectPhases(c.text, ['convert · write', 'convert · verify state', 'convert · verify files']);
    const n = await underTerminal(['convert', RELATIVE, join(tmp.path, 'native'), '--to', 'native', '--mode', 'relative']);
    expect(n.code).toBe(0);
    expectPhases(n.text, ['convert · write', 'convert · verify state', 'convert · verify files']);
  });

  it('diff: one read phase per side, each with its bytes total', async () => {
    const r = await underTerminal(['diff', RELATIVE, RELATIVE]);
    expect(r.code, r.text).toBe(0);
    expectPhases(r.text, ['diff · read a', 'diff · read b']);
  });

  it('import: the rows read while planning (Parquet and JSON Lines), then the write and its re-verify', async () => {
    for (const ext of ['parquet', 'jsonl']) {
      const rows = join(tmp.path, `rows.${ext}`);
      expect((await underTerminal(['inspect', RELATIVE, '--out', rows])).code).toBe(0);
      const r = await underTerminal(['import', rows, join(tmp.path, `imported-${ext}`), '--like', RELATIVE, '--mode', 'relative']);
      expect(r.code, r.text).toBe(0);
      expectPhases(r.text, ['import · read rows', 'import · write', 'import · verify state', 'import · verify files']);
    }
  });

  it('with stderr piped, nothing is drawn, on either stream', async () => {
    const errFile = join(tmp.path, 'stderr.txt');
    const r = await underTerminal(['rescale', RELATIVE, join(tmp.path, 'piped'), '-p', '2', '--mode', 'relative'], `2>${q(errFile)}`);
    expect(r.code).toBe(0);
    // Its warnings, as plain lines; no redraw or escape.
    expect(readFileSync(errFile, 'utf8')).not.toMatch(/\r|\x1b|\/s /);
    expect(frames(r.text).all).toEqual([]);
    expect(r.text).toMatch(/^wrote /);
  });

  it('--json on stdout: the report starts on a cleared line, and --quiet draws nothing', async () => {
    const j = await underTerminal(['verify', big, '--json']);
    const json = j.text.slice(j.text.lastIndexOf('\x1b[K') + 3);
    expect(JSON.parse(json.replace(/\r\n/g, '\n')).ok).toBe(true);
    const quiet = await underTerminal(['verify', big, '--quiet']);
    expect(frames(quiet.text).all).toEqual([]);
  });
});

describe('progress off the terminal', () => {
  it('draws nothing into pipes', async () => {
    const r = await ksp(['verify', RELATIVE], { CI: '', KSP_PROGRESS_INTERVAL_MS: '0' });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/\r|\x1b/);
  });
});

describe('the progress line', () => {
  it('shows a total still being estimated as such, and so its percent and ETA', () => {
    const p = new Progress('verify', false);
    p.phase('state', 4 * 1024 * 1024);
    p.setTotal(4 * 1024 * 1024, false);
    p.add(1024 * 1024);
    expect(p.line(2)).toBe('verify · state  1.0 MiB / ~4.0 MiB  ~25%  512 KiB/s  ETA ~6s');
    p.setTotal(4 * 1024 * 1024);
    expect(p.line(2)).toBe('verify · state  1.0 MiB / 4.0 MiB  25%  512 KiB/s  ETA 6s');
    p.phase('count', 1000, 'entries');
    p.add(250);
    expect(p.line(5)).toBe('verify · count  250 / 1,000 entries  25%  50 entries/s  ETA 15s');
  });

  it('durations', () => {
    expect([duration(0.2), duration(89), duration(125), duration(7260)]).toEqual(['1s', '89s', '2m05s', '2h01m']);
  });
});

describe('totals of savepoints sized chunk by chunk', () => {
  it('verify of 2,100 tasks estimates its total from the first 2,048 files, then tells it exactly', async () => {
    const t = tempDir('ksp-progress-many-');
    try {
      // Written directly (one small file per task): the same bytes for every task but the count.
      const sp = join(t.path, 'many', 'savepoints', '00000000000000000001');
      const manifest: Array<{ path: string; sha256: string }> = [];
      const snaps: unknown[] = [];
      for (let i = 0; i < 2100; i++) {
        const rel = `agg/task-${i}/state.bin`;
        const bytes = await encodeStateBinToBuffer([{ operatorId: 'agg', stateName: 's', key: Buffer.from(`k${i}`), value: Buffer.alloc(i % 7) }]);
        mkdirSync(join(sp, 'agg', `task-${i}`), { recursive: true });
        writeFileSync(join(sp, rel), bytes);
        manifest.push({ path: rel, sha256: createHash('sha256').update(bytes).digest('hex') });
        snaps.push({ operator_id: 'agg', task_id: `task-${i}`, snapshot_path: `many/checkpoints/00000000000000000001/${rel}` });
      }
      const md = MetadataDoc.fromJson(fromPlain({ version: 1, epoch: 1, job_id: 'many', fencing_token: 1, timestamp_ms: 1, source_offsets: [], operator_snapshots: snaps, is_savepoint: true, savepoint_label: null })).encode();
      writeFileSync(join(sp, 'metadata.json'), md);
      manifest.push({ path: 'metadata.json', sha256: createHash('sha256').update(md).digest('hex') });
      writeFileSync(join(sp, 'manifest.sha256'), buildManifest(manifest));
      const calls: Array<{ phase: string; n: number; exact: boolean }> = [];
      let phase = '';
      let read = 0;
      const r = await verifySavepoint(sp, { onPhase: (p) => (phase = p), onTotal: (n, exact) => calls.push({ phase, n, exact }), onBytes: (n) => (read += n) });
      expect(r.ok).toBe(true);
      const state = calls.filter((c) => c.phase === 'state');
      expect(state.map((c) => c.exact)).toEqual([false, true]);
      const files = calls.filter((c) => c.phase === 'files');
      expect(files.at(-1)!.exact).toBe(true);
      // Every byte read was in a total: the state files and then metadata.json.
      expect(state.at(-1)!.n + files.at(-1)!.n).toBe(read);
      expect(files.at(-1)!.n).toBe(statSync(join(sp, 'metadata.json')).size);
      // The estimate from 2,048 alike tasks is within a few percent of the truth.
      expect(Math.abs(state[0]!.n - state[1]!.n) / state[1]!.n).toBeLessThan(0.05);
    } finally {
      t.cleanup();
    }
  });

  it('estimateTotal', () => {
    expect([estimateTotal(100, 1, 4), estimateTotal(100, 4, 4), estimateTotal(0, 0, 4)]).toEqual([400, 100, 0]);
  });
});
