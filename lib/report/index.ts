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
  series: { key: string; label: string }[];
}

const CHARTS: Chart[] = [
  { title: 'Reward (train batches)', phase: 'grpo', x: 'step', series: [{ key: 'reward', label: 'reward' }, { key: 'rewards/accuracy/mean', label: 'accuracy' }, { key: 'rewards/format/mean', label: 'format' }] },
  { title: 'Held-out pass@1 / pass@k / maj@k', phase: 'eval', x: 'step', series: [{ key: 'pass@1', label: 'pass@1' }, { key: 'pass@k', label: 'pass@k' }, { key: 'maj@k', label: 'maj@k' }] },
  { title: 'KL to the reference', phase: 'grpo', x: 'step', series: [{ key: 'kl', label: 'kl' }] },
  { title: 'Entropy (nats/token)', phase: 'grpo', x: 'step', series: [{ key: 'entropy', label: 'entropy' }] },
  { title: 'Clip ratios', phase: 'grpo', x: 'step', series: [{ key: 'clip_ratio/low_mean', label: 'low' }, { key: 'clip_ratio/high_mean', label: 'high' }, { key: 'clip_ratio/region_mean', label: 'region' }] },
  { title: 'Completion length (tokens)', phase: 'grpo', x: 'step', series: [{ key: 'completions/mean_length', label: 'mean' }, { key: 'completions/clipped_ratio', label: 'clipped ratio' }] },
  { title: 'Step time (s)', phase: 'grpo', x: 'step', series: [{ key: 'step_time', label: 'total' }, { key: 'time/generate', label: 'generate' }, { key: 'time/reference', label: 'reference' }, { key: 'time/forward', label: 'forward' }, { key: 'time/loss', label: 'loss' }, { key: 'time/backward', label: 'backward' }, { key: 'time/optimizer', label: 'optimizer' }] },
  { title: 'Frac. groups with zero reward std', phase: 'grpo', x: 'step', series: [{ key: 'frac_reward_zero_std', label: 'frac_reward_zero_std' }] },
  { title: 'Supervised warm start: NLL', phase: 'sft', x: 'step', series: [{ key: 'loss', label: 'loss' }] },
];

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function renderReport(r: ReportInput): string {
  const charts = CHARTS.map((c) => {
    const rows = r.metrics.filter((m) => m.phase === c.phase);
    const series = c.series.filter((s) => rows.some((m) => typeof m[s.key] === 'number' && Number.isFinite(m[s.key] as number)));
    if (!rows.length || !series.length) return null;
    const xs = rows.map((m) => m[c.x] as number);
    const data = [xs, ...series.map((s) => rows.map((m) => (typeof m[s.key] === 'number' && Number.isFinite(m[s.key] as number) ? (m[s.key] as number) : null)))];
    return { title: c.title, labels: series.map((s) => s.label), data };
  }).filter(Boolean);
  const summary = Object.entries(r.summary).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td></tr>`).join('');
  const samples = (r.samples ?? []).map((s) => `<tr><td><code>${esc(s.prompt)}</code></td><td><code>${esc(s.completion)}</code></td><td>${s.correct ? '✔' : '✘'}</td></tr>`).join('');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>${readAsset('uPlot.min.css')}
body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #eee;padding:8px}</style>
<script>${readAsset('uPlot.iife.min.js')}</script></head>
<body><h1>${esc(r.title)}</h1>
<table>${summary}</table>
<div class="grid" id="charts"></div>
${samples ? `<h2>Sample completions (final evaluation)</h2><table><tr><th>prompt</th><th>completion</th><th>correct</th></tr>${samples}</table>` : ''}
<script>
const CHARTS = ${JSON.stringify(charts)};
const COLORS = ['#1f77b4','#d62728','#2ca02c','#ff7f0e','#9467bd','#8c564b'];
for (const c of CHARTS) {
  const div = document.createElement('div'); div.className = 'chart';
  document.getElementById('charts').appendChild(div);
  new uPlot({ title: c.title, width: 520, height: 260, scales: { x: { time: false } },
    series: [{ label: 'step' }, ...c.labels.map((l, i) => ({ label: l, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true, points: { show: c.data[0].length < 40 } }))],
    axes: [{ label: 'step' }, {}] }, c.data, div);
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
