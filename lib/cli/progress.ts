/**
 * A one-line progress bar on stderr: phase, step/total, bar, reward, KL, ETA. On a terminal it
 * redraws in place; otherwise (CI, a pipe) it prints a plain line every `every` steps.
 */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s - 60 * m);
  return m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export class ProgressBar {
  private t0 = Date.now();
  private startStep: number;
  private tty: boolean;
  constructor(private label: string, private total: number, start = 0, private enabled = true, private every = 5, private stream: NodeJS.WriteStream = process.stderr) {
    this.startStep = start;
    this.tty = !!stream.isTTY;
  }

  /** The line for step `step` (done) with the given fields (reward, kl, ...). */
  line(step: number, fields: Record<string, number | undefined>): string {
    const frac = this.total ? step / this.total : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const elapsed = (Date.now() - this.t0) / 1000;
    const done = step - this.startStep;
    const eta = done > 0 ? (elapsed / done) * (this.total - step) : NaN;
    const f = Object.entries(fields)
      .filter(([, v]) => v !== undefined && Number.isFinite(v))
      .map(([k, v]) => `${k} ${Math.abs(v!) >= 100 || v === 0 ? v!.toFixed(0) : Math.abs(v!) < 0.01 ? v!.toExponential(1) : v!.toFixed(3)}`)
      .join('  ');
    return `${this.label} ${String(step).padStart(String(this.total).length)}/${this.total} ${bar} ${f}  ETA ${formatDuration(eta)}`;
  }

  update(step: number, fields: Record<string, number | undefined>): void {
    if (!this.enabled) return;
    const l = this.line(step, fields);
    if (this.tty) this.stream.write(`\r\x1b[2K${l}`);
    else if (step % this.every === 0 || step === this.total) this.stream.write(l + '\n');
  }

  /** Prints a message above the bar. */
  log(msg: string): void {
    if (this.enabled && this.tty) this.stream.write('\r\x1b[2K');
    this.stream.write(msg + '\n');
  }

  done(): void {
    if (this.enabled && this.tty) this.stream.write('\n');
  }
}
