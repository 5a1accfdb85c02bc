// The HTML report: the chart data written into the page is read back and checked against the
// metrics it was made from (series per reward function, custom ones included; axis labels;
// all-zero series listed, not drawn; constant series get a range around their value).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { renderReport, writeRunReport, ChartData } from '../lib/report';

/** The chart data embedded in a written report. */
export function chartsOf(html: string): ChartData[] {
  const m = /<script id="chart-data" type="application\/json">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, 'the report embeds its chart data');
  return JSON.parse(m![1]);
}

const grpoRows = [1, 2, 3].map((step) => ({
  phase: 'grpo', step,
  reward: 0.5 * step, 'rewards/accuracy/mean': 0.1 * step, 'rewards/format/mean': 1, 'rewards/my_len/mean': -step,
  'rewards/my_len/stuck': false,
  entropy: 2 - 0.1 * step, 'clip_ratio/low_mean': 0, 'clip_ratio/high_mean': 0, 'clip_ratio/region_mean': 0,
  'completions/mean_length': 4, 'completions/max_length': 8, step_time: 0.1 * step,
}));
const evalRows = [{ phase: 'eval', step: 0, 'pass@1': 0.25, 'pass@k': 0.5, 'maj@k': 0.3 }, { phase: 'eval', step: 3, 'pass@1': 0.5, 'pass@k': 0.75, 'maj@k': 0.6 }];

test('every reward function is a series of the reward chart, custom ones included, with its values', () => {
  const charts = chartsOf(renderReport({ title: 't', summary: {}, metrics: [...grpoRows, ...evalRows] }));
  const reward = charts.find((c) => c.title.startsWith('Reward'))!;
  assert.equal(reward.labels, ['reward (weighted sum)', 'accuracy', 'format', 'my_len']);
  assert.equal(reward.data[0], [1, 2, 3]);
  assert.equal(reward.data[1], [0.5, 1, 1.5]);
  assert.equal(reward.data[2].map((x) => +x!.toFixed(12)), [0.1, 0.2, 0.3]);
  assert.equal(reward.data[4], [-1, -2, -3]);
  const ev = charts.find((c) => c.title.startsWith('Held-out'))!;
  assert.equal(ev.data, [[0, 3], [0.25, 0.5], [0.5, 0.75], [0.3, 0.6]]);
});

test('axes are labelled: x and a y unit on every chart, and the page hands both to uPlot', () => {
  const html = renderReport({ title: 't', summary: {}, metrics: [...grpoRows, ...evalRows, { phase: 'sft', step: 1, loss: 2 }, { phase: 'sft', step: 2, loss: 1 }] });
  const charts = chartsOf(html);
  assert.ok(charts.length >= 6);
  for (const c of charts) {
    assert.is(c.xLabel, 'step', c.title);
    assert.ok(c.yLabel.length > 3, `${c.title} has a y label`);
  }
  assert.is(charts.find((c) => c.title === 'Entropy')!.yLabel, 'entropy (nats/token)');
  assert.is(charts.find((c) => c.title.startsWith('Supervised'))!.yLabel, 'NLL (nats/token)');
  assert.ok(html.includes('axes: [{ label: c.xLabel }, { label: c.yLabel'));
});

test('a chart whose series are all zero is not drawn (no 0–100 axis): listed under the title; a constant series gets a range around its value', () => {
  const html = renderReport({ title: 't', summary: {}, metrics: grpoRows });
  const charts = chartsOf(html);
  const clip = charts.find((c) => c.title === 'Clip ratios')!;
  assert.equal(clip.labels, []);
  assert.equal(clip.data, [[1, 2, 3]]);
  assert.equal(clip.allZero, ['low', 'high', 'region']);
  assert.ok(html.includes('zero at every step (not drawn)'));
  // next to a non-zero series a zero series is drawn (as zeros)
  const mixed = chartsOf(renderReport({ title: 't', summary: {}, metrics: grpoRows.map((r) => ({ ...r, 'clip_ratio/high_mean': 0.01 * r.step })) }));
  const clip2 = mixed.find((c) => c.title === 'Clip ratios')!;
  assert.equal(clip2.labels, ['low', 'high', 'region']);
  assert.equal(clip2.data[1], [0, 0, 0]);
  assert.equal(clip2.allZero, []);
  const len = charts.find((c) => c.title === 'Completion length')!;
  assert.equal(len.labels, ['mean', 'max']);
  assert.is(len.yRange, null, 'two different values: uPlot picks the range');
  const one = chartsOf(renderReport({ title: 't', summary: {}, metrics: grpoRows.map((r) => ({ ...r, 'completions/max_length': undefined })) }));
  assert.equal(one.find((c) => c.title === 'Completion length')!.yRange, [3.6, 4.4]);
  // a KL of exactly 0 at every step (β = 0 logs none; here it is logged as 0)
  const kl = chartsOf(renderReport({ title: 't', summary: {}, metrics: grpoRows.map((r) => ({ ...r, kl: 0 })) })).find((c) => c.title.startsWith('KL'))!;
  assert.equal(kl.labels, []);
  assert.equal(kl.allZero, ['kl']);
});

test('names from user code cannot break out of the page', () => {
  const html = renderReport({ title: '<b>x</b>', summary: { '<i>': '</td>' }, metrics: [{ phase: 'grpo', step: 1, reward: 1, 'rewards/</script><script>alert(1)</script>/mean': 1 }] });
  assert.not.ok(html.includes('<script>alert(1)'));
  assert.ok(html.includes('&lt;b&gt;x&lt;/b&gt;'));
  assert.ok(chartsOf(html)[0].labels.includes('</script><script>alert(1)</script>'), 'the label survives as data');
});

test('writeRunReport: rebuilds report.html from a run directory (metrics, latest eval samples, pass@1 first → last); a torn line is skipped', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-report-'));
  const lines = [...grpoRows, ...evalRows].map((r) => JSON.stringify(r));
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.join('\n') + '\n{"phase":"grpo","st');
  fs.writeFileSync(path.join(dir, 'eval-step-0.json'), JSON.stringify({ samples: [{ prompt: 'old', completion: 'x', correct: false }] }));
  fs.writeFileSync(path.join(dir, 'eval-step-3.json'), JSON.stringify({ samples: [{ prompt: '1+2=', completion: '3', correct: true }] }));
  const out = writeRunReport(dir, { status: 'failed: boom' });
  assert.is(out, path.join(dir, 'report.html'));
  const html = fs.readFileSync(out, 'utf8');
  assert.ok(html.includes('<code>1+2=</code>') && !html.includes('<code>old</code>'), 'samples of the latest evaluation');
  assert.ok(html.includes('25.0% (step 0) → 50.0% (step 3)'));
  assert.ok(html.includes('failed: boom'));
  assert.ok(html.includes('accuracy, format, my_len'));
  assert.equal(chartsOf(html).find((c) => c.title.startsWith('Reward'))!.data[0], [1, 2, 3]);
  // a demo directory: sft/ and grpo/ metrics together
  const demo = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-report-demo-'));
  fs.mkdirSync(path.join(demo, 'sft'));
  fs.mkdirSync(path.join(demo, 'grpo'));
  fs.writeFileSync(path.join(demo, 'sft', 'metrics.jsonl'), JSON.stringify({ phase: 'sft', step: 1, loss: 3 }) + '\n');
  fs.copyFileSync(path.join(dir, 'metrics.jsonl'), path.join(demo, 'grpo', 'metrics.jsonl'));
  const d = chartsOf(fs.readFileSync(writeRunReport(demo), 'utf8'));
  assert.ok(d.some((c) => c.title.startsWith('Supervised')) && d.some((c) => c.title.startsWith('Reward')));
  assert.throws(() => writeRunReport(path.join(dir, 'nope')), /does not exist/);
  assert.throws(() => writeRunReport(os.tmpdir() + '/' + path.basename(demo) + '/sft/..' + '/grpo/../sft/none'), /does not exist/);
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-report-empty-'));
  assert.throws(() => writeRunReport(empty), /has no metrics\.jsonl/);
  assert.not.ok(fs.existsSync(path.join(empty, 'report.html')));
  for (const p of [dir, demo, empty]) fs.rmSync(p, { recursive: true });
});

// Rendered in a real browser when one is installed (apt-get install chromium): uPlot draws
// every chart that has series, the legends name every series (custom reward included), and
// the all-zero chart shows its note instead of a plot.
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => fs.existsSync(p));
(chromium ? test : test.skip)('headless chromium renders the report: one uPlot per drawn chart, legends, the all-zero note', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-report-browser-'));
  const file = path.join(dir, 'report.html');
  fs.writeFileSync(file, renderReport({ title: 't', summary: {}, metrics: [...grpoRows, ...evalRows] }));
  const r = spawnSync(chromium!, ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', 'file://' + file], { encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  const dom = r.stdout;
  const drawn = chartsOf(renderReport({ title: 't', summary: {}, metrics: [...grpoRows, ...evalRows] })).filter((c) => c.labels.length);
  assert.is((dom.match(/class="uplot /g) ?? []).length, drawn.length);
  const legend = [...dom.matchAll(/class="u-label">([^<]*)</g)].map((m) => m[1]);
  for (const l of ['reward (weighted sum)', 'accuracy', 'format', 'my_len', 'pass@1', 'entropy']) assert.ok(legend.includes(l), `legend has ${l}`);
  assert.ok(dom.includes('zero at every step (not drawn): low, high, region'));
  fs.rmSync(dir, { recursive: true });
});

test.run();
