// assess: where an analysis run stands after the samples so far. Pure and deterministic, so a workflow can call
// it after every measurement and a replay decides the same.
import { judge } from '../analysis';
import { carrySeries, intervalQuantile, sideIncrease, signatureIncrease } from './counters';
import type {
  AnalysisContext,
  AnalysisSpec,
  AnalysisStatus,
  Counters,
  Evidence,
  MetricReading,
  MetricResult,
  PowerStatement,
  Rate,
  Reference,
  Sample,
  TestKind,
} from './model';
import { withDefaults } from './model';
import {
  mixtureLogLR,
  observeOneSample,
  observeSign,
  observeTwoSample,
  ratioMixture,
  recentLogLR,
  signMixture,
  startTest,
  upperRate,
  type SequentialTest,
} from './sequential';
import { caughtWith, detectionPower, intervalsNeeded, type IntervalTraffic, type PowerQuestion } from './power';
import { thousands } from './describe';

/**
 * With a minimum effect in points, the prior's centre needs the baseline's rate; it is fixed from the pooled
 * rate of both sides once they have shown this many errors. The pooled counts are what the two-sample test
 * conditions on, so choosing the prior from them leaves the test valid.
 */
const ERRORS_TO_FIX_PRIOR = 10;
/**
 * The traffic floor judges an interval only when the subject should have served at least this many requests:
 * below it, Poisson noise alone (or a reference of a few requests in a moment) could look like a dead host.
 */
const FLOOR_MIN_EXPECTED = 20;

interface MetricState {
  result: MetricResult;
  last?: { reading: MetricReading; at: number };
  subject: Counters;
  baseline: Counters;
  subjectSignatures: Record<string, number>;
  knownSignatures: Set<string>;
  /** Intervals judged before the comparison's prior could be fixed, replayed into it once it is. */
  waiting: { subject: Counters; baseline: Counters; at: number }[];
  comparison?: SequentialTest;
  /** The reference path compares with an upper bound on the reference's rate, not with the rate itself. */
  referenceBound?: number;
  ceiling?: SequentialTest;
  latency?: SequentialTest;
  latencyAbove: number;
  latencyObserved: number;
  belowFloor: number;
  /** Requests per measured interval, for the power the window had, and when the first of them began. */
  traffic: IntervalTraffic[];
  firstAt?: number;
  /** The interval a per-interval test failed on, for its evidence. */
  decided?: Evidence;
}

const rateOf = (c: Counters): Rate => ({
  requests: c.requests,
  errors: c.errors,
  rate: c.requests > 0 ? c.errors / c.requests : 0,
});
const isError = (r: MetricReading | { error: string } | undefined): r is { error: string } => !!r && 'error' in r;

/** The effect ratio the prior centres on, given the rate it is measured against. */
function priorCentre(spec: AnalysisSpec, rate: number, against = rate): number {
  if ('ratio' in spec.minEffect) return (spec.minEffect.ratio * rate) / against;
  return (rate + spec.minEffect.points) / Math.max(against, Number.MIN_VALUE);
}

/** What every interval of a run is judged with: the spec, and the bounds that keep the whole run within alpha. */
interface Judging {
  spec: AnalysisSpec;
  context: AnalysisContext;
  baselineName: string;
  sequential: boolean;
  alphaEach: number;
  bound: number;
  recentBound: number;
}

/** Where the run stands as its samples are judged. */
interface Run {
  phase: AnalysisStatus['phase'];
  message?: string;
  power?: PowerStatement[];
  crossed: Evidence[];
  states: Map<string, MetricState>;
}

export function assess(
  samples: readonly Sample[],
  specIn: Partial<AnalysisSpec>,
  context: AnalysisContext,
): AnalysisStatus {
  const judging = judgingOf(samples, withDefaults(specIn), context);
  const { spec, baselineName } = judging;
  const run: Run = { phase: 'running', crossed: [], states: new Map() };
  const last = Math.min(samples.length - 1, context.windowSamples);
  let judgedThrough = -1;
  let unreadableInARow = 0;

  for (let index = 0; index <= last && run.phase === 'running'; index++) {
    const sample = samples[index];
    judgedThrough = index;
    if ('error' in sample) {
      // Counted for the run too, so reads that fail from the very start, before any metric is known, still stop it.
      if (++unreadableInARow > spec.consecutiveErrorLimit) {
        run.phase = 'inconclusive';
        run.message = `metrics could not be read ${unreadableInARow} times in a row (limit ${spec.consecutiveErrorLimit}): ${sample.error}`;
      } else run.message = sample.error;
    } else unreadableInARow = 0;
    const metricNames = new Set([...run.states.keys(), ...('metrics' in sample ? Object.keys(sample.metrics) : [])]);
    for (const metric of [...metricNames].sort()) judgeMetric(judging, run, metric, sample, index);
    if (run.crossed.length) run.phase = 'fail';
  }
  if (run.phase === 'running' && judgedThrough === context.windowSamples) closeWindow(judging, run);

  const evidence = standingEvidence(judging, run);
  const metrics = [...run.states.values()].map((s) => s.result).sort((a, b) => (a.metric < b.metric ? -1 : 1));
  return {
    phase: run.phase,
    evidence,
    metrics,
    consecutiveErrors: Math.max(unreadableInARow, ...metrics.map((m) => m.consecutiveErrors)),
    judgedThrough,
    windowSamples: context.windowSamples,
    message: run.message,
    baselineName,
    ...(run.power ? { power: run.power } : {}),
  };
}

function judgingOf(samples: readonly Sample[], spec: AnalysisSpec, context: AnalysisContext): Judging {
  const firstReadable = samples.find((s): s is Extract<Sample, { metrics: unknown }> => 'metrics' in s);
  const testsPerMetric = 1 + (spec.maxErrorRate !== undefined ? 1 : 0) + (spec.latency ? 1 : 0);
  // Bonferroni over every sequential test of every metric keeps the whole run within alpha.
  const alphaEach = spec.alpha / (testsPerMetric * Math.max(1, Object.keys(firstReadable?.metrics ?? {}).length));
  return {
    spec,
    context,
    baselineName: context.baselineName ?? 'on the baseline',
    sequential: spec.judge === 'sequential',
    alphaEach,
    // Half of each test's share for the evidence since the start, half for the best recent run (any of the window's starts).
    bound: Math.log(2 / alphaEach),
    recentBound: Math.log((2 * context.windowSamples) / alphaEach),
  };
}

/** Where a test crossed a bound, if it did: since the start first, since a recent start otherwise. */
function crossing(
  { bound, recentBound, alphaEach }: Judging,
  test: SequentialTest,
): (Pick<Evidence, 'statistic' | 'bound'> & Partial<Evidence>) | undefined {
  const sinceStart = mixtureLogLR(test);
  if (sinceStart >= bound) return { statistic: sinceStart, bound, alpha: alphaEach / 2 };
  const recent = recentLogLR(test);
  if (recent.statistic >= recentBound)
    return { statistic: recent.statistic, bound: recentBound, alpha: alphaEach / 2, from: recent.from };
  return undefined;
}

/** A metric's state, started the first time the metric is seen. */
function stateOf({ spec, context, sequential, alphaEach }: Judging, run: Run, metric: string): MetricState {
  let state = run.states.get(metric);
  if (!state) {
    const reference = context.reference?.[metric];
    state = {
      result: { metric, measured: 0, failed: 0, inconclusive: 0, errors: 0, consecutiveErrors: 0 },
      subject: { requests: 0, errors: 0 },
      baseline: reference ? { requests: reference.requests, errors: reference.errors } : { requests: 0, errors: 0 },
      subjectSignatures: {},
      knownSignatures: new Set([
        ...(context.acknowledged ?? []),
        ...Object.keys(reference?.signatures ?? {}).filter((s) => reference!.signatures![s] > 0),
      ]),
      waiting: [],
      latencyAbove: 0,
      latencyObserved: 0,
      belowFloor: 0,
      traffic: [],
    };
    if (sequential && spec.maxErrorRate !== undefined) {
      state.ceiling = startTest(ratioMixture(priorCentre(spec, spec.maxErrorRate), 1 / spec.maxErrorRate));
    }
    if (sequential && spec.latency) state.latency = startTest(signMixture());
    if (sequential && reference) {
      // Half the test's alpha bounds the chance the reference's rate is underestimated, half the test itself.
      const referenceRate = rateOf(reference).rate;
      state.referenceBound = upperRate(reference.errors, reference.requests, alphaEach / 2);
      state.comparison = startTest(
        ratioMixture(priorCentre(spec, referenceRate, state.referenceBound), 1 / state.referenceBound),
      );
    }
    run.states.set(metric, state);
  }
  return state;
}

/** One interval of one metric: what it measured since the previous good reading, judged by every test. */
interface Interval {
  metric: string;
  index: number;
  state: MetricState;
  previous: { reading: MetricReading; at: number };
  reading: MetricReading;
  at: number;
  reference?: Reference;
  subject: Counters;
  baseline?: Counters;
  subjectLatency?: number;
  baselineLatency?: number;
  latencyAbove?: boolean;
}

/** One metric's reading in one sample: an unreadable one counted, a good one judged against the previous. */
function judgeMetric(judging: Judging, run: Run, metric: string, sample: Sample, index: number): void {
  const { spec, context } = judging;
  const state = stateOf(judging, run, metric);
  const reading = 'metrics' in sample ? sample.metrics[metric] : { error: sample.error };
  if (!reading || isError(reading)) {
    // Not a measurement: the next good reading spans the gap, and too many in a row need a person.
    const why = reading ? reading.error : `no reading for ${metric}`;
    state.result.errors++;
    if (++state.result.consecutiveErrors > spec.consecutiveErrorLimit && run.phase === 'running') {
      run.phase = 'inconclusive';
      run.message = `${metric}: metrics could not be read ${state.result.consecutiveErrors} times in a row (limit ${spec.consecutiveErrorLimit}): ${why}`;
    } else if (run.phase === 'running') run.message = `${metric}: ${why}`;
    return;
  }
  state.result.consecutiveErrors = 0;
  const previous = state.last;
  state.last = {
    reading: {
      ...reading,
      subject: carrySeries(previous?.reading.subject, reading.subject),
      baseline: reading.baseline && carrySeries(previous?.reading.baseline, reading.baseline),
    },
    at: sample.at,
  };
  for (const [signature, count] of Object.entries(reading.baseline?.signatures ?? {}))
    if (count > 0) state.knownSignatures.add(signature);
  for (const signature of reading.known ?? []) state.knownSignatures.add(signature);
  if (!previous) {
    state.firstAt = sample.at;
    return;
  }
  state.result.measured++;
  const reference = context.reference?.[metric];
  const subject = sideIncrease(previous.reading.subject, reading.subject);
  const baseline =
    reading.baseline && previous.reading.baseline
      ? sideIncrease(previous.reading.baseline, reading.baseline)
      : undefined;
  state.subject = add(state.subject, subject);
  if (baseline) state.baseline = add(state.baseline, baseline);
  state.traffic.push({ subject: subject.requests, baseline: baseline?.requests });
  for (const [signature, count] of Object.entries(
    signatureIncrease(previous.reading.subject.signatures, reading.subject.signatures),
  )) {
    state.subjectSignatures[signature] = (state.subjectSignatures[signature] ?? 0) + count;
  }
  const subjectLatency = p99Between(previous.reading.subject, reading.subject);
  const baselineLatency =
    (previous.reading.baseline && reading.baseline
      ? p99Between(previous.reading.baseline, reading.baseline)
      : undefined) ?? reference?.latency?.p99;
  const latencyAbove = latencyBreached(spec, subjectLatency, baselineLatency);
  if (latencyAbove !== undefined) {
    state.latencyObserved++;
    if (latencyAbove) state.latencyAbove++;
  }
  const interval: Interval = { metric, index, state, previous, reading, at: sample.at, reference, subject, baseline };
  Object.assign(interval, { subjectLatency, baselineLatency, latencyAbove });
  if (judging.sequential) judgeSequential(judging, run, interval);
  else judgeFixed(judging, run, interval);
  judgeTrafficFloor(judging, run, interval);
  judgeNewSignatures(judging, run, interval);
}

/** A test that failed now, with the metric's totals so far. */
function failNow(
  run: Run,
  { metric, state, index }: Interval,
  test: TestKind,
  evidence: Partial<Evidence> & Pick<Evidence, 'statistic' | 'bound'>,
): void {
  run.crossed.push({
    metric,
    test,
    subject: rateOf(state.subject),
    baseline: rateOf(state.baseline),
    crossedAt: index,
    ...evidence,
  });
}

/** The sequential tests: the comparison (with the reference or the concurrent baseline), the ceiling, latency. */
function judgeSequential(judging: Judging, run: Run, interval: Interval): void {
  const { spec } = judging;
  const { state, subject, baseline, reference, index, latencyAbove } = interval;
  if (reference) observeOneSample(state.comparison!, subject, state.referenceBound!, index);
  else if (baseline) {
    state.waiting.push({ subject, baseline, at: index });
    const pooled = add(state.subject, state.baseline);
    if (!state.comparison && pooled.errors >= ERRORS_TO_FIX_PRIOR)
      state.comparison = startTest(ratioMixture(priorCentre(spec, rateOf(pooled).rate)));
    if (state.comparison)
      for (const waiting of state.waiting.splice(0))
        observeTwoSample(state.comparison, waiting.subject, waiting.baseline, waiting.at);
  }
  const compared = state.comparison && crossing(judging, state.comparison);
  if (compared) failNow(run, interval, 'mixture-SPRT', compared);
  if (state.ceiling) {
    observeOneSample(state.ceiling, subject, spec.maxErrorRate!, index);
    const above = crossing(judging, state.ceiling);
    if (above) failNow(run, interval, 'ceiling', { ...above, detail: `ceiling ${percent(spec.maxErrorRate!)}` });
  }
  if (state.latency && latencyAbove !== undefined) {
    observeSign(state.latency, latencyAbove, index);
    const slower = crossing(judging, state.latency);
    if (slower)
      failNow(run, interval, 'latency', {
        ...slower,
        detail: latencyDetail(spec, state, interval.subjectLatency, interval.baselineLatency),
      });
  }
}

/** The fixed thresholds, per interval: a failure counts, and past the failure limit it fails the run. */
function judgeFixed({ spec }: Judging, run: Run, iv: Interval): void {
  const { metric, state, subject, baseline, reference, index } = iv;
  const failedMeasurement = (evidence: Omit<Evidence, 'metric' | 'crossedAt'>) => {
    if (++state.result.failed > spec.failureLimit) run.crossed.push({ metric, ...evidence, crossedAt: index });
  };
  const measured = judge(spec.fixed, subject, baseline ?? reference ?? { requests: 0, errors: 0 });
  const baselineRate = rateOf(baseline ?? reference ?? { requests: 0, errors: 0 });
  const interval = { subject: rateOf(subject), baseline: baselineRate };
  if (measured.verdict === 'fail') {
    failedMeasurement({
      test: 'fixed',
      ...interval,
      statistic: interval.subject.rate,
      bound: Math.max(spec.fixed.maxErrorRate, spec.fixed.maxRatioToBaseline * baselineRate.rate),
    });
  } else if (measured.verdict === 'inconclusive' && ++state.result.inconclusive > spec.inconclusiveLimit) {
    run.phase = 'inconclusive';
    run.message = `${metric}: ${state.result.inconclusive} intervals had too little traffic (limit ${spec.inconclusiveLimit}): ${measured.why}`;
  }
  if (iv.latencyAbove) {
    failedMeasurement({
      test: 'latency',
      ...interval,
      statistic: iv.subjectLatency!,
      bound: latencyLimitMs(spec, iv.baselineLatency),
      detail: latencyDetail(spec, state, iv.subjectLatency, iv.baselineLatency),
    });
  }
}

/** The traffic floor: too small a share of the baseline's traffic, too many intervals in a row, fails. */
function judgeTrafficFloor({ spec, baselineName }: Judging, run: Run, iv: Interval): void {
  const { metric, state, subject, baseline, reference, reading, index } = iv;
  const share = trafficShare(subject, baseline, reading, iv.previous.at, iv.at, reference);
  if (spec.trafficFloor && share !== undefined && share.expected >= FLOOR_MIN_EXPECTED) {
    state.belowFloor = share.share < spec.trafficFloor.minShareOfBaseline ? state.belowFloor + 1 : 0;
    if (state.belowFloor >= spec.trafficFloor.intervals) {
      run.crossed.push({
        metric,
        test: 'traffic-floor',
        subject: rateOf(subject),
        baseline: rateOf(baseline ?? reference!),
        statistic: share.share,
        bound: spec.trafficFloor.minShareOfBaseline,
        crossedAt: index,
        detail: `served ${Math.round(share.share * 100)}% of the ${reference ? 'traffic per ms' : 'traffic per host'} seen ${baselineName}, ${state.belowFloor} intervals in a row`,
      });
    }
  }
}

/** An error signature seen often enough on the subject and never on the baseline, nor acknowledged, fails. */
function judgeNewSignatures({ spec }: Judging, run: Run, interval: Interval): void {
  const { state } = interval;
  if (!spec.newSignatures) return;
  const unknown = Object.entries(state.subjectSignatures)
    .filter(([signature, count]) => count >= spec.newSignatures!.minCount && !state.knownSignatures.has(signature))
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1));
  if (unknown.length)
    failNow(run, interval, 'new-signature', {
      statistic: unknown[0][1],
      bound: spec.newSignatures.minCount,
      detail: unknown[0][0],
    });
}

/** The window is judged through without a failure: it passes, unless too little was seen to vouch for it. */
function closeWindow(judging: Judging, run: Run): void {
  const { spec, context, baselineName } = judging;
  // A thin window before the move only widens the reference's bound (the comparison gets less sensitive, the
  // ceiling still holds); a thin subject, or a thin concurrent baseline, cannot vouch for the release.
  const short = [...run.states.entries()].find(
    ([metric, s]) =>
      s.subject.requests < spec.minRequests || (!context.reference?.[metric] && s.baseline.requests < spec.minRequests),
  );
  if (short) {
    run.phase = 'inconclusive';
    run.message = `${short[0]}: too little traffic to pass: ${Math.round(short[1].subject.requests)} requests vs ${Math.round(short[1].baseline.requests)} ${baselineName} (at least ${spec.minRequests} each)`;
    return;
  }
  run.phase = 'pass';
  if (!judging.sequential || !(spec.power > 0)) return;
  // No crossing is evidence only if the comparison could have crossed: below the power asked for, hold for a person.
  const questions = [...run.states.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .flatMap(([metric, state]) => {
      const question = powerQuestion(judging, metric, state);
      return question ? [{ metric, state, question, probability: detectionPower(question) }] : [];
    });
  run.power = questions.map(({ metric, probability }) => ({ metric, effect: effectName(spec), probability }));
  const weakest = [...questions].sort((a, b) => a.probability - b.probability)[0];
  if (weakest && weakest.probability < spec.power) {
    run.phase = 'inconclusive';
    run.message = `${weakest.metric}: too little evidence to pass: ${caughtWith(effectName(spec), weakest.probability)} (at least ${Math.round(spec.power * 100)}% needed); ${moreNeeded(judging, weakest.metric, weakest.state, weakest.question)}`;
  }
}

/** The comparison as it ran, asked what it could have caught: the minimum effect over the baseline's rate. */
function powerQuestion(
  { spec, context, bound }: Judging,
  metric: string,
  state: MetricState,
): PowerQuestion | undefined {
  const reference = context.reference?.[metric];
  if (reference && state.comparison && state.referenceBound !== undefined) {
    const baselineRate = rateOf(reference).rate;
    return {
      mixture: state.comparison.mixture,
      bound,
      intervals: state.traffic,
      nullRate: state.referenceBound,
      baselineRate,
      effectRate: raisedRate(spec, baselineRate),
      concurrent: false,
    };
  }
  if (reference || state.baseline.requests <= 0) return undefined;
  const baselineRate = rateOf(state.baseline).rate;
  const effectRate = raisedRate(spec, baselineRate);
  // The prior as the test would fix it under the regression: from both sides' pooled rate.
  const pooled =
    (state.subject.requests * effectRate + state.baseline.errors) / (state.subject.requests + state.baseline.requests);
  return {
    mixture: state.comparison?.mixture ?? ratioMixture(priorCentre(spec, pooled)),
    bound,
    intervals: state.traffic,
    nullRate: baselineRate,
    baselineRate,
    effectRate,
    concurrent: true,
  };
}

const raisedRate = (spec: AnalysisSpec, rate: number) =>
  'ratio' in spec.minEffect ? rate * spec.minEffect.ratio : rate + spec.minEffect.points;

function effectName(spec: AnalysisSpec): string {
  if ('ratio' in spec.minEffect) return `${spec.minEffect.ratio}x`;
  const points = spec.minEffect.points * 100;
  return `+${points.toFixed(1)} point${points === 1 ? '' : 's'}`;
}

/** How much longer the window would have to run, in requests and in time at the rate it saw. */
function moreNeeded(
  { spec, context, baselineName }: Judging,
  metric: string,
  state: MetricState,
  question: PowerQuestion,
): string {
  const more = intervalsNeeded(question, spec.power);
  const perInterval = state.subject.requests / Math.max(1, state.traffic.length);
  const reference = context.reference?.[metric];
  if (more === undefined && reference && question.effectRate <= question.nullRate)
    return `the window ${baselineName} (${thousands(reference.requests)} requests over ${duration(reference.durationMs)}) is too short to tell a rise of ${effectName(spec)} from its noise: it needs a longer window ${baselineName} or a larger minEffect`;
  if (more === undefined)
    return `more intervals at this traffic (about ${Math.round(perInterval)} requests each) would not get there: it needs more traffic per interval or a larger minEffect`;
  const span = state.firstAt !== undefined && state.last ? (state.last.at - state.firstAt) / state.traffic.length : 0;
  const time = span > 0 ? ` (about ${duration(more * span)} more)` : '';
  return `it needs about ${Math.ceil(more * perInterval)} more requests over ${more} more interval${more === 1 ? '' : 's'}${time}`;
}

/** A span as people say it: seconds, minutes, hours. */
export function duration(ms: number): string {
  if (ms < 90_000) return `${Math.max(1, Math.round(ms / 1000))} s`;
  if (ms < 90 * 60_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** What crossed, then where every sequential test stands that did not. */
function standingEvidence({ spec, context, sequential, bound, alphaEach }: Judging, run: Run): Evidence[] {
  const evidence: Evidence[] = [...run.crossed];
  for (const [metric, state] of [...run.states.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!sequential) continue;
    const standing = (test: TestKind, statistic: number, detail?: string) => {
      if (evidence.some((e) => e.metric === metric && e.test === test)) return;
      evidence.push({
        metric,
        test,
        subject: rateOf(state.subject),
        baseline: rateOf(state.baseline),
        statistic,
        bound,
        alpha: alphaEach / 2,
        detail,
      });
    };
    const pooledErrors = state.subject.errors + (context.reference?.[metric] ? 0 : state.baseline.errors);
    standing(
      'mixture-SPRT',
      state.comparison ? mixtureLogLR(state.comparison) : 0,
      state.comparison
        ? undefined
        : `waiting for ${ERRORS_TO_FIX_PRIOR} errors on both sides together (${pooledErrors} so far)`,
    );
    if (state.ceiling) standing('ceiling', mixtureLogLR(state.ceiling), `ceiling ${percent(spec.maxErrorRate!)}`);
    if (state.latency)
      standing('latency', mixtureLogLR(state.latency), state.latencyObserved ? latencyDetail(spec, state) : undefined);
  }
  return evidence;
}

const add = (a: Counters, b: Counters): Counters => ({
  requests: a.requests + b.requests,
  errors: a.errors + b.errors,
});

export const percent = (rate: number) => `${(rate * 100).toFixed(2)}%`;

function latencyLimitMs(spec: AnalysisSpec, baselineP99: number | undefined): number {
  const limits = [
    spec.latency?.maxP99Ms,
    spec.latency?.maxP99Ratio !== undefined && baselineP99 !== undefined
      ? spec.latency.maxP99Ratio * baselineP99
      : undefined,
  ];
  return Math.min(...limits.filter((l): l is number => l !== undefined));
}

/** Whether the subject's p99 broke a latency limit in this interval; undefined when it cannot be told. */
function latencyBreached(
  spec: AnalysisSpec,
  subjectP99: number | undefined,
  baselineP99: number | undefined,
): boolean | undefined {
  if (!spec.latency || subjectP99 === undefined) return undefined;
  const limit = latencyLimitMs(spec, baselineP99);
  return Number.isFinite(limit) ? subjectP99 > limit : undefined;
}

function latencyDetail(spec: AnalysisSpec, state: MetricState, subjectP99?: number, baselineP99?: number): string {
  const limits = [
    spec.latency?.maxP99Ratio !== undefined ? `${spec.latency.maxP99Ratio}x the baseline's` : '',
    spec.latency?.maxP99Ms !== undefined ? `${spec.latency.maxP99Ms} ms` : '',
  ]
    .filter(Boolean)
    .join(' or ');
  const now =
    subjectP99 !== undefined
      ? `; p99 ${Math.round(subjectP99)} ms${baselineP99 !== undefined ? ` vs ${Math.round(baselineP99)} ms` : ''} in the last interval`
      : '';
  return `p99 above ${limits} in ${state.latencyAbove} of ${state.latencyObserved} intervals${now}`;
}

/** The interval's p99 in ms: the reading's own quantile, else read from its histogram's increase. */
function p99Between(previous: MetricReading['subject'], current: MetricReading['subject']): number | undefined {
  return current.latency?.p99 ?? intervalQuantile(previous.buckets, current.buckets, 0.99);
}

/**
 * The subject's traffic in one interval as a share of what its baseline served (per host against a concurrent
 * baseline, per ms against a reference window), and how many requests that baseline led to expect. Undefined
 * when the baseline served nothing to compare with.
 */
function trafficShare(
  subject: Counters,
  baseline: Counters | undefined,
  reading: MetricReading,
  from: number,
  to: number,
  reference?: Reference,
): { share: number; expected: number } | undefined {
  let expected: number;
  if (reference) {
    if (!(reference.durationMs > 0 && to > from)) return undefined;
    expected = (reference.requests / reference.durationMs) * (to - from);
  } else {
    if (!baseline) return undefined;
    expected = (baseline.requests / (reading.baseline?.hosts ?? 1)) * (reading.subject.hosts ?? 1);
  }
  return expected > 0 ? { share: subject.requests / expected, expected } : undefined;
}
