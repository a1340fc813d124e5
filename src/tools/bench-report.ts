/** The bench's output: a Markdown table (to quote as is) with the reference commands under it, or JSON. */
import type { RowResult } from './bench-rows.js';


const rate = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M/s` : `${(x / 1e3).toFixed(0)}K/s`);

function kspCell(r: RowResult): string {
  if (!r.ksp || !Number.isFinite(r.ksp.secs)) return '—';
  return `${r.ksp.secs.toFixed(2)} s (${rate(r.ksp.entriesPerSec)})`;
}

function refCell(r: RowResult): string {
  if (!r.reference || !Number.isFinite(r.reference.secs)) return '—';
  return `${r.reference.secs.toFixed(2)} s (${rate(r.reference.entriesPerSec)})`;
}

function ratioCell(r: RowResult): string {
  if (r.ratio === null || !Number.isFinite(r.ratio)) return '—';
  return r.ratioMeaning === 'ksp entries/s' ? rate(r.ratio) : `${r.ratio.toFixed(2)}×`;
}

export function markdown(header: string[], rows: RowResult[]): string {
  const head = ['row', 'work', 'ksp (median)', 'reference (median)', 'ratio', 'goal', 'peak RSS', 'result'];
  const body = rows.map((r) => [
    r.name, r.work, kspCell(r), refCell(r), ratioCell(r), r.goal,
    r.ksp && Number.isFinite(r.ksp.maxRssMb) ? `${r.ksp.maxRssMb.toFixed(0)} MB` : '—', r.result,
  ]);
  const lines = [...header, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((b) => `| ${b.join(' | ')} |`), ''];
  lines.push('Ratios: `wall` rows are ksp wall ÷ reference wall (lower is better); the rescale row is ksp entries/s ÷ the C program\'s;',
    'threads rows are wall with `--threads 1` ÷ wall with `--threads 2`; each ratio is the median of the per-pair ratios.',
    'Peak RSS is the largest of the row\'s ksp runs; a row passes when its goal holds and its RSS is within 256 MB.', '');
  lines.push('Commands (paths relative to the bench directory):');
  for (const r of rows) {
    if (r.ksp) lines.push(`- ${r.name}: \`${r.ksp.command}\``);
    if (r.reference) lines.push(`  reference: \`${r.reference.command}\``);
    if (r.note) lines.push(`  note: ${r.note.replace(/\s+/g, ' ').slice(0, 600)}`);
  }
  return lines.join('\n') + '\n';
}

export function json(machine: Record<string, unknown>, rows: RowResult[]): string {
  return JSON.stringify({ machine, rows }, null, 2) + '\n';
}


