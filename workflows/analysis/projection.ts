// Before a train moves a station, how long its window before the move must run for the watch after it to be able
// to pass: the watch holds the group against that window, so a few seconds of it cannot vouch for any release.
// Projected, not measured: the watch is taken to serve at the window's pace and rate. Pure and deterministic.
import { assess } from './assess';
import type { AnalysisSpec, Reference, Sample } from './model';

export interface ProjectedWatch {
  windowSamples: number;
  everyMs: number;
}

const PROJECTED = 'projected';

/** The power a watch like this would have against the reference, if it served at the reference's pace and rate. */
export function projectedPower(reference: Reference, spec: Partial<AnalysisSpec>, watch: ProjectedWatch): number {
  if (!(reference.requests > 0) || !(reference.durationMs > 0)) return 0;
  const perInterval = (reference.requests * watch.everyMs) / reference.durationMs;
  const rate = reference.errors / reference.requests;
  const samples: Sample[] = Array.from({ length: watch.windowSamples + 1 }, (_, i) => ({
    at: i * watch.everyMs,
    metrics: { [PROJECTED]: { subject: { requests: i * perInterval, errors: i * perInterval * rate, hosts: 1 } } },
  }));
  const status = assess(
    samples,
    { ...spec, minRequests: 0, power: spec.power || 0.5 },
    { windowSamples: watch.windowSamples, reference: { [PROJECTED]: reference } },
  );
  return status.power?.[0]?.probability ?? 0;
}

/** The reference run on for `moreMs` at its own pace and rate. */
function extended(reference: Reference, moreMs: number): Reference {
  const scale = (reference.durationMs + moreMs) / reference.durationMs;
  return {
    requests: reference.requests * scale,
    errors: reference.errors * scale,
    durationMs: reference.durationMs + moreMs,
  };
}

/**
 * How much longer the window before the move must run for the watch to reach `target`, in steps of `stepMs`: 0 when
 * it already does, undefined when `withinMs` more would not get there (too little traffic to ever vouch for it).
 */
export function referenceTimeNeeded(
  reference: Reference,
  spec: Partial<AnalysisSpec>,
  watch: ProjectedWatch,
  target: number,
  withinMs: number,
  stepMs: number,
): number | undefined {
  if (projectedPower(reference, spec, watch) >= target) return 0;
  if (!(reference.requests > 0) || !(reference.durationMs > 0)) return undefined;
  const steps = Math.floor(withinMs / stepMs);
  const enough = (n: number) => projectedPower(extended(reference, n * stepMs), spec, watch) >= target;
  if (steps < 1 || !enough(steps)) return undefined;
  let [low, high] = [0, steps];
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (enough(mid)) high = mid;
    else low = mid;
  }
  return high * stepMs;
}
