/** Learning-rate schedule: linear warm-up then cosine decay to learningRate·minLrRatio. */
export interface LrSchedule {
  learningRate: number;
  /** Total optimiser updates of the run. */
  totalUpdates: number;
  warmupRatio?: number;
  minLrRatio?: number;
}

/** Learning rate of update `u` (0-based). */
export function learningRateAt(u: number, s: LrSchedule): number {
  const total = Math.max(1, s.totalUpdates);
  const warm = Math.ceil((s.warmupRatio ?? 0) * total);
  const minR = s.minLrRatio ?? 0;
  if (u < warm) return (s.learningRate * (u + 1)) / warm;
  const progress = Math.min(1, (u - warm) / Math.max(1, total - warm));
  return s.learningRate * (minR + (1 - minR) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
