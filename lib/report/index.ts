/**
 * A self-contained HTML report of a run: summary (seed, pass@1 before/after, timings) and plots
 * of reward, pass@1 over steps, KL, entropy, clip ratios, completion length and step time.
 * Plots are drawn with uPlot (a maintained charting library), whose script and CSS are inlined
 * so the file opens offline and nothing is downloaded.
 */
import * as fs from 'fs';
import * as path from 'path';

export interface ReportInput {
  title: string;
  /** Rows of metrics.jsonl (each has `phase` 'sft' | 'grpo' | 'eval' and `step`). */
  metrics: Record<string, unknown>[];
  /** Key facts shown at the top (seed, pass@1 before/after, times, config). */
  summary: Record<string, string | number>;
  /** Sample completions (prompt, completion, correct). */
  samples?: { prompt: string; completion: string; correct: boolean }[];
}

function readAsset(rel: string): string {
  return fs.readFileSync(require.resolve(`uplot/dist/${rel}`), 'utf8');
}

interface Chart {
  title: string;
  phase: string;
  x: string;
  /** The y axis label (unit). */
  y: string;
  series: { key: string; label: string }[];
  /** Extra series from the rows' keys (e.g. one per reward function, custom ones included). */
  dynamic?: (key: string) => string | null;
}

const CHARTS: Chart[] = [
  {
    title: 'Reward (train batches)', phase: 'grpo', x: 'step', y: 'mean reward per completion',
    series: [{ key: 'reward', label: 'reward (weighted sum)' }],
    // every reward function of the run, built-in or from --reward-module
    dynamic: (k) => /^rewards\/(.+)\/mean$/.exec(k)?.[1] ?? null,
  },
  { title: 'Held-out pass@1 / pass@k / maj@k', phase: 'eval', x: 'step', y: 'fraction of prompts', series: [{ key: 'pass@1', label: 'pass@1' }, { key: 'pass@k', label: 'pass@k' }, { key: 'maj@k', label: 'maj@k' }] },
  { title: 'KL to the reference', phase: 'grpo', x: 'step', y: 'KL (nats/token)', series: [{ key: 'kl', label: 'kl' }] },
  { title: 'Entropy', phase: 'grpo', x: 'step', y: 'entropy (nats/token)', series: [{ key: 'entropy', label: 'entropy' }] },
  { title: 'Clip ratios', phase: 'grpo', x: 'step', y: 'fraction of tokens', series: [{ key: 'clip_ratio/low_mean', label: 'low' }, { key: 'clip_ratio/high_mean', label: 'high' }, { key: 'clip_ratio/region_mean', label: 'region' }] },
  { title: 'Completion length', phase: 'grpo', x: 'step', y: 'tokens', series: [{ key: 'completions/mean_length', label: 'mean' }, { key: 'completions/max_length', label: 'max' }] },
  { title: 'Truncated completions', phase: 'grpo', x: 'step', y: 'fraction of completions', series: [{ key: 'completions/clipped_ratio', label: 'clipped ratio' }] },
  { title: 'Step time', phase: 'grpo', x: 'step', y: 'seconds', series: [{ key: 'step_time', label: 'total' }, { key: 'time/generate', label: 'generate' }, { key: 'time/reward', label: 'reward' }, { key: 'time/reference', label: 'reference' }, { key: 'time/forward', label: 'forward' }, { key: 'time/loss', label: 'loss' }, { key: 'time/backward', label: 'backward' }, { key: 'time/optimizer', label: 'optimizer' }] },
  { title: 'Groups with zero reward std', phase: 'grpo', x: 'step', y: 'fraction of groups', series: [{ key: 'frac_reward_zero_std', label: 'frac_reward_zero_std' }] },
  { title: 'Supervised warm start: NLL', phase: 'sft', x: 'step', y: 'NLL (nats/token)', series: [{ key: 'loss', label: 'loss' }] },
];

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** What one chart of the report shows (also what the tests read back from the HTML). */
export interface ChartData {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Series drawn, in order. */
  labels: string[];
  /** [x, ...one array per drawn series]; null = no value at that step. */
  data: (number | null)[][];
  /** When every series of the chart is 0 at every step: their names (listed under the title, not drawn). */
  allZero: string[];
  /** The y range when every drawn value is the same (uPlot would otherwise pick an arbitrary 0–100). */
  yRange: [number, number] | null;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The charts of a run's metrics: only series with data; all-zero series listed, not drawn. */
export function reportCharts(metrics: Record<string, unknown>[]): ChartData[] {
  const out: ChartData[] = [];
  for (const c of CHARTS) {
    const rows = metrics.filter((m) => m.phase === c.phase);
    if (!rows.length) continue;
    const series = [...c.series];
    if (c.dynamic) {
      const seen = new Set(series.map((s) => s.key));
      for (const r of rows)
        for (const k of Object.keys(r)) {
          const label = seen.has(k) ? null : c.dynamic(k);
          if (label !== null) (seen.add(k), series.push({ key: k, label }));
        }
    }
    const withData = series.filter((s) => rows.some((m) => finite(m[s.key])));
    if (!withData.length) continue;
    // zero lines next to others are information; a chart of nothing but zeros is a note instead
    const zero = withData.filter((s) => rows.every((m) => !finite(m[s.key]) || m[s.key] === 0));
    const allZero = zero.length === withData.length ? zero : [];
    const drawn = withData.filter((s) => !allZero.includes(s));
    const data: (number | null)[][] = [rows.map((m) => m[c.x] as number), ...drawn.map((s) => rows.map((m) => (finite(m[s.key]) ? (m[s.key] as number) : null)))];
    let yRange: [number, number] | null = null;
    const vals = data.slice(1).flat().filter(finite);
    if (vals.length && Math.min(...vals) === Math.max(...vals)) {
      const v = vals[0];
      const pad = Math.abs(v) * 0.1 || 1;
      yRange = [v - pad, v + pad];
    }
    out.push({ title: c.title, xLabel: c.x, yLabel: c.y, labels: drawn.map((s) => s.label), data, allZero: allZero.map((s) => s.label), yRange });
  }
  return out;
}

export function renderReport(r: ReportInput): string {
  const charts = reportCharts(r.metrics);
  const summary = Object.entries(r.summary).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td></tr>`).join('');
  const samples = (r.samples ?? []).map((s) => `<tr><td><code>${esc(s.prompt)}</code></td><td><code>${esc(s.completion)}</code></td><td>${s.correct ? '✔' : '✘'}</td></tr>`).join('');
  // JSON inside <script>: '<' escaped so a metric or label can never close the script element
  const chartsJson = JSON.stringify(charts).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>${readAsset('uPlot.min.css')}
body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #eee;padding:8px}.note{color:#666;font-size:12px;margin:4px 0 0 8px}</style>
<script>${readAsset('uPlot.iife.min.js')}</script></head>
<body><h1>${esc(r.title)}</h1>
<table>${summary}</table>
<div class="grid" id="charts"></div>
${samples ? `<h2>Sample completions (final evaluation)</h2><table><tr><th>prompt</th><th>completion</th><th>correct</th></tr>${samples}</table>` : ''}
<script id="chart-data" type="application/json">${chartsJson}</script>
<script>
const CHARTS = JSON.parse(document.getElementById('chart-data').textContent);
const COLORS = ['#1f77b4','#d62728','#2ca02c','#ff7f0e','#9467bd','#8c564b','#e377c2','#7f7f7f','#bcbd22','#17becf'];
for (const c of CHARTS) {
  const div = document.createElement('div'); div.className = 'chart';
  document.getElementById('charts').appendChild(div);
  if (c.labels.length) {
    new uPlot({ title: c.title, width: 520, height: 280, scales: { x: { time: false }, y: c.yRange ? { range: c.yRange } : {} },
      series: [{ label: c.xLabel }, ...c.labels.map((l, i) => ({ label: l, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true, points: { show: c.data[0].length < 40 } }))],
      axes: [{ label: c.xLabel }, { label: c.yLabel, size: 60 }] }, c.data, div);
  } else {
    const h = document.createElement('div'); h.className = 'u-title'; h.textContent = c.title; div.appendChild(h);
  }
  if (c.allZero.length) {
    const n = document.createElement('div'); n.className = 'note';
    n.textContent = 'zero at every step (not drawn): ' + c.allZero.join(', ');
    div.appendChild(n);
  }
}
</script></body></html>
`;
}

/** Writes the report for a run directory (reads its metrics.jsonl). */
export function writeReport(runDir: string, input: Omit<ReportInput, 'metrics'> & { metrics?: Record<string, unknown>[] }): string {
  const metrics = input.metrics ?? readMetrics(path.join(runDir, 'metrics.jsonl'));
  const out = path.join(runDir, 'report.html');
  fs.writeFileSync(out, renderReport({ ...input, metrics }));
  return out;
}

export function readMetrics(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** Rows of a metrics.jsonl, skipping a line that does not parse (a run killed mid-write). */
function readRowsTolerant(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  const rows: Record<string, unknown>[] = [];
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    try {
      const r = JSON.parse(l);
      if (r && typeof r === 'object' && !Array.isArray(r)) rows.push(r);
    } catch {
      // a torn last line: the report shows what was written before it
    }
  }
  return rows;
}

const pct = (x: unknown) => (finite(x) ? `${(100 * x).toFixed(1)}%` : '?');

/**
 * Writes <runDir>/report.html from what the run directory holds: metrics.jsonl (for a demo
 * directory, sft/ and grpo/ metrics), the latest eval-step-N.json for sample completions, and
 * summary.json when there is one. `grpo train` calls it at the end of every run (also one that
 * failed, with `status`), and `grpo report DIR` rebuilds it.
 */
export function writeRunReport(runDir: string, o: { status?: string; title?: string } = {}): string {
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory()) throw new Error(`report: expected a run directory but ${runDir} ${fs.existsSync(runDir) ? 'is not a directory' : 'does not exist'}`);
  const own = path.join(runDir, 'metrics.jsonl');
  const parts = fs.existsSync(own) ? [own] : ['sft', 'grpo'].map((d) => path.join(runDir, d, 'metrics.jsonl')).filter((f) => fs.existsSync(f));
  if (!parts.length) throw new Error(`report: ${runDir} has no metrics.jsonl (nor sft/ or grpo/ with one): not a run directory`);
  const metrics = parts.flatMap(readRowsTolerant);
  const grpo = metrics.filter((m) => m.phase === 'grpo');
  const evals = metrics.filter((m) => m.phase === 'eval');
  const sft = metrics.filter((m) => m.phase === 'sft');
  const summary: Record<string, string | number> = { 'run directory': path.resolve(runDir) };
  if (o.status) summary.status = o.status;
  if (sft.length) summary['SFT steps'] = sft[sft.length - 1].step as number;
  if (grpo.length) {
    const last = grpo[grpo.length - 1];
    summary['GRPO steps'] = last.step as number;
    const fns = Object.keys(last).map((k) => /^rewards\/(.+)\/mean$/.exec(k)?.[1]).filter((x): x is string => !!x);
    summary['reward functions'] = fns.join(', ');
    summary['reward at the last step'] = finite(last.reward) ? (last.reward as number).toFixed(3) : '?';
    const stuck = fns.filter((f) => last[`rewards/${f}/stuck`] === true);
    if (stuck.length) summary['constant rewards (no signal)'] = stuck.join(', ');
  }
  if (evals.length) {
    const a = evals[0], b = evals[evals.length - 1];
    summary['held-out pass@1'] = `${pct(a['pass@1'])} (step ${a.step}) → ${pct(b['pass@1'])} (step ${b.step})`;
    summary['held-out pass@k'] = `${pct(a['pass@k'])} → ${pct(b['pass@k'])}`;
  }
  let samples: ReportInput['samples'];
  const evalDir = fs.existsSync(own) ? runDir : path.join(runDir, 'grpo');
  const evalFiles = fs.existsSync(evalDir)
    ? fs.readdirSync(evalDir).map((f) => /^eval-step-(\d+)\.json$/.exec(f)).filter((m): m is RegExpExecArray => !!m).sort((x, y) => Number(y[1]) - Number(x[1]))
    : [];
  if (evalFiles.length) {
    try {
      samples = JSON.parse(fs.readFileSync(path.join(evalDir, evalFiles[0][0]), 'utf8')).samples;
    } catch {
      samples = undefined; // an unreadable eval file costs the samples table, not the report
    }
  }
  const title = o.title ?? `grpo-kernels run: ${path.basename(path.resolve(runDir))}`;
  return writeReport(runDir, { title, summary, metrics, samples: Array.isArray(samples) ? samples : undefined });
}
