import { bytes, count } from '../cli/output.js';
import { KEY_GROUPS, keyGroup, keyGroupRange, taskForKeyGroup } from '../model/key-group.js';
import type { OperatorSummary, TaskSummary } from '../model/inspect.js';
import { rangeOwnersByName } from '../model/task-ranges.js';
import { VERSION } from '../version.js';
import type { ReportData } from './data.js';
import { barChart, dataAttrs, esc, type Bar, type Marker } from './svg.js';

/**
 * `ksp report`'s page: one HTML file, no script, no network (a
 * Content-Security-Policy says so to the browser), readable on a laptop and
 * on paper. Every number a test compares with `ksp inspect --json` sits in a
 * data-* attribute beside its formatted text.
 */

/** Key-group bins of the skew chart: 128 bars of 256 key groups each. */
export const SKEW_BINS = 128;
const PER_BIN = KEY_GROUPS / SKEW_BINS;
/** Hottest key groups listed per operator. */
const HOT_SHOWN = 10;
/** Source offsets and findings listed (the rest counted). */
const OFFSETS_SHOWN = 200;
const FINDINGS_SHOWN = 300;
/** Task tables start open up to this many rows (a printed page shows them). */
const TASKS_OPEN = 64;

export function renderReport(d: ReportData): string {
  const s = d.summary;
  const title = `ksp report: ${s.jobId} epoch ${s.epoch}`;
  const body: string[] = [];
  body.push(`<header><h1>${esc(title)}</h1><p class="sub">${esc(s.kind)} <code>${esc(s.uri)}</code></p></header>`);
  for (const w of d.warnings) body.push(`<p class="warn">warning: ${esc(w)}</p>`);
  body.push(`<nav>${s.operators.map((o) => `<a href="#op-${esc(o.id)}">${esc(o.id)}</a>`).join(' · ')}${s.operators.length ? ' · ' : ''}<a href="#largest">largest values</a> · <a href="#repeated">repeated keys</a></nav>`);
  body.push(overview(d));
  body.push(findings(d));
  body.push(offsets(d));
  for (const o of s.operators) body.push(operator(o, d));
  body.push(largest(d));
  body.push(repeated(d));
  body.push(`<footer>Made by ksp ${esc(VERSION)} at ${esc(d.generatedAt)}. Numbers are those of <code>ksp inspect --json</code>; findings those of <code>ksp verify</code>.</footer>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style></head>
<body${dataAttrs({ job: s.jobId, epoch: s.epoch, operators: s.totals.operators, tasks: s.totals.tasks, entries: s.totals.entries, bytes: s.totals.bytes })}>
${body.join('\n')}
</body></html>
`;
}

function overview(d: ReportData): string {
  const s = d.summary;
  const rows: Array<[string, string]> = [
    ['Job', esc(s.jobId)],
    ['Epoch', esc(s.epoch)],
    ['Kind', esc(s.kind)],
    ['Label', s.label === null ? '<span class="none">none</span>' : esc(s.label)],
    ['Taken', esc(takenAt(s.timestampMs))],
    ['Metadata', `v${esc(s.metadataVersion)}, paths: ${esc(s.layout)}${s.savepointId ? `, savepoint id <code>${esc(s.savepointId)}</code>` : ''}`],
    ['Operator versions', s.operatorVersions && Object.keys(s.operatorVersions).length
      ? Object.entries(s.operatorVersions).map(([k, v]) => `<span class="pill"${dataAttrs({ operator: k, version: v })}>${esc(k)} v${esc(v)}</span>`).join(' ')
      : '<span class="none">none recorded</span>'],
  ];
  const t = s.totals;
  const kinds = [t.nativeTasks ? `${t.nativeTasks} native` : '', t.statelessTasks ? `${t.statelessTasks} stateless` : '', t.windowJoinTasks ? `${t.windowJoinTasks} window-join` : ''].filter(Boolean).join(', ');
  return `<section class="overview"><h2>Savepoint</h2>
<table class="kv">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>
<div class="totals">${stat('operators', t.operators, count(t.operators))}${stat('tasks', t.tasks, count(t.tasks) + (kinds ? ` <small>(${esc(kinds)})</small>` : ''))}${stat('entries', t.entries, count(t.entries))}${stat('bytes', t.bytes, bytes(t.bytes))}${stat('repeated keys', t.repeatedKeys, count(t.repeatedKeys))}</div>
</section>`;
}

function stat(name: string, value: number, shown: string): string {
  return `<div class="stat" data-total="${esc(name.replace(/ /g, '-'))}" data-value="${value}"><span class="n">${shown}</span><span class="what">${esc(name)}</span></div>`;
}

function takenAt(ms: string): string {
  const d = new Date(Number(ms));
  return Number.isFinite(d.getTime()) ? `${d.toISOString()} (${ms} ms)` : `${ms} ms`;
}

function findings(d: ReportData): string {
  if (!d.verify) return '<section class="findings"><h2>Verify</h2><p class="none">Not run (--no-verify). <code>ksp verify</code> checks every file and entry.</p></section>';
  const order = { error: 0, warning: 1, info: 2 } as const;
  const fs = [...d.verify.findings].sort((a, b) => order[a.severity] - order[b.severity]);
  const errors = fs.reduce((n, f) => n + (f.severity === 'error' ? 1 + (f.omitted ?? 0) : 0), 0);
  const head = `<p class="verdict ${d.verify.ok ? 'ok' : 'fail'}" data-verify-ok="${d.verify.ok}" data-findings="${fs.length}">${d.verify.ok ? 'Verifies' : `Does NOT verify: ${count(errors)} error(s)`}${fs.length ? `, ${count(fs.length)} finding(s) listed` : ', no findings'}</p>`;
  if (!fs.length) return `<section class="findings"><h2>Verify</h2>${head}</section>`;
  const rows = fs.slice(0, FINDINGS_SHOWN).map((f) => `<tr class="finding ${f.severity}"${dataAttrs({ code: f.code, severity: f.severity })}><td>${esc(f.severity)}</td><td><code>${esc(f.code)}</code></td><td>${esc(f.message)}${f.omitted ? ` <em>(and ${count(f.omitted)} more of this code)</em>` : ''}</td></tr>`);
  const more = fs.length > FINDINGS_SHOWN ? `<p class="more">… ${count(fs.length - FINDINGS_SHOWN)} more finding(s): <code>ksp verify</code> lists them.</p>` : '';
  return `<section class="findings"><h2>Verify</h2>${head}<table><thead><tr><th>Severity</th><th>Code</th><th>Finding</th></tr></thead><tbody>${rows.join('')}</tbody></table>${more}</section>`;
}

function offsets(d: ReportData): string {
  const o = d.summary.sourceOffsets;
  if (!o.length) return '<section class="offsets"><h2>Source offsets</h2><p class="none">None recorded.</p></section>';
  const rows = o.slice(0, OFFSETS_SHOWN).map((x) => `<tr${dataAttrs({ partition: x.partitionId, offset: x.offset })}><td><code>${esc(x.partitionId)}</code></td><td class="num">${esc(x.offset)}</td><td><code>${esc(x.encodedOffset ?? '')}</code></td></tr>`);
  const more = o.length > OFFSETS_SHOWN ? `<p class="more">… ${count(o.length - OFFSETS_SHOWN)} more (<code>ksp inspect --verbose</code>).</p>` : '';
  return `<section class="offsets"><h2>Source offsets</h2><p>Where each source partition resumes (${count(o.length)}).</p><table><thead><tr><th>Partition</th><th class="num">Offset</th><th>Encoded</th></tr></thead><tbody>${rows.join('')}</tbody></table>${more}</section>`;
}

function taskBytes(t: TaskSummary): number {
  return t.native ? t.native.sstBytes : t.size;
}

function operator(o: OperatorSummary, d: ReportData): string {
  const anchor = `op-${esc(o.id)}`;
  const parts: string[] = [];
  parts.push(`<section class="operator" id="${anchor}"${dataAttrs({ operator: o.id, tasks: o.taskCount, entries: o.entries, bytes: o.bytes, 'repeated-keys': o.repeatedKeys, 'kg-distinct': o.keyGroups.distinct, 'kg-max': o.keyGroups.maxPerGroup })}>`);
  parts.push(`<h2>Operator <code>${esc(o.id)}</code></h2>`);
  parts.push(`<p class="line">${count(o.taskCount)} task(s), ${count(o.entries)} entries, ${bytes(o.bytes)}${o.repeatedKeys ? `, <strong>${count(o.repeatedKeys)} repeated key(s)</strong>` : ''}${o.errorTasks ? `, <strong class="bad">${count(o.errorTasks)} task(s) with errors</strong>` : ''}.${o.entries ? ` Key groups: ${count(o.keyGroups.distinct)} of ${count(KEY_GROUPS)} used, ${count(o.keyGroups.minPerGroup)}..${count(o.keyGroups.maxPerGroup)} entries per group.` : ''}</p>`);
  parts.push(formats(o));
  if (o.states.length) {
    parts.push(`<h3>States</h3><table class="states"><thead><tr><th>State</th><th>Entry operator</th><th class="num">Entries</th><th class="num">Key bytes</th><th class="num">Value bytes</th></tr></thead><tbody>${o.states.map((x) => `<tr class="state"${dataAttrs({ state: x.name, 'entry-operator': x.entryOperator, entries: x.entries, 'key-bytes': x.keyBytes, 'value-bytes': x.valueBytes })}><td><code>${esc(x.name)}</code></td><td><code>${esc(x.entryOperator)}</code></td><td class="num">${count(x.entries)}</td><td class="num">${bytes(x.keyBytes)}</td><td class="num">${bytes(x.valueBytes)}</td></tr>`).join('')}</tbody></table>`);
  }
  parts.push(tasks(o, d.tasksKept));
  const groups = d.keyGroups.get(o.id);
  if (groups && o.entries) parts.push(skew(o, groups));
  if (groups && d.whatIfParallelism) parts.push(whatIf(o, groups, d.whatIfParallelism));
  parts.push('</section>');
  return parts.join('\n');
}

/** Tasks by format, and what a native task's RocksDB files are made of (levels, compression, format versions). */
function formats(o: OperatorSummary): string {
  const byFormat = new Map<string, number>();
  const levels = new Map<number, { files: number; bytes: number }>();
  const comp = new Set<string>();
  const fv = new Set<number>();
  const sums = new Set<string>();
  let ssts = 0;
  for (const t of o.tasks) {
    const f = t.error ? `${t.format} (error)` : t.format === 'canonical' ? `canonical v${t.version ?? 1}` : t.format;
    byFormat.set(f, (byFormat.get(f) ?? 0) + 1);
    if (!t.native) continue;
    ssts += t.native.sstFiles;
    for (const l of t.native.levels) {
      const have = levels.get(l.level) ?? { files: 0, bytes: 0 };
      have.files += l.files;
      have.bytes += l.bytes;
      levels.set(l.level, have);
    }
    t.native.compressions.forEach((c) => comp.add(c));
    t.native.formatVersions.forEach((v) => fv.add(v));
    t.native.checksums.forEach((c) => sums.add(c));
  }
  const list = [...byFormat].map(([f, n]) => `<span class="pill"${dataAttrs({ format: f, count: n })}>${esc(f)}: ${count(n)}</span>`).join(' ');
  const partial = o.tasks.length < o.taskCount ? ` <small>(of the ${count(o.tasks.length)} tasks listed)</small>` : '';
  let native = '';
  if (ssts || levels.size) {
    native = `<p class="native"${dataAttrs({ 'sst-files': ssts })}>Native: ${count(ssts)} SST file(s); levels ${[...levels].sort((a, b) => a[0] - b[0]).map(([l, x]) => `<span class="pill"${dataAttrs({ level: l, files: x.files, bytes: x.bytes })}>L${l}: ${count(x.files)} file(s), ${bytes(x.bytes)}</span>`).join(' ') || 'none'}; compression ${esc([...comp].join(', ') || '-')}; format_version ${esc([...fv].sort().join(', ') || '-')}; checksums ${esc([...sums].join(', ') || '-')}</p>`;
  }
  return `<h3>Formats</h3><p>${list}${partial}</p>${native}`;
}

function tasks(o: OperatorSummary, kept: number): string {
  // The first `kept` tasks are in metadata order; any after them are ones with notes (inspect's records), listed but not charted.
  const inOrder = o.tasks.slice(0, Math.min(o.taskCount, kept));
  const mean = o.taskCount ? o.entries / o.taskCount : 0;
  const entryBars: Bar[] = inOrder.map((t) => ({
    value: t.entries, label: t.id, title: `${t.id}: ${count(t.entries)} entries, ${bytes(taskBytes(t))} (${t.format})`,
    data: { task: t.id, entries: t.entries },
    tone: t.error ? 'hot' : undefined,
  }));
  const byteBars: Bar[] = inOrder.map((t) => ({
    value: taskBytes(t), label: t.id, title: `${t.id}: ${bytes(taskBytes(t))}, ${count(t.entries)} entries`,
    data: { task: t.id, bytes: taskBytes(t) }, tone: 'alt',
  }));
  const note = inOrder.length < o.taskCount ? `<p class="more">The first ${count(inOrder.length)} of ${count(o.taskCount)} tasks are drawn (--tasks N draws more).</p>` : '';
  const rows = o.tasks.map((t) => `<tr class="task"${dataAttrs({ task: t.id, format: t.format, entries: t.entries, bytes: taskBytes(t) })}><td><code>${esc(t.id)}</code></td><td>${esc(taskFormat(t))}</td><td class="num">${count(t.entries)}</td><td class="num">${bytes(taskBytes(t))}</td><td>${[...(t.error ? [`ERROR ${t.error.code}: ${t.error.message}`] : []), ...(t.notes ?? []).map((n) => `${n.code}: ${n.message}`)].map((x) => `<div class="note">${esc(x)}</div>`).join('')}</td></tr>`);
  return `<h3>Tasks</h3>
<div class="pair"><figure><figcaption>Entries per task <small>(line: mean ${count(Math.round(mean))})</small></figcaption>${barChart(entryBars, { cls: 'tasks-entries', title: `${o.id}: entries per task`, fmt: short, reference: o.taskCount > 1 ? { value: mean, label: 'mean' } : undefined, height: 220, width: 520 })}</figure>
<figure><figcaption>Bytes per task</figcaption>${barChart(byteBars, { cls: 'tasks-bytes', title: `${o.id}: bytes per task`, fmt: (n) => bytes(Math.round(n)), binary: true, height: 220, width: 520 })}</figure></div>${note}
<details${o.tasks.length <= TASKS_OPEN ? ' open' : ''}><summary>Task table (${count(o.tasks.length)})</summary><table class="tasks"><thead><tr><th>Task</th><th>Format</th><th class="num">Entries</th><th class="num">Bytes</th><th>Notes</th></tr></thead><tbody>${rows.join('')}</tbody></table></details>`;
}

function taskFormat(t: TaskSummary): string {
  if (t.native) return `native: ${t.native.sstFiles} SST, ${t.native.levels.map((l) => `L${l.level}:${l.files}`).join(' ') || 'no levels'}, ${t.native.compressions.join('/') || '-'}`;
  if (t.format === 'canonical') return `canonical v${t.version ?? 1}`;
  if (t.windowJoin) return `window-join (${t.windowJoin.rows ?? t.windowJoin.buffered} buffered rows)`;
  return t.format;
}

/** Task ids in range order under the engine's rescale rule (ids sorted as strings), when every task is listed. */
function rangeOwners(o: OperatorSummary): string[] | null {
  if (o.tasks.length < o.taskCount) return null;
  const ids = o.tasks.map((t) => t.id);
  return rangeOwnersByName(ids).map((i) => ids[i]!);
}

function skew(o: OperatorSummary, groups: Uint32Array): string {
  const p = o.taskCount;
  const owners = rangeOwners(o);
  const hot = hottest(groups, HOT_SHOWN);
  const hotBins = new Set(hot.map((h) => Math.floor(h.kg / PER_BIN)));
  const bars: Bar[] = [];
  for (let b = 0; b < SKEW_BINS; b++) {
    let n = 0;
    for (let g = b * PER_BIN; g < (b + 1) * PER_BIN; g++) n += groups[g]!;
    const first = b * PER_BIN;
    const last = first + PER_BIN - 1;
    bars.push({ value: n, label: String(first), title: `key groups ${first}–${last}: ${count(n)} entries`, data: { first, last, entries: n }, tone: hotBins.has(b) ? 'hot' : undefined });
  }
  const markers: Marker[] = [];
  for (let i = 1; i < p && p <= 512; i++) {
    const [first] = keyGroupRange(i, p);
    const who = owners ? owners[i]! : `range ${i}`;
    markers.push({ at: first / PER_BIN, label: `${who} starts at key group ${first}`, data: { range: i, 'first-key-group': first } });
  }
  const rows = hot.map((h) => {
    const r = taskForKeyGroup(h.kg, p);
    return `<tr class="hot-kg"${dataAttrs({ 'key-group': h.kg, entries: h.n })}><td class="num">${h.kg}</td><td class="num">${count(h.n)}</td><td class="num">${pct(h.n, o.entries)}</td><td>range ${r}${owners ? ` (<code>${esc(owners[r]!)}</code>)` : ''}</td></tr>`;
  });
  return `<h3>Key-group skew</h3>
<figure><figcaption>Entries per key-group range (${SKEW_BINS} bars of ${PER_BIN} key groups; window keys by their group key). Lines: the ${count(p)} task(s)' ranges at parallelism ${count(p)}${p > 512 ? ' (not drawn above 512)' : ''}; red: bars holding the hottest key groups.</figcaption>
${barChart(bars, { cls: 'skew', title: `${o.id}: entries per key-group range`, fmt: short, markers, height: 230, xTicks: Array.from({ length: 8 }, (_, i) => ({ at: (i * SKEW_BINS) / 8, label: `kg ${(i * KEY_GROUPS) / 8}` })) })}</figure>
<table class="hot"><thead><tr><th class="num">Key group</th><th class="num">Entries</th><th class="num">Share</th><th>Owner now</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function hottest(groups: Uint32Array, n: number): Array<{ kg: number; n: number }> {
  const top: Array<{ kg: number; n: number }> = [];
  for (let kg = 0; kg < groups.length; kg++) {
    const c = groups[kg]!;
    if (c === 0 || (top.length >= n && c <= top[top.length - 1]!.n)) continue;
    let at = top.length;
    while (at > 0 && top[at - 1]!.n < c) at--;
    top.splice(at, 0, { kg, n: c });
    if (top.length > n) top.pop();
  }
  return top;
}

/**
 * Entries per task after a rescale to `n`: the key-group counts summed over
 * each new range (key-group.ts keyGroupRange, the engine's rule). The
 * watermark key ("wm:") is broadcast, one per state in every task, not
 * routed: it is taken out of its key group here.
 */
function whatIf(o: OperatorSummary, groups: Uint32Array, n: number): string {
  const wm = o.keyGroups.watermarkKeys;
  const wmGroup = keyGroup(Buffer.from('wm:', 'latin1'));
  const predicted: number[] = [];
  for (let i = 0; i < n; i++) {
    const [first, last] = keyGroupRange(i, n);
    let s = 0;
    for (let g = first; g <= last; g++) s += groups[g]!;
    if (wm && wmGroup >= first && wmGroup <= last) s -= wm;
    predicted.push(s);
  }
  const routed = predicted.reduce((a, b) => a + b, 0);
  const mean = routed / n;
  const max = Math.max(0, ...predicted);
  const nowMax = Math.max(0, ...o.tasks.map((t) => t.entries));
  const nowMean = o.taskCount ? o.entries / o.taskCount : 0;
  const bars: Bar[] = predicted.map((v, i) => ({ value: v, label: String(i), title: `range ${i} of ${n}: key groups ${keyGroupRange(i, n).join('–')}, ${count(v)} entries`, data: { range: i, predicted: v } }));
  return `<h3>What if parallelism ${count(n)}</h3>
<figure><figcaption>Predicted entries per task after <code>ksp rescale --parallelism ${count(n)}</code>: range i goes to the i-th new task id in string order.${wm ? ` ${count(wm)} watermark entr${wm === 1 ? 'y is' : 'ies are'} broadcast (each task keeps one per state), not counted.` : ''}</figcaption>
${barChart(bars, { cls: 'whatif', title: `${o.id}: predicted entries per task at parallelism ${n}`, fmt: short, reference: n > 1 ? { value: mean, label: 'mean' } : undefined, height: 200 })}</figure>
<p class="whatif-summary"${dataAttrs({ parallelism: n, routed, 'predicted-max': max })}>Largest task: ${count(max)} entries, ${ratio(max, mean)} the mean (now: ${count(nowMax)} entries, ${ratio(nowMax, nowMean)} the mean, at ${count(o.taskCount)} task(s)).</p>`;
}

function ratio(max: number, mean: number): string {
  return mean > 0 ? `${(max / mean).toFixed(2)}×` : '–';
}

function pct(n: number, of: number): string {
  return of ? `${((100 * n) / of).toFixed(n * 1000 < of ? 3 : 1)}%` : '–';
}

/** Axis numbers: 1.2K, 3.4M. */
function short(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(0)}K`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function largest(d: ReportData): string {
  if (!d.largest.length) return '<section class="largest" id="largest"><h2>Largest values</h2><p class="none">No entries.</p></section>';
  const rows = d.largest.map((v) => `<tr class="value"${dataAttrs({ operator: v.operator, task: v.task, state: v.state, 'value-bytes': v.valueBytes })}><td class="num">${bytes(v.valueBytes)}</td><td><code>${esc(v.operator)}</code>/<code>${esc(v.task)}</code></td><td><code>${esc(v.state)}</code></td><td><code class="key">${esc(v.key)}</code> <small>(${count(v.keyBytes)} B)</small></td></tr>`);
  return `<section class="largest" id="largest"><h2>Largest values</h2><table><thead><tr><th class="num">Value</th><th>Task</th><th>State</th><th>Key</th></tr></thead><tbody>${rows.join('')}</tbody></table></section>`;
}

function repeated(d: ReportData): string {
  const total = d.summary.totals.repeatedKeys;
  if (!total) return '<section class="repeated" id="repeated"><h2>Keys repeated within a task</h2><p class="none">None: every key appears once in its task.</p></section>';
  const rows = d.repeated.map((r) => `<tr class="repeat"${dataAttrs({ operator: r.operator, task: r.task, state: r.state, repeats: r.repeats })}><td><code>${esc(r.operator)}</code>/<code>${esc(r.task)}</code></td><td><code>${esc(r.state)}</code></td><td><code class="key">${esc(r.key)}</code></td><td class="num">${count(r.repeats + 1)}</td></tr>`);
  return `<section class="repeated" id="repeated"><h2>Keys repeated within a task</h2><p>${count(total)} entr${total === 1 ? 'y repeats' : 'ies repeat'} a key stored earlier in its task (KEY_REPEATED). The engine's load keeps the last of each; <code>ksp convert --to native</code> keeps only the last.</p>
<table><thead><tr><th>Task</th><th>State</th><th>Key</th><th class="num">Times stored</th></tr></thead><tbody>${rows.join('')}</tbody></table>${d.repeatedNotListed ? `<p class="more">… ${count(d.repeatedNotListed)} more repeated key(s) not listed.</p>` : ''}</section>`;
}

const CSS = `
:root{--fg:#1d2330;--muted:#5b6475;--line:#d8dce4;--bar:#3b6fd4;--alt:#2b9a87;--hot:#d2453a;--bg:#fff;--soft:#f4f6f9}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1180px;padding:20px 28px 40px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:18px;margin:28px 0 8px;padding-top:10px;border-top:2px solid var(--line)}h3{font-size:15px;margin:18px 0 6px}
.sub,.more,footer,figcaption,small{color:var(--muted)}
code{font:12.5px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{background:var(--soft);font-weight:600}th.num{text-align:right}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv,table.hot{width:auto}table.hot td,table.hot th{padding-right:28px}table.kv th{width:170px;background:none;color:var(--muted);font-weight:500}
.totals{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}.stat{background:var(--soft);border-radius:6px;padding:8px 14px;min-width:130px}
.stat .n{display:block;font-size:20px;font-weight:600}.stat .what{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.pill{display:inline-block;background:var(--soft);border:1px solid var(--line);border-radius:10px;padding:0 8px;margin:1px 2px;font-size:12.5px}
.verdict{font-weight:600;padding:6px 10px;border-radius:6px;display:inline-block}.verdict.ok{background:#e3f4e8;color:#17612d}.verdict.fail{background:#fbe6e4;color:#8a1f17}
tr.finding.error td:first-child,.bad{color:var(--hot);font-weight:600}tr.finding.warning td:first-child{color:#9a6700}
.warn{background:#fff4d6;padding:6px 10px;border-radius:6px}.none{color:var(--muted);font-style:italic}.note{font-size:12.5px;color:var(--muted)}
figure{margin:6px 0 10px}.pair{display:grid;grid-template-columns:1fr 1fr;gap:16px}
svg.chart{width:100%;height:auto;display:block}
svg .bar{fill:var(--bar)}svg .bar.alt{fill:var(--alt)}svg .bar.hot{fill:var(--hot)}
svg .grid{stroke:#eceef2}svg .axis{stroke:#8a93a3}svg .tick,svg .label,svg .reference-label{font:11px system-ui,sans-serif;fill:var(--muted)}
svg .boundary{stroke:var(--fg);stroke-width:1.2;stroke-dasharray:4 3}svg .reference{stroke:#9a6700;stroke-dasharray:6 4}
details summary{cursor:pointer;color:var(--muted);margin:4px 0}
tr.finding td:nth-child(2) code{word-break:normal;white-space:nowrap}
nav{margin:8px 0 0;font-size:13px}nav a{color:var(--bar);text-decoration:none}
footer{margin-top:32px;border-top:1px solid var(--line);padding-top:8px;font-size:12px}
@media (max-width:800px){.pair{grid-template-columns:1fr}body{padding:12px}}
@media print{
  body{max-width:none;padding:0;font-size:11px}
  h2{break-after:avoid;border-top:1px solid #999}h3{break-after:avoid}
  section.operator{break-before:page}
  figure,table.kv,.totals,tr{break-inside:avoid}
  .stat,.pill,thead th{background:none;border:1px solid #bbb}
  details>summary{display:none}
  .pair{grid-template-columns:1fr 1fr}
  a{color:inherit;text-decoration:none}
  nav{display:none}
  svg .bar,svg .bar.alt,svg .bar.hot{print-color-adjust:exact;-webkit-print-color-adjust:exact}
}
`;
