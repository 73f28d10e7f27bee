// Judging error rates: canaries against the baseline, or a group after a station move against before it.
// Pure, so the canary analysis (an activity) and the train's error watch (a workflow) share one rule.

export interface Counts {
  requests: number;
  errors: number;
}

export interface Thresholds {
  maxErrorRate: number;
  maxRatioToBaseline: number;
  minRequests: number;
}

export interface Measurement {
  canary: Counts;
  baseline: Counts;
  verdict: 'pass' | 'fail' | 'inconclusive';
  why: string;
}

export const delta = (later: Counts, earlier: Counts): Counts => ({ requests: later.requests - earlier.requests, errors: later.errors - earlier.errors });

/**
 * Fails only when the error rate is above both the absolute ceiling and the baseline times the allowed ratio, so
 * a problem everywhere is not blamed on the change. Too few requests is inconclusive, never a guess.
 */
export function judge(spec: Thresholds, canary: Counts, baseline: Counts, names = { subject: 'canary', baseline: 'baseline' }): Measurement {
  const rate = (c: Counts) => (c.requests > 0 ? c.errors / c.requests : 0);
  const canaryRate = rate(canary);
  const baselineRate = rate(baseline);
  const shown = `${names.subject} ${(canaryRate * 100).toFixed(2)}% of ${Math.round(canary.requests)} requests, ${names.baseline} ${(baselineRate * 100).toFixed(2)}% of ${Math.round(baseline.requests)}`;
  if (canary.requests < spec.minRequests) return { canary, baseline, verdict: 'inconclusive', why: `too little ${names.subject} traffic (${Math.round(canary.requests)} < ${spec.minRequests} requests); ${shown}` };
  const fails = canaryRate > spec.maxErrorRate && canaryRate > spec.maxRatioToBaseline * baselineRate;
  return { canary, baseline, verdict: fails ? 'fail' : 'pass', why: shown };
}
