// How often each judge is wrong: simulated hour-long watches (60 one-minute samples) of a subject against a
// concurrent baseline, healthy and faulty, judged by today's fixed rule (`judge` re-tested every interval, the
// watch's thresholds) and by the sequential judge (`assess`). Seeded, so every run prints the same figures.
//
//   npm run trials:judge -- [--streams 10000] [--short-streams 2000] [--seed 12] [--workers N]   (default: one thread per core)
//
// Then short windows (1, 3 and 5 samples) of the same fleets, healthy, +1 point and +2 points, judged with the
// power rule and without it: how often a fault of at least minEffect passes (a missed fire) either way.
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { judge, delta, type Counts } from '../../workflows/analysis';
import { assess, type AnalysisSpec, type Sample, type SideReading } from '../../workflows/analysis/index';

const SAMPLES = 60;
/** Where the trials judge each stream so far: early enough that a caught fault stops its simulation. */
const CHECKPOINTS = [4, 16, SAMPLES];
const FIXED_WATCH = { maxErrorRate: 0.01, maxRatioToBaseline: 5, minRequests: 50 };

/** The sequential judge as the trials run it: the defaults, with latency judged since the simulation has it. */
export const TRIAL_SPEC: Partial<AnalysisSpec> = { latency: { maxP99Ratio: 1.25 } };

// ---- seeded randomness (xoshiro128**, seeded through splitmix32) and the few distributions the fleet needs ----

export class Draw {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: number) {
    let x = seed >>> 0;
    const splitmix32 = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    [this.s0, this.s1, this.s2, this.s3] = [splitmix32(), splitmix32(), splitmix32(), splitmix32()];
  }
  /** Uniform on (0, 1). */
  uniform(): number {
    const m = Math.imul(this.s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return (result + 0.5) / 4294967296;
  }
  between(a: number, b: number) {
    return a + (b - a) * this.uniform();
  }
  int(a: number, b: number) {
    return Math.floor(this.between(a, b + 1));
  }
  chance(p: number) {
    return this.uniform() < p;
  }
  normal(): number {
    // Marsaglia's polar method.
    for (;;) {
      const u = 2 * this.uniform() - 1;
      const v = 2 * this.uniform() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) return u * Math.sqrt((-2 * Math.log(s)) / s);
    }
  }
  /** Mean 1, coefficient of variation 1/sqrt(shape): Marsaglia and Tsang's method. */
  gammaMeanOne(shape: number): number {
    if (shape === 1) return -Math.log(this.uniform());
    if (shape < 1) return (this.gammaMeanOne(shape + 1) * (shape + 1) * this.uniform() ** (1 / shape)) / shape;
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      const v = (1 + c * x) ** 3;
      if (v <= 0) continue;
      const u = this.uniform();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return (d * v) / shape;
    }
  }
  /** Poisson: inversion for small means, Hörmann's PTRS (transformed rejection) for large ones. */
  poisson(mean: number): number {
    if (mean <= 0) return 0;
    if (mean < 30) {
      // Inversion: walk the cumulative distribution up to one uniform draw.
      const u = this.uniform();
      let p = Math.exp(-mean);
      let cdf = p;
      let k = 0;
      while (u > cdf && p > 0) {
        k++;
        p *= mean / k;
        cdf += p;
      }
      return k;
    }
    const sq = Math.sqrt(mean);
    const logMean = Math.log(mean);
    const b = 0.931 + 2.53 * sq;
    const a = -0.059 + 0.02483 * b;
    const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
    const vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
      const u = this.uniform() - 0.5;
      const v = this.uniform();
      const us = 0.5 - Math.abs(u);
      const k = Math.floor(((2 * a) / us + b) * u + mean + 0.43);
      if (us >= 0.07 && v <= vr) return k;
      if (k < 0 || (us < 0.013 && v > us)) continue;
      if (Math.log(v) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <= -mean + k * logMean - logFactorial(k))
        return k;
    }
  }
}

const LOG_FACTORIALS = [0];
for (let k = 1; k <= 4096; k++) LOG_FACTORIALS.push(LOG_FACTORIALS[k - 1] + Math.log(k));

function logFactorial(k: number): number {
  if (k < LOG_FACTORIALS.length) return LOG_FACTORIALS[k];
  // Stirling's series, exact to double precision this far out.
  const x = k + 1;
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * x) - 1 / (360 * x ** 3);
}

// ---- the fleet ----

/** What goes wrong on the subject, as a function of the minute (1..60). */
interface Fault {
  /** Added error rate on the subject, in absolute points (0.02 = +2 points). */
  points?: (minute: number) => number;
  /** Added error rate on one wiki of the subject group, which serves a share of its traffic drawn per stream. */
  oneWikiPoints?: number;
  /** The subject serves nothing and its counters restart every minute. */
  crashLoop?: boolean;
  /** The subject's p99 is this many times higher. */
  latencyFactor?: number;
}

export interface Scenario {
  name: string;
  kind: string;
  fault?: Fault;
  /** The fault begins after this sample: detection times count from it, and alarms before it are false. */
  onset?: number;
}

export const SCENARIOS: Scenario[] = [
  { name: 'healthy', kind: 'healthy' },
  ...[0.005, 0.01, 0.02, 0.05].map((p) => ({
    name: `+${p * 100} points error rate`,
    kind: 'error rate',
    fault: { points: () => p },
  })),
  { name: 'crash loop (no traffic)', kind: 'crash loop', fault: { crashLoop: true } },
  {
    name: 'grows to +2 points over 30 min',
    kind: 'slow growth',
    fault: { points: (m: number) => 0.02 * Math.min(1, m / 30) },
  },
  {
    name: '+2 points from minute 40 (delay)',
    kind: 'late onset',
    fault: { points: (m: number) => (m > 40 ? 0.02 : 0) },
    onset: 40,
  },
  { name: 'latency p99 x1.5', kind: 'latency', fault: { latencyFactor: 1.5 } },
  { name: 'one wiki +5 points', kind: 'one wiki', fault: { oneWikiPoints: 0.05 } },
  { name: 'one wiki +20 points', kind: 'one wiki', fault: { oneWikiPoints: 0.2 } },
];

/**
 * The noise a healthy watch sees, chosen to look like an app-server fleet before any judge was tuned: Poisson
 * traffic per host, hosts of uneven size, traffic drifting over the hour; an error rate around 0.3% that differs a
 * little per host, a tenth of hosts much noisier minute to minute, rare one-host hiccups, fleet-wide bursts that
 * hit subject and baseline alike, host restarts (counter resets) and failed reads.
 */
export const NOISE = {
  subjectHosts: [2, 10],
  baselineHosts: [10, 40],
  requestsPerHostMinute: 300,
  hostSizeSpread: 0.4,
  trafficDriftPerHour: 0.2,
  trafficJitter: 0.05,
  errorRate: [0.002, 0.004],
  hostErrorSpread: 0.1,
  noisyHostShare: 0.1,
  hostHiccupPerMinute: 0.002,
  hostHiccupFactor: [5, 20],
  burstPerMinute: 0.02,
  burstFactor: [3, 10],
  burstMinutes: [1, 3],
  restartPerHostMinute: 0.001,
  readFailure: 0.01,
  p99Ms: [300, 600],
  p99Jitter: 0.1,
  wikiShare: [0.02, 0.2],
} as const;

interface Stream {
  samples: Sample[];
  /** Per sample: group sums as today's watch reads them, or null for a failed read. */
  sums: ({ subject: Counts; baseline: Counts } | null)[];
}

/** The whole hour. */
export function simulate(draw: Draw, fault: Fault = {}): Stream {
  const watch = startWatch(draw, fault);
  watch.advanceTo(SAMPLES);
  return watch.stream;
}

/** A watch simulated minute by minute, so a trial stops simulating once both judges have decided. */
export function startWatch(draw: Draw, fault: Fault = {}): { stream: Stream; advanceTo: (minute: number) => void } {
  const n = {
    subject: draw.int(NOISE.subjectHosts[0], NOISE.subjectHosts[1]),
    baseline: draw.int(NOISE.baselineHosts[0], NOISE.baselineHosts[1]),
  };
  const hosts = Array.from({ length: n.subject + n.baseline }, (_, i) => ({
    name: `mw${1000 + i}`,
    subject: i < n.subject,
    size: NOISE.requestsPerHostMinute * Math.exp(NOISE.hostSizeSpread * draw.normal()),
    errorFactor: Math.exp(NOISE.hostErrorSpread * draw.normal()),
    noisy: draw.chance(NOISE.noisyHostShare),
    requests: 0,
    errors: 0,
  }));
  const subjectHosts = hosts.filter((h) => h.subject);
  const baselineHosts = hosts.filter((h) => !h.subject);
  const baseRate = draw.between(NOISE.errorRate[0], NOISE.errorRate[1]);
  const drift = draw.between(-NOISE.trafficDriftPerHour, NOISE.trafficDriftPerHour);
  const p99 = draw.between(NOISE.p99Ms[0], NOISE.p99Ms[1]);
  const wikiShare = Math.exp(draw.between(Math.log(NOISE.wikiShare[0]), Math.log(NOISE.wikiShare[1])));
  let burst = { factor: 1, minutesLeft: 0 };

  const stream: Stream = { samples: [], sums: [] };
  const record = (minute: number, latency?: { subject?: number; baseline: number }) => {
    if (minute > 0 && draw.chance(NOISE.readFailure)) {
      stream.samples.push({ at: minute * 60_000, error: 'Prometheus answered HTTP 503' });
      stream.sums.push(null);
      return;
    }
    const side = (mine: typeof hosts, p99Ms?: number): SideReading => {
      const series: Record<string, Counts> = {};
      let requests = 0;
      let errors = 0;
      for (const h of mine) {
        series[h.name] = { requests: h.requests, errors: h.errors };
        requests += h.requests;
        errors += h.errors;
      }
      return {
        requests,
        errors,
        series,
        hosts: mine.length,
        latency: p99Ms !== undefined ? { p99: p99Ms } : undefined,
      };
    };
    const subject = side(subjectHosts, latency?.subject);
    const baseline = side(baselineHosts, latency?.baseline);
    stream.samples.push({ at: minute * 60_000, metrics: { group1: { subject, baseline } } });
    stream.sums.push({
      subject: { requests: subject.requests, errors: subject.errors },
      baseline: { requests: baseline.requests, errors: baseline.errors },
    });
  };

  // Counters carry the hours before the watch, so a reset is a real drop.
  for (const h of hosts) {
    h.requests = Math.round(h.size * 600);
    h.errors = Math.round(h.requests * baseRate);
  }
  record(0);
  const step = (minute: number) => {
    const traffic = (1 + (drift * minute) / SAMPLES) * draw.gammaMeanOne(1 / NOISE.trafficJitter ** 2);
    if (burst.minutesLeft > 0) burst.minutesLeft--;
    else
      burst = draw.chance(NOISE.burstPerMinute)
        ? {
            factor: draw.between(NOISE.burstFactor[0], NOISE.burstFactor[1]),
            minutesLeft: draw.int(NOISE.burstMinutes[0], NOISE.burstMinutes[1]) - 1,
          }
        : { factor: 1, minutesLeft: 0 };
    const served = { subject: 0, baseline: 0 };
    for (const h of hosts) {
      if (h.subject && fault.crashLoop) {
        h.requests = 0;
        h.errors = 0;
        continue;
      }
      // Restarts and hiccups are rare enough to draw from one number.
      const rare = draw.uniform();
      const restarted = rare < NOISE.restartPerHostMinute;
      const hiccup = !restarted && rare < NOISE.restartPerHostMinute + NOISE.hostHiccupPerMinute;
      if (restarted) {
        h.requests = 0;
        h.errors = 0;
      }
      const requests = draw.poisson(h.size * traffic * (restarted ? draw.uniform() : 1));
      let rate = baseRate * h.errorFactor * burst.factor;
      if (h.noisy) rate *= draw.gammaMeanOne(1);
      if (hiccup) rate *= draw.between(NOISE.hostHiccupFactor[0], NOISE.hostHiccupFactor[1]);
      if (h.subject) rate += fault.points?.(minute) ?? 0;
      let errors = draw.poisson(requests * Math.min(1, rate));
      if (h.subject && fault.oneWikiPoints) errors += draw.poisson(requests * wikiShare * fault.oneWikiPoints);
      h.requests += requests;
      h.errors += Math.min(requests, errors);
      served[h.subject ? 'subject' : 'baseline'] += requests;
    }
    // A p99 read from a minute of requests is noisy, the more so the fewer requests: about 2.2/sqrt(n) in log.
    const common = p99 * Math.exp(NOISE.p99Jitter * draw.normal()) * (burst.factor > 1 ? 1.2 : 1);
    const p99Of = (requests: number, factor = 1) =>
      requests > 0 ? common * factor * Math.exp((2.2 / Math.sqrt(requests)) * draw.normal()) : undefined;
    record(minute, { subject: p99Of(served.subject, fault.latencyFactor), baseline: p99Of(served.baseline)! });
  };
  return {
    stream,
    advanceTo: (minute: number) => {
      while (stream.samples.length <= minute) step(stream.samples.length);
    },
  };
}

// ---- the two judges ----

/** Today's watch: `judge` on each interval's deltas of the group sums; a failed read spans the next interval. */
export function fixedJudge(stream: Stream): number | undefined {
  let previous = stream.sums[0];
  for (let i = 1; i < stream.sums.length; i++) {
    const now = stream.sums[i];
    if (!now || !previous) {
      previous ??= now;
      continue;
    }
    const measured = judge(FIXED_WATCH, delta(now.subject, previous.subject), delta(now.baseline, previous.baseline));
    previous = now;
    if (measured.verdict === 'fail') return i;
  }
  return undefined;
}

/** The sequential judge; assess stops at the first sample a test crosses, so one call tells when it would have failed. */
export function sequentialJudge(
  stream: Stream,
  spec: Partial<AnalysisSpec> = TRIAL_SPEC,
): { failedAt?: number; phase: string } {
  const status = assess(stream.samples, spec, { windowSamples: SAMPLES });
  return { phase: status.phase, failedAt: status.phase === 'fail' ? status.judgedThrough : undefined };
}

// ---- the trials ----

const quantile = (sorted: number[], q: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : NaN;

interface Tally {
  failed: number[];
  /** Alarms before a late fault began: false, not detections. */
  early: number[];
  inconclusive: number;
}

/** Both judges on the same `streams` streams of one scenario; each scenario has its own seed, so workers agree. */
export function runScenario(index: number, streams: number, seed: number): { fixed: Tally; seq: Tally } {
  const scenario = SCENARIOS[index];
  const draw = new Draw(seed * 1000 + index);
  const fixed: Tally = { failed: [], early: [], inconclusive: 0 };
  const seq: Tally = { failed: [], early: [], inconclusive: 0 };
  for (let i = 0; i < streams; i++) {
    const watch = startWatch(draw, scenario.fault);
    let fixedAt: number | undefined;
    let sequential: ReturnType<typeof sequentialJudge> = { phase: 'running' };
    // Neither judge looks ahead, so judging a prefix decides what the whole hour would, up to the prefix's end.
    for (const minute of CHECKPOINTS) {
      watch.advanceTo(minute);
      fixedAt ??= fixedJudge(watch.stream);
      if (sequential.phase === 'running') sequential = sequentialJudge(watch.stream);
      if (fixedAt !== undefined && sequential.phase !== 'running') break;
    }
    const onset = scenario.onset ?? 0;
    if (fixedAt !== undefined) (fixedAt > onset ? fixed.failed : fixed.early).push(fixedAt - onset);
    if (sequential.failedAt !== undefined)
      (sequential.failedAt > onset ? seq.failed : seq.early).push(sequential.failedAt - onset);
    if (sequential.phase === 'inconclusive') seq.inconclusive++;
  }
  return { fixed, seq };
}

/** Short windows: a few one-minute samples of the same streams, too few to vouch for +minEffect unless busy. */
export const SHORT_WINDOWS = [1, 3, 5];
export const SHORT_SCENARIOS: Scenario[] = [
  { name: 'healthy', kind: 'healthy' },
  { name: '+1 point (minEffect)', kind: 'error rate', fault: { points: () => 0.01 } },
  { name: '+2 points', kind: 'error rate', fault: { points: () => 0.02 } },
];

interface ShortTally {
  pass: number;
  fail: number;
  inconclusive: number;
}

/**
 * One short-window scenario judged with the power rule and without it (power 0) on the same streams: a faulty
 * stream that passes is a missed fire; a healthy one that fails, a false rollback.
 */
export function runShortWindow(
  windowSamples: number,
  scenarioIndex: number,
  streams: number,
  seed: number,
): { withRule: ShortTally; withoutRule: ShortTally } {
  const draw = new Draw(seed * 7919 + windowSamples * 101 + scenarioIndex);
  const tally = (): ShortTally => ({ pass: 0, fail: 0, inconclusive: 0 });
  const withRule = tally();
  const withoutRule = tally();
  for (let i = 0; i < streams; i++) {
    const watch = startWatch(draw, SHORT_SCENARIOS[scenarioIndex].fault);
    watch.advanceTo(windowSamples);
    const judgeWith = (power: number) => {
      const phase = assess(watch.stream.samples, { ...TRIAL_SPEC, power }, { windowSamples }).phase;
      return phase === 'running' ? 'inconclusive' : phase;
    };
    withRule[judgeWith(0.9)]++;
    withoutRule[judgeWith(0)]++;
  }
  return { withRule, withoutRule };
}

function printShortWindows(streams: number, seed: number, pct: (x: number) => string): void {
  console.log('');
  console.log(
    `short windows (${streams.toLocaleString('en-US')} streams each): the same fleets judged over 1 to 5 one-minute samples, with the power rule (0.9) and without it`,
  );
  console.log(
    `${'window / scenario'.padEnd(34)}| ${'rule: pass'.padStart(10)} ${'fail'.padStart(8)} ${'inconcl.'.padStart(8)} | ${'no rule: pass'.padStart(13)} ${'fail'.padStart(8)} ${'inconcl.'.padStart(8)}`,
  );
  console.log('-'.repeat(97));
  const totals = { missedWith: 0, missedWithout: 0, faulty: 0, falseWith: 0, falseWithout: 0, healthy: 0 };
  for (const windowSamples of SHORT_WINDOWS) {
    SHORT_SCENARIOS.forEach((scenario, index) => {
      const { withRule, withoutRule } = runShortWindow(windowSamples, index, streams, seed);
      const cells = (t: ShortTally) =>
        `${pct(t.pass / streams)} ${pct(t.fail / streams)} ${pct(t.inconclusive / streams)}`;
      console.log(
        `${`${windowSamples} min: ${scenario.name}`.padEnd(34)}| ${cells(withRule).padStart(26)} | ${cells(withoutRule).padStart(29)}`,
      );
      if (scenario.fault) {
        totals.faulty += streams;
        totals.missedWith += withRule.pass;
        totals.missedWithout += withoutRule.pass;
      } else {
        totals.healthy += streams;
        totals.falseWith += withRule.fail;
        totals.falseWithout += withoutRule.fail;
      }
    });
  }
  console.log(
    `missed fires (a fault of at least minEffect passed): ${pct(totals.missedWith / totals.faulty).trim()} with the rule, ${pct(totals.missedWithout / totals.faulty).trim()} without`,
  );
  console.log(
    `false rollbacks (a healthy window failed): ${pct(totals.falseWith / totals.healthy).trim()} with the rule, ${pct(totals.falseWithout / totals.healthy).trim()} without`,
  );
}

/** Scenarios handed out one at a time to worker threads, which load this file through tsx. */
function inWorkers(workers: number, streams: number, seed: number): Promise<ReturnType<typeof runScenario>[]> {
  const results: ReturnType<typeof runScenario>[] = [];
  let next = 0;
  return new Promise((resolve, reject) => {
    let running = workers;
    for (let w = 0; w < workers; w++) {
      const worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(__filename)});`, {
        eval: true,
        workerData: { judgeTrials: { streams, seed } },
      });
      const hand = () => (next < SCENARIOS.length ? worker.postMessage(next++) : worker.terminate());
      worker.on('message', ({ index, result }: { index: number; result: ReturnType<typeof runScenario> }) => {
        results[index] = result;
        hand();
      });
      worker.on('error', reject);
      worker.on('exit', () => --running === 0 && resolve(results));
      hand();
    }
  });
}

async function main() {
  const arg = (name: string, fallback: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const streams = arg('streams', 10_000);
  const seed = arg('seed', 12);
  const workers = Math.max(1, Math.min(arg('workers', availableParallelism()), SCENARIOS.length));
  const started = performance.now();
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`.padStart(8);
  const num = (x: number) => (Number.isNaN(x) ? '-' : String(x)).padStart(6);
  const results =
    workers > 1 ? await inWorkers(workers, streams, seed) : SCENARIOS.map((_, i) => runScenario(i, streams, seed));
  console.log(
    `judge trials: ${streams.toLocaleString('en-US')} streams per scenario, ${SAMPLES} one-minute samples, seed ${seed}`,
  );
  console.log(
    `fixed: judge() every interval, ceiling ${FIXED_WATCH.maxErrorRate * 100}% and ${FIXED_WATCH.maxRatioToBaseline}x baseline, min ${FIXED_WATCH.minRequests} requests`,
  );
  console.log(`sequential: assess() with ${JSON.stringify(TRIAL_SPEC)} over the defaults`);
  console.log('');
  console.log(
    `${'scenario'.padEnd(34)}| ${'fixed: fail'.padStart(11)} ${'median'.padStart(6)} ${'p95'.padStart(6)} | ${'seq: fail'.padStart(9)} ${'median'.padStart(6)} ${'p95'.padStart(6)} ${'inconcl.'.padStart(8)}`,
  );
  console.log('-'.repeat(97));
  const row = (t: Tally) => {
    const sorted = [...t.failed].sort((a, b) => a - b);
    return `${pct(t.failed.length / streams)} ${num(quantile(sorted, 0.5))} ${num(quantile(sorted, 0.95))}`;
  };
  SCENARIOS.forEach((scenario, i) => {
    const { fixed, seq } = results[i];
    const label = scenario.fault ? scenario.name : 'healthy (false rollbacks)';
    console.log(
      `${label.padEnd(34)}| ${row(fixed).padStart(25)} | ${row(seq).padStart(23)} ${pct(seq.inconclusive / streams)}`,
    );
    if (scenario.onset)
      console.log(
        `${`  false rollbacks before minute ${scenario.onset}`.padEnd(34)}| ${pct(fixed.early.length / streams).padStart(11)} ${''.padStart(13)} | ${pct(seq.early.length / streams).padStart(9)}`,
      );
  });
  console.log('');
  console.log(
    'fail: share of streams rolled back (healthy: false rollbacks; faults: detections). median/p95: samples to detect, among detected;',
  );
  console.log('for a late fault, samples after it began, and rollbacks before it began are counted apart as false.');
  printShortWindows(Math.min(streams, arg('short-streams', 2000)), seed, pct);
  console.log(`${((performance.now() - started) / 1000).toFixed(1)} s on ${workers} thread${workers > 1 ? 's' : ''}`);
}

if (!isMainThread && workerData?.judgeTrials) {
  const { streams, seed } = workerData.judgeTrials as { streams: number; seed: number };
  parentPort!.on('message', (index: number) =>
    parentPort!.postMessage({ index, result: runScenario(index, streams, seed) }),
  );
} else if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
