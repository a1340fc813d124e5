/**
 * The report's charts: inline SVG written here (no chart library), so the
 * page is one file that draws with no script and no network. Every text and
 * attribute passes through `esc`: task ids, state names and keys come from
 * the savepoint, which is untrusted input.
 */

/** Text or attribute value safe inside HTML/SVG (quotes included, for attributes). */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** `data-*` attributes from a record (names are ours; values escaped). */
export function dataAttrs(d: Record<string, string | number>): string {
  return Object.entries(d).map(([k, v]) => ` data-${k}="${esc(v)}"`).join('');
}

export interface Bar {
  value: number;
  /** Under the bar when there is room; always in its tooltip. */
  label: string;
  /** Tooltip text (escaped here). */
  title: string;
  data: Record<string, string | number>;
  /** A second colour class, e.g. the hottest key groups. */
  tone?: 'hot' | 'alt';
}

export interface Marker {
  /** Position in bar units: the marker is drawn at the left edge of bar `at`. */
  at: number;
  label: string;
  data: Record<string, string | number>;
}

export interface ChartOptions {
  /** The chart's class (the test counts `svg.<cls> rect.bar`). */
  cls: string;
  title: string;
  /** Formats an axis value (entries or bytes). */
  fmt: (n: number) => string;
  markers?: Marker[];
  /** A horizontal reference line (e.g. the mean), with its label. */
  reference?: { value: number; label: string };
  height?: number;
  /** Byte values: ticks are round numbers of KiB, MiB, … */
  binary?: boolean;
  /** Labels along the x axis at bar positions, for charts with too many bars to label each. */
  xTicks?: Array<{ at: number; label: string }>;
  /** The drawing's width in its own units: a chart shown half-width draws narrower, so its text stays legible. */
  width?: number;
}

const PAD_L = 64;
const PAD_R = 12;
const PAD_T = 12;

/** A vertical bar chart with a y axis of four ticks; markers are vertical lines between bars. */
export function barChart(bars: Bar[], o: ChartOptions): string {
  const W = o.width ?? 960;
  const H = o.height ?? 220;
  const labelled = bars.length <= 32;
  const padB = labelled || o.xTicks ? 40 : 16;
  const plotW = W - PAD_L - PAD_R;
  const plotH = H - PAD_T - padB;
  const max = niceTop(Math.max(o.reference?.value ?? 0, ...bars.map((b) => b.value)), o.binary === true);
  const step = plotW / Math.max(1, bars.length);
  const gap = bars.length > 64 ? 0 : Math.min(6, step * 0.2);
  const y = (v: number): number => PAD_T + plotH - (v / max) * plotH;
  const parts: string[] = [];
  parts.push(`<svg class="chart ${esc(o.cls)}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(o.title)}" xmlns="http://www.w3.org/2000/svg">`);
  parts.push(`<title>${esc(o.title)}</title>`);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const yy = y(v).toFixed(1);
    parts.push(`<line class="grid" x1="${PAD_L}" x2="${W - PAD_R}" y1="${yy}" y2="${yy}"/>`);
    parts.push(`<text class="tick" x="${PAD_L - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${esc(o.fmt(v))}</text>`);
  }
  bars.forEach((b, i) => {
    const x = PAD_L + i * step + gap / 2;
    const top = y(b.value);
    const h = Math.max(b.value > 0 ? 1 : 0, PAD_T + plotH - top);
    parts.push(`<rect class="bar${b.tone ? ` ${b.tone}` : ''}" x="${x.toFixed(2)}" y="${(PAD_T + plotH - h).toFixed(2)}" width="${Math.max(0.5, step - gap).toFixed(2)}" height="${h.toFixed(2)}"${dataAttrs(b.data)}><title>${esc(b.title)}</title></rect>`);
    if (labelled) {
      parts.push(`<text class="label" x="${(x + (step - gap) / 2).toFixed(2)}" y="${PAD_T + plotH + 14}" text-anchor="middle">${esc(clip(b.label, Math.max(4, Math.floor(step / 7))))}</text>`);
    }
  });
  if (o.reference) {
    const yy = y(o.reference.value).toFixed(1);
    parts.push(`<line class="reference" x1="${PAD_L}" x2="${W - PAD_R}" y1="${yy}" y2="${yy}"/><text class="reference-label" x="${W - PAD_R}" y="${(Number(yy) - 4).toFixed(1)}" text-anchor="end">${esc(o.reference.label)}</text>`);
  }
  for (const m of o.markers ?? []) {
    const x = (PAD_L + m.at * step).toFixed(2);
    parts.push(`<line class="boundary" x1="${x}" x2="${x}" y1="${PAD_T}" y2="${PAD_T + plotH}"${dataAttrs(m.data)}><title>${esc(m.label)}</title></line>`);
  }
  for (const t of o.xTicks ?? []) {
    const x = (PAD_L + t.at * step).toFixed(2);
    parts.push(`<line class="axis" x1="${x}" x2="${x}" y1="${PAD_T + plotH}" y2="${PAD_T + plotH + 4}"/><text class="label" x="${x}" y="${PAD_T + plotH + 16}" text-anchor="middle">${esc(t.label)}</text>`);
  }
  parts.push(`<line class="axis" x1="${PAD_L}" x2="${W - PAD_R}" y1="${PAD_T + plotH}" y2="${PAD_T + plotH}"/>`);
  parts.push('</svg>');
  return parts.join('');
}

/** The axis top: four ticks of a round step (1, 2, 2.5 or 5 × 10^k, whole; of KiB, MiB, … when `binary`) reaching `max`. */
function niceTop(max: number, binary: boolean): number {
  const raw = Math.max(1, max) / 4;
  // Past half a unit, steps count that unit (1 KiB rather than 1000 B).
  const unit = binary ? 1024 ** Math.max(0, Math.floor(Math.log(raw * 2) / Math.log(1024))) : 1;
  const r = raw / unit;
  const p = 10 ** Math.floor(Math.log10(r));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= r && (s >= 1 ? Number.isInteger(s) : true)) ?? 10 * p;
  return Math.max(1, Math.ceil(step * unit)) * 4;
}

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, Math.max(1, n - 1))}…`;
}
