// Power: how likely the comparison was to catch the smallest regression worth catching, given the traffic it saw.
// A window that closes without crossing its bound passes only when that chance is high enough: no crossing on a
// few hundred requests says little, and "pass" must mean enough was seen (issue 17).
//
// The question is asked of the test as it ran: the same mixture, bound and intervals. Under the alternative (the
// subject's rate raised by minEffect) each interval adds a random log likelihood ratio at every grid point; its mean
// and variance are summed exactly over the interval's binomial counts, and the window's sum taken as normal. The
// mixture's statistic is at least any one grid point's weighted sum, and crossing at the end is one way of being
// caught (earlier looks and the CUSUM only add), so the best grid point's chance is a lower bound: the power said
// is never more than the test had, up to the normal approximation. Pure and deterministic.
import { logGamma, shareLogLRs, type Mixture } from './sequential';

/** Requests in one measured interval: the subject's, and the concurrent baseline's when there is one. */
export interface IntervalTraffic {
  subject: number;
  baseline?: number;
}

export interface PowerQuestion {
  mixture: Mixture;
  /** The log-LR the test must reach. */
  bound: number;
  intervals: readonly IntervalTraffic[];
  /** The rate the subject is held against: the baseline's rate, or the reference's upper bound. */
  nullRate: number;
  /** The baseline's own rate, which the regression is added to. */
  baselineRate: number;
  /** The regressed subject's rate: the baseline's plus the minimum effect. */
  effectRate: number;
  /** True: subject against a concurrent baseline (two-sample); false: against a fixed rate (one-sample). */
  concurrent: boolean;
}

/** "a regression of +1.0 point would have been caught with 92% probability": the same words everywhere. */
export const caughtWith = (effect: string, probability: number) =>
  `a regression of ${effect} would have been caught with ${Math.floor(probability * 100)}% probability`;

/** The standard normal's distribution function (Abramowitz and Stegun 7.1.26 for erf, error below 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** The binomial(n, p) counts worth summing over (within about eight sd of the mean), with their probabilities. */
function binomialSupport(n: number, p: number): { count: number; probability: number }[] {
  if (n <= 0 || p <= 0) return [{ count: 0, probability: 1 }];
  if (p >= 1) return [{ count: n, probability: 1 }];
  const mean = n * p;
  const reach = 8 * Math.sqrt(mean * (1 - p)) + 3;
  const from = Math.max(0, Math.floor(mean - reach));
  const to = Math.min(n, Math.ceil(mean + reach));
  const logChoose = logGamma(n + 1);
  const support: { count: number; probability: number }[] = [];
  let total = 0;
  for (let k = from; k <= to; k++) {
    const probability = Math.exp(
      logChoose - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p),
    );
    support.push({ count: k, probability });
    total += probability;
  }
  for (const point of support) point.probability /= total;
  return support;
}

/** A few baseline error counts standing for its binomial spread: the midpoints of its quintiles, equally weighted. */
function baselineErrorPoints(n: number, p: number): number[] {
  const mean = n * p;
  const sd = Math.sqrt(mean * (1 - p));
  return [-1.28, -0.52, 0, 0.52, 1.28].map((z) => Math.max(0, Math.min(n, Math.round(mean + z * sd))));
}

/** Per grid point, the mean and variance of what one interval of this traffic adds to its log-LR under the effect. */
function intervalMoments(q: PowerQuestion, subject: number, baseline: number): { mean: number[]; variance: number[] } {
  const k = q.mixture.logRatios.length;
  const first = new Array<number>(k).fill(0);
  const second = new Array<number>(k).fill(0);
  const weigh = (logLRs: number[], probability: number) => {
    for (let j = 0; j < k; j++) {
      first[j] += probability * logLRs[j];
      second[j] += probability * logLRs[j] * logLRs[j];
    }
  };
  const subjectErrors = binomialSupport(subject, q.effectRate);
  if (q.concurrent) {
    const shares = q.mixture.logRatios.map((x) => (Math.exp(x) * subject) / (Math.exp(x) * subject + baseline));
    const nullShare = subject / (subject + baseline);
    const points = baselineErrorPoints(baseline, q.baselineRate);
    for (const { count, probability } of subjectErrors)
      for (const baselineErrors of points)
        weigh(shareLogLRs(q.mixture, count, count + baselineErrors, nullShare, shares), probability / points.length);
  } else {
    const shares = q.mixture.logRatios.map((x) => Math.exp(x) * q.nullRate);
    for (const { count, probability } of subjectErrors)
      weigh(shareLogLRs(q.mixture, count, subject, q.nullRate, shares), probability);
  }
  return { mean: first, variance: first.map((m, j) => Math.max(0, second[j] - m * m)) };
}

/** Intervals alike in their rounded traffic, counted: each kind's moments are worked out once. */
function kindsOf(q: PowerQuestion): { subject: number; baseline: number; times: number }[] {
  const kinds = new Map<string, { subject: number; baseline: number; times: number }>();
  for (const interval of q.intervals) {
    const subject = Math.round(interval.subject);
    const baseline = q.concurrent ? Math.round(interval.baseline ?? 0) : 0;
    if (subject <= 0 || (q.concurrent && baseline <= 0)) continue;
    const key = `${subject}/${baseline}`;
    const kind = kinds.get(key);
    if (kind) kind.times++;
    else kinds.set(key, { subject, baseline, times: 1 });
  }
  return [...kinds.values()];
}

/** Per grid point, the mean and variance of the window's log-LR under the effect: the sum over its intervals. */
interface WindowMoments {
  mean: number[];
  variance: number[];
}

function windowMoments(q: PowerQuestion, kinds: { subject: number; baseline: number; times: number }[]): WindowMoments {
  const points = q.mixture.logRatios.length;
  const sum: WindowMoments = { mean: new Array<number>(points).fill(0), variance: new Array<number>(points).fill(0) };
  for (const kind of kinds) {
    const moments = intervalMoments(q, kind.subject, kind.baseline);
    for (let j = 0; j < points; j++) {
      sum.mean[j] += kind.times * moments.mean[j];
      sum.variance[j] += kind.times * moments.variance[j];
    }
  }
  return sum;
}

/** The best grid point's chance of ending past the bound, the window's moments added to `times` of `extra`. */
function chanceOf(q: PowerQuestion, window: WindowMoments, extra?: WindowMoments, times = 0): number {
  let best = 0;
  for (let j = 0; j < q.mixture.logRatios.length; j++) {
    const mean = window.mean[j] + times * (extra?.mean[j] ?? 0);
    const variance = window.variance[j] + times * (extra?.variance[j] ?? 0);
    const needed = q.bound - q.mixture.logWeights[j];
    best = Math.max(best, variance > 0 ? normalCdf((mean - needed) / Math.sqrt(variance)) : Number(mean >= needed));
  }
  return best;
}

/** The chance the comparison crosses its bound by the window's end if the subject regressed by the minimum effect. */
export function detectionPower(q: PowerQuestion): number {
  if (q.effectRate <= q.baselineRate) return 1;
  const kinds = kindsOf(q);
  return kinds.length ? chanceOf(q, windowMoments(q, kinds)) : 0;
}

/**
 * How many more intervals like the average one so far would lift the power to `target`, or undefined when even
 * `limit` times the window would not (a baseline too noisy for the effect, or a subject that hardly serves).
 */
export function intervalsNeeded(q: PowerQuestion, target: number, limit = 1000): number | undefined {
  const count = q.intervals.length;
  if (!count || q.effectRate <= q.baselineRate) return count ? 0 : undefined;
  const window = windowMoments(q, kindsOf(q));
  if (chanceOf(q, window) >= target) return 0;
  const average: IntervalTraffic = {
    subject: q.intervals.reduce((s, i) => s + i.subject, 0) / count,
    baseline: q.concurrent ? q.intervals.reduce((s, i) => s + (i.baseline ?? 0), 0) / count : undefined,
  };
  const averageKind = kindsOf({ ...q, intervals: [average] });
  if (!averageKind.length) return undefined;
  const extra = windowMoments(q, averageKind);
  const powerWith = (times: number) => chanceOf(q, window, extra, times);
  let high = 1;
  while (powerWith(high) < target) {
    if (high >= limit * count) return undefined;
    high *= 2;
  }
  let low = high / 2 < 1 ? 0 : high / 2;
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (powerWith(mid) >= target) high = mid;
    else low = mid;
  }
  return high;
}
