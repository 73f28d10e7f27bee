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

export const delta = (later: Counts, earlier: Counts): Counts => ({
  requests: later.requests - earlier.requests,
  errors: later.errors - earlier.errors,
});

/**
 * Fails only when the error rate is above both the absolute ceiling and the baseline times the allowed ratio, so
 * a problem everywhere is not blamed on the change. Too few requests is inconclusive, never a guess.
 */
export function judge(
  spec: Thresholds,
  canary: Counts,
  baseline: Counts,
  names = { subject: 'canary', baseline: 'baseline' },
): Measurement {
  const rate = (c: Counts) => (c.requests > 0 ? c.errors / c.requests : 0);
  const canaryRate = rate(canary);
  const baselineRate = rate(baseline);
  const shown = `${names.subject} ${(canaryRate * 100).toFixed(2)}% of ${Math.round(canary.requests)} requests, ${names.baseline} ${(baselineRate * 100).toFixed(2)}% of ${Math.round(baseline.requests)}`;
  if (canary.requests < spec.minRequests)
    return {
      canary,
      baseline,
      verdict: 'inconclusive',
      why: `too little ${names.subject} traffic (${Math.round(canary.requests)} < ${spec.minRequests} requests); ${shown}`,
    };
  const fails = canaryRate > spec.maxErrorRate && canaryRate > spec.maxRatioToBaseline * baselineRate;
  return { canary, baseline, verdict: fails ? 'fail' : 'pass', why: shown };
}

/** Error counts by signature (the error's message), cumulative like the counters they come from. */
export type Signatures = Record<string, number>;

export interface GroupCounts extends Counts {
  signatures: Signatures;
}

export function signatureDelta(later: Signatures = {}, earlier: Signatures = {}): Signatures {
  const rose: Signatures = {};
  for (const [signature, count] of Object.entries(later)) {
    const d = count - (earlier[signature] ?? 0);
    if (d > 0) rose[signature] = d;
  }
  return rose;
}

/**
 * Signatures that showed up at least `minCount` times during the watch but never in the window before the move,
 * and that no operator has acknowledged as known. Errors the group already had are judged by rate alone.
 */
export function newSignatures(
  during: Signatures,
  before: Signatures,
  acknowledged: readonly string[],
  minCount: number,
): { signature: string; count: number }[] {
  return Object.entries(during)
    .filter(([signature, count]) => count >= minCount && !(before[signature] > 0) && !acknowledged.includes(signature))
    .map(([signature, count]) => ({ signature, count }))
    .sort((a, b) => b.count - a.count);
}
