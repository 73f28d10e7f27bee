// Sequential tests that may be looked at after every sample, for as long as the run lasts, without inflating
// false alarms: mixture likelihood ratios (the mixture SPRT of Robbins, as used for always-valid inference by
// Johari, Koomen, Pekelis and Walsh, "Always Valid Inference", Operations Research 2022; for counts in
// deployments by Lindon, Sanden and Shirikian, "Rapid Regression Detection in Software Deployments through
// Sequential Testing", KDD 2022). Under the null hypothesis each mixture is a nonnegative supermartingale that
// starts at 1, so by Ville's inequality it ever reaches 1/alpha with probability at most alpha.
//
// The mixing distribution is a normal prior on the log of the effect, discretized on a grid and truncated to
// "worse than baseline": the tests are one-sided, a subject better than its baseline counts as healthy. A grid rather
// than the conjugate closed form, because the conjugate Beta-binomial needs a fixed traffic split and ours moves
// every minute; each grid point's likelihood ratio stays exact, so no normal approximation is needed for small counts.
//
// Errors come in clumps (one host's bad minute, a burst that hits some hosts harder), which a binomial null
// would read as evidence. So the null is composite: any beta-binomial with concentration at least
// CLUMPING_CONCENTRATION, the binomial included, and each interval's likelihood is divided by the null's best
// fit over that family. For every member of the null this ratio still has expectation at most 1 (the
// universal-inference argument of Wasserman, Ramdas and Balakrishnan, PNAS 2020), so the bound holds whatever
// the clumping, up to that limit.
//
// A regression may start mid-watch, after an hour's healthy intervals have driven the mixture far below 1. So each
// test also keeps, per grid point, the best run of intervals ending now (CUSUM: Page 1954), which forgets a
// healthy past. Over a window of T intervals a union bound over the T possible starts keeps it within alpha
// against the bound T/alpha (the e-detector view of Shin, Ramdas and Rinaldo, 2023).

/**
 * A prior over effect ratios θ > 1 and how clumped the regression's errors are: log θ on a grid, each point twice
 * (binomial, and clumped like the null may be), with log weights summing (in probability) to 1.
 */
export interface Mixture {
  readonly logRatios: readonly number[];
  readonly concentrations: readonly number[];
  readonly logWeights: readonly number[];
}

/** Grid step on log θ: ratios 35% apart; half the step detected no more in the trials and cost time. */
const LOG_STEP = 0.3;
/** Prior spread on log θ around the minimum effect: effects from a third to three times it keep most weight. */
export const PRIOR_SD = 1;
/**
 * The most clumping a healthy subject may show: its share of an interval's errors (or its error rate) may
 * vary between intervals like a Beta distribution of this concentration, about ±30% of a share of one half.
 */
export const CLUMPING_CONCENTRATION = 10;
/** Concentrations the null may take, from the binomial (none) down to the limit, a factor 2 apart. */
const NULL_CONCENTRATIONS = [Infinity, ...[64, 32, 16, 8, 4, 2, 1].map((m) => m * CLUMPING_CONCENTRATION)];

/**
 * A normal prior on log θ centred on log(centre), truncated to θ > 1 and below `maxRatio`, on a grid.
 * Weights are normalized so the mixture starts at 1.
 */
export function ratioMixture(centre: number, maxRatio = Infinity, sd = PRIOR_SD): Mixture {
  const mean = Math.log(Math.max(centre, Math.exp(LOG_STEP)));
  const top = Math.min(mean + 3 * sd, Math.log(maxRatio));
  const logRatios: number[] = [];
  const concentrations: number[] = [];
  const raw: number[] = [];
  for (let x = LOG_STEP; x < top; x += LOG_STEP) {
    // A regression on a few hosts is as clumped as their noise: a binomial alternative alone would lose all its
    // evidence in one burst that shifts the ratio, and a clumped one alone would learn slowly from clean data.
    for (const concentration of [Infinity, CLUMPING_CONCENTRATION]) {
      logRatios.push(x);
      concentrations.push(concentration);
      raw.push(-((x - mean) ** 2) / (2 * sd * sd));
    }
  }
  const norm = logSumExp(raw);
  return { logRatios, concentrations, logWeights: raw.map((w) => w - norm) };
}

/**
 * The share of intervals a healthy subject's p99 may exceed its latency limit (a multiple of the baseline's p99,
 * or a fixed ms ceiling) under the null. A quarter, not a half: with a half, an interval over the limit is worth
 * at most a factor 2, and a canary run of 10 intervals all over could never cross the bound.
 */
export const LATENCY_NULL_SHARE = 0.25;

/** Probabilities above the null share for the sign test, equally weighted; logRatios hold their log odds. */
export function signMixture(): Mixture {
  const logRatios = [0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95].map((q) => Math.log(q / (1 - q)));
  return {
    logRatios,
    concentrations: logRatios.map(() => Infinity),
    logWeights: logRatios.map(() => -Math.log(logRatios.length)),
  };
}

export function logSumExp(xs: readonly number[]): number {
  let max = -Infinity;
  for (const x of xs) if (x > max) max = x;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (const x of xs) sum += Math.exp(x - max);
  return max + Math.log(sum);
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** log Γ(x) for x > 0: Stirling's series from 10 on (error below 1e-12), Lanczos (g = 7) below. */
export function logGamma(x: number): number {
  if (x >= 10) {
    const inv2 = 1 / (x * x);
    return (
      (x - 0.5) * Math.log(x) -
      x +
      0.9189385332046728 +
      (1 / x) * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))
    );
  }
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) a += LANCZOS[i] / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** log(Γ(x + n) / Γ(x)) for a count n: a short sum of logs for the small counts most intervals have. */
function logRising(x: number, n: number): number {
  if (n > 16) return logGamma(x + n) - logGamma(x);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.log(x + i);
  return sum;
}

/** log P(hits of trials | share p, concentration κ), without the binomial coefficient, which every ratio cancels. */
function shareLogLikelihood(hits: number, trials: number, p: number, concentration: number): number {
  const misses = trials - hits;
  if (concentration === Infinity)
    return (hits > 0 ? hits * Math.log(p) : 0) + (misses > 0 ? misses * Math.log1p(-p) : 0);
  const a = p * concentration;
  return logRising(a, hits) + logRising(concentration - a, misses) - logRising(concentration, trials);
}

/** The null's best fit to one interval: the largest likelihood of `hits` over every concentration it allows. */
function nullLogLikelihood(hits: number, trials: number, p: number): number {
  let best = -Infinity;
  for (const c of NULL_CONCENTRATIONS) best = Math.max(best, shareLogLikelihood(hits, trials, p, c));
  return best;
}

/** Per grid point: the log likelihood ratio since the start, and over the best run of intervals ending now. */
export interface SequentialTest {
  readonly mixture: Mixture;
  readonly logLR: number[];
  readonly recentLogLR: number[];
  /** The sample at which each grid point's best recent run began. */
  readonly recentFrom: number[];
}

export const startTest = (mixture: Mixture): SequentialTest => ({
  mixture,
  logLR: mixture.logRatios.map(() => 0),
  recentLogLR: mixture.logRatios.map(() => 0),
  recentFrom: mixture.logRatios.map(() => 0),
});

/** log of the mixture likelihood ratio since the start: the statistic compared with log(1/alpha). */
export function mixtureLogLR(test: SequentialTest): number {
  const terms = new Array<number>(test.logLR.length);
  for (let k = 0; k < terms.length; k++) terms[k] = test.logLR[k] + test.mixture.logWeights[k];
  return logSumExp(terms);
}

/** The best weighted grid point over its best recent run, and the sample that run began at. */
export function recentLogLR(test: SequentialTest): { statistic: number; from: number } {
  let best = { statistic: -Infinity, from: 0 };
  for (let k = 0; k < test.recentLogLR.length; k++) {
    const statistic = test.recentLogLR[k] + test.mixture.logWeights[k];
    if (statistic > best.statistic) best = { statistic, from: test.recentFrom[k] };
  }
  return best;
}

/** Adds the log likelihood ratio of the interval ending at sample `at`, at grid point k, to both statistics. */
function add(test: SequentialTest, k: number, logLR: number, at: number): void {
  test.logLR[k] += logLR;
  if (test.recentLogLR[k] <= 0) {
    test.recentLogLR[k] = 0;
    test.recentFrom[k] = at;
  }
  test.recentLogLR[k] += logLR;
}

/**
 * One interval of a share test: `hits` of `trials` where the null expects share `p0` and grid point k expects
 * `shares[k]`. Kept free of closures: the trials call it millions of times.
 */
function observeShare(
  test: SequentialTest,
  hits: number,
  trials: number,
  p0: number,
  shares: readonly number[],
  at: number,
): void {
  if (trials <= 0) return;
  const denominator = nullLogLikelihood(hits, trials, p0);
  const { concentrations } = test.mixture;
  for (let k = 0; k < shares.length; k++)
    add(test, k, shareLogLikelihood(hits, trials, shares[k], concentrations[k]) - denominator, at);
}

/**
 * Each grid point's log likelihood ratio for one interval of `hits` of `trials` (null share `p0`, grid point k's
 * share `shares[k]`), without adding it to a test: the power calculation weighs what an interval would add.
 */
export function shareLogLRs(
  mixture: Mixture,
  hits: number,
  trials: number,
  p0: number,
  shares: readonly number[],
): number[] {
  if (trials <= 0) return shares.map(() => 0);
  const denominator = nullLogLikelihood(hits, trials, p0);
  return shares.map((share, k) => shareLogLikelihood(hits, trials, share, mixture.concentrations[k]) - denominator);
}

/**
 * Subject against a concurrent baseline. Errors arrive at a rate per request that may move from minute to minute
 * (a burst that hits both sides alike) but is θ times higher on the subject. Given how many errors both sides had
 * together in an interval, the subject's share is θ·n_s/(θ·n_s + n_b), which does not depend on the shared
 * rate: the burst cancels. Null: θ ≤ 1.
 */
export function observeTwoSample(
  test: SequentialTest,
  subject: { requests: number; errors: number },
  baseline: { requests: number; errors: number },
  at: number,
): void {
  if (subject.requests <= 0 || baseline.requests <= 0) return;
  const shares = test.mixture.logRatios.map(
    (x) => (Math.exp(x) * subject.requests) / (Math.exp(x) * subject.requests + baseline.requests),
  );
  observeShare(
    test,
    subject.errors,
    subject.errors + baseline.errors,
    subject.requests / (subject.requests + baseline.requests),
    shares,
    at,
  );
}

/** Subject errors out of its requests against a fixed rate `rate`. Null: the subject's rate ≤ rate. */
export function observeOneSample(
  test: SequentialTest,
  subject: { requests: number; errors: number },
  rate: number,
  at: number,
): void {
  observeShare(
    test,
    subject.errors,
    subject.requests,
    rate,
    test.mixture.logRatios.map((x) => Math.exp(x) * rate),
    at,
  );
}

/** One yes/no per interval (the subject's p99 above its limit). Null: yes at most half the time. */
export function observeSign(test: SequentialTest, above: boolean, at: number): void {
  test.mixture.logRatios.forEach((x, k) => {
    const q = 1 / (1 + Math.exp(-x));
    add(test, k, Math.log(above ? q / LATENCY_NULL_SHARE : (1 - q) / (1 - LATENCY_NULL_SHARE)), at);
  });
}

/**
 * An upper confidence bound on an error rate from a finished window (errors of requests), wrong with
 * probability at most `beta`: the Chernoff bound for a Poisson count, solved by bisection.
 */
export function upperRate(errors: number, requests: number, beta: number): number {
  if (requests <= 0) return 1;
  const target = Math.log(1 / beta);
  // P(X <= errors) <= exp(-(mean - errors - errors·ln(mean/errors))) for mean >= errors.
  const exponent = (mean: number) => mean - errors - (errors > 0 ? errors * Math.log(mean / errors) : 0);
  let low = errors;
  let high = errors + target + 2 * Math.sqrt(errors * target) + 1;
  while (exponent(high) < target) high *= 2;
  for (let i = 0; i < 60; i++) {
    const mid = (low + high) / 2;
    if (exponent(mid) < target) low = mid;
    else high = mid;
  }
  return Math.min(1, high / requests);
}
