// The analysis run's rules, each on a stream made to break exactly that rule (or to tempt it falsely).
import { describe as group, expect, it } from 'vitest';
import {
  assess,
  projectedPower,
  referenceTimeNeeded,
  specAsRecorded,
  describe,
  increase,
  sideIncrease,
  type AnalysisSpec,
  type Counters,
  type MetricReading,
  type Sample,
  type SideReading,
} from '../workflows/analysis/index';
import { Draw, simulate } from '../tools/bench/judge-trials';

const MINUTE = 60_000;

interface SideShape {
  /** Requests per host per minute. */
  perHost: number;
  hosts: number;
  /** Error rate in minute m (1-based). */
  rate: (minute: number) => number;
  /** Hosts that restart (counters back to 0) at the start of minute m. */
  restartsAt?: (minute: number) => number[];
  signatures?: (minute: number) => Record<string, number>;
  p99?: (minute: number) => number;
}

/** Cumulative per-host counters, exact to the rate given (no noise): each test then isolates one rule. */
function stream(
  minutes: number,
  shapes: { subject: SideShape; baseline: SideShape },
  readFails: (minute: number) => boolean = () => false,
): Sample[] {
  const state = {
    subject: Array.from({ length: shapes.subject.hosts }, () => ({ requests: 50_000, errors: 150 })),
    baseline: Array.from({ length: shapes.baseline.hosts }, () => ({ requests: 50_000, errors: 150 })),
  };
  const signatures = { subject: {} as Record<string, number>, baseline: {} as Record<string, number> };
  const samples: Sample[] = [];
  for (let m = 0; m <= minutes; m++) {
    const read = (which: 'subject' | 'baseline'): SideReading => {
      const shape = shapes[which];
      if (m > 0) {
        for (const h of shape.restartsAt?.(m) ?? []) state[which][h] = { requests: 0, errors: 0 };
        for (const host of state[which]) {
          host.requests += shape.perHost;
          host.errors += Math.round(shape.perHost * shape.rate(m));
        }
        for (const [s, n] of Object.entries(shape.signatures?.(m) ?? {}))
          signatures[which][s] = (signatures[which][s] ?? 0) + n;
      }
      const series: Record<string, Counters> = {};
      state[which].forEach((c, i) => (series[`${which}${i}`] = { ...c }));
      return {
        requests: state[which].reduce((s, c) => s + c.requests, 0),
        errors: state[which].reduce((s, c) => s + c.errors, 0),
        series,
        hosts: shape.hosts,
        signatures: { ...signatures[which] },
        latency: m > 0 && shape.p99 ? { p99: shape.p99(m) } : undefined,
      };
    };
    const metrics: Record<string, MetricReading> = { group1: { subject: read('subject'), baseline: read('baseline') } };
    samples.push(
      m > 0 && readFails(m) ? { at: m * MINUTE, error: 'Prometheus answered HTTP 503' } : { at: m * MINUTE, metrics },
    );
  }
  return samples;
}

const steady = (rate: number) => () => rate;
const healthy = {
  subject: { perHost: 1000, hosts: 4, rate: steady(0.003) },
  baseline: { perHost: 1000, hosts: 30, rate: steady(0.003) },
};
const window = { windowSamples: 60 };

group('counters', () => {
  it('takes a drop for a restart from 0, as Prometheus increase() does', () => {
    expect(increase(100, 130)).toBe(30);
    expect(increase(100, 30)).toBe(30);
  });
  it('resets only the series that restarted, and both its counters together', () => {
    const before: SideReading = {
      requests: 2000,
      errors: 20,
      series: { a: { requests: 1000, errors: 10 }, b: { requests: 1000, errors: 10 } },
    };
    // a restarted and has already climbed back above its old error count: taken alone, its errors would look like +2.
    const after: SideReading = {
      requests: 1650,
      errors: 23,
      series: { a: { requests: 500, errors: 12 }, b: { requests: 1150, errors: 11 } },
    };
    expect(sideIncrease(before, after)).toEqual({ requests: 650, errors: 13 });
  });
});

group('assess', () => {
  it('passes a healthy noisy stream, and only once the whole window is in', () => {
    const draw = new Draw(7);
    const spec: Partial<AnalysisSpec> = { latency: { maxP99Ratio: 1.25 } };
    for (let i = 0; i < 20; i++) {
      const { samples } = simulate(draw);
      expect(assess(samples.slice(0, 60), spec, window).phase).toBe('running');
      const status = assess(samples, spec, window);
      expect(status.phase, describe(status)).toBe('pass');
    }
  });

  it('fails +2 points over a 0.3% baseline within a few samples, and says why in one line', () => {
    const samples = stream(60, { ...healthy, subject: { ...healthy.subject, rate: steady(0.023) } });
    const status = assess(samples, {}, { ...window, baselineName: 'before the move' });
    expect(status.phase).toBe('fail');
    expect(status.evidence[0]).toMatchObject({ metric: 'group1', test: 'mixture-SPRT' });
    expect(status.evidence[0].crossedAt).toBeLessThanOrEqual(3);
    expect(describe(status)).toMatch(
      /^group1: errors 2\.30% of [\d,]+ vs 0\.30% of [\d,]+ before the move; mixture SPRT log-LR \d+\.\d > bound \d+\.\d \(alpha [\d.]+\) at sample [1-3]$/,
    );
  });

  it('catches a regression that starts late in the watch, counting from where it began', () => {
    const late = { ...healthy, subject: { ...healthy.subject, rate: (m: number) => (m > 40 ? 0.023 : 0.003) } };
    const status = assess(stream(60, late), {}, window);
    expect(status.phase).toBe('fail');
    expect(status.evidence[0]).toMatchObject({ test: 'mixture-SPRT', from: 41 });
    expect(status.evidence[0].crossedAt).toBeLessThanOrEqual(45);
    expect(describe(status)).toMatch(/at sample 4\d, counting from sample 41$/);
  });

  it("rides out one noisy interval that today's fixed judge fails on", () => {
    const spike = {
      ...healthy,
      subject: { ...healthy.subject, hosts: 1, rate: (m: number) => (m === 20 ? 0.02 : 0.003) },
    };
    expect(assess(stream(60, spike), { judge: 'fixed' }, window).phase).toBe('fail');
    expect(assess(stream(60, spike), {}, window).phase).toBe('pass');
  });

  it('judges against a reference window when there is no concurrent baseline', () => {
    const before = { requests: 1_000_000, errors: 3000, durationMs: 60 * MINUTE };
    const watch = (rate: number) =>
      stream(60, { ...healthy, subject: { perHost: 1000, hosts: 50, rate: steady(rate) } }).map((s) =>
        'metrics' in s ? { ...s, metrics: { group1: { subject: (s.metrics.group1 as MetricReading).subject } } } : s,
      );
    expect(assess(watch(0.003), {}, { ...window, reference: { group1: before } }).phase).toBe('pass');
    const bad = assess(watch(0.023), {}, { ...window, reference: { group1: before } });
    expect(bad.phase).toBe('fail');
    expect(bad.evidence[0].test).toBe('mixture-SPRT');
  });

  it('holds for a person after too many unreadable measurements in a row, and never passes or fails on them', () => {
    // Four in a row are ridden out (Argo's default limit); the fifth makes the run inconclusive.
    const four = stream(60, healthy, (m) => m >= 10 && m < 14);
    expect(assess(four, {}, window).phase).toBe('pass');
    const five = stream(60, healthy, (m) => m >= 10 && m < 15);
    const status = assess(five, {}, window);
    expect(status.phase).toBe('inconclusive');
    expect(status.consecutiveErrors).toBe(5);
    expect(describe(status)).toMatch(/could not be read 5 times in a row \(limit 4\): Prometheus answered HTTP 503/);
    // A failing release behind failed reads is not judged on them: the run holds, it does not fail.
    const hidden = stream(60, { ...healthy, subject: { ...healthy.subject, rate: steady(0.05) } }, (m) => m >= 1);
    expect(assess(hidden, {}, window).phase).toBe('inconclusive');
    // Reads failing at the end of the window do not let the run pass.
    expect(
      assess(
        stream(60, healthy, (m) => m > 55),
        {},
        window,
      ).phase,
    ).toBe('inconclusive');
  });

  it('counts a read that fails for one metric, and reads that fail before any metric is known', () => {
    const oneMetric = stream(60, healthy).map((s, m) =>
      m >= 10 && m < 15 && 'metrics' in s ? { ...s, metrics: { group1: { error: 'no series for group1' } } } : s,
    );
    const status = assess(oneMetric, {}, window);
    expect(status.phase).toBe('inconclusive');
    expect(status.metrics[0]).toMatchObject({ metric: 'group1', errors: 5, consecutiveErrors: 5 });
    const fromTheStart = stream(60, healthy, (m) => m < 5).map((s, m) =>
      m === 0 ? { at: 0, error: 'Prometheus answered HTTP 503' } : s,
    );
    expect(assess(fromTheStart, {}, window).phase).toBe('inconclusive');
  });

  it('counts a restarted host from 0, so a counter reset is neither a verdict nor lost traffic', () => {
    const restarts = { ...healthy, subject: { ...healthy.subject, restartsAt: (m: number) => (m === 30 ? [0] : []) } };
    const status = assess(stream(60, restarts), {}, window);
    expect(status.phase).toBe('pass');
    const served = 60 * 1000 * 4;
    expect(status.evidence.find((e) => e.test === 'mixture-SPRT')!.subject.requests).toBe(served);
  });

  it('fails a subject that serves nothing (a crash loop) on the traffic floor, but not one restart', () => {
    const crashLoop = { ...healthy, subject: { ...healthy.subject, perHost: 0, restartsAt: () => [0, 1, 2, 3] } };
    const status = assess(stream(60, crashLoop), {}, window);
    expect(status.phase).toBe('fail');
    expect(status.evidence[0]).toMatchObject({ test: 'traffic-floor', crossedAt: 3 });
    expect(describe(status)).toMatch(
      /^group1: 0 requests vs [\d,]+ on the baseline; traffic floor: served 0% of the traffic per host seen on the baseline, 3 intervals in a row \(floor 50%\) at sample 3$/,
    );
    const oneSlowMinute = {
      ...healthy,
      subject: { ...healthy.subject, hosts: 1, restartsAt: (m: number) => (m === 30 ? [0] : []) },
    };
    expect(
      assess(
        stream(60, oneSlowMinute).map((s, i) => (i === 30 && 'metrics' in s ? slowMinute(s) : s)),
        {},
        window,
      ).phase,
    ).toBe('pass');
  });

  it('fails a signature the baseline never showed once seen often enough, unless acknowledged', () => {
    const newError = {
      subject: {
        ...healthy.subject,
        signatures: (m: number) => ({
          'Notice: known': 1,
          ...(m >= 10 ? { 'Fatal: Call to undefined method Foo::bar()': 1 } : {}),
        }),
      },
      baseline: { ...healthy.baseline, signatures: () => ({ 'Notice: known': 3 }) },
    };
    const status = assess(stream(60, newError), {}, window);
    expect(status.phase).toBe('fail');
    expect(status.evidence[0]).toMatchObject({
      test: 'new-signature',
      detail: 'Fatal: Call to undefined method Foo::bar()',
      crossedAt: 14,
    });
    expect(
      assess(stream(60, newError), {}, { ...window, acknowledged: ['Fatal: Call to undefined method Foo::bar()'] })
        .phase,
    ).toBe('pass');
  });

  it('fails a subject whose p99 stays above its limit, and not one whose p99 only wanders', () => {
    const slow = { subject: { ...healthy.subject, p99: () => 700 }, baseline: { ...healthy.baseline, p99: () => 400 } };
    const status = assess(stream(60, slow), { latency: { maxP99Ratio: 1.25 } }, window);
    expect(status.phase).toBe('fail');
    expect(status.evidence[0].test).toBe('latency');
    // Above the limit every third minute: noise, not a regression.
    const wandering = {
      subject: { ...healthy.subject, p99: (m: number) => (m % 3 === 0 ? 700 : 380) },
      baseline: { ...healthy.baseline, p99: () => 400 },
    };
    expect(assess(stream(60, wandering), { latency: { maxP99Ratio: 1.25 } }, window).phase).toBe('pass');
  });

  it('with the power rule, a short window holds for a person and says what more it needs; a busy one passes and says what it could catch', () => {
    const fiveMinutes = { windowSamples: 5 };
    const thin = {
      subject: { ...healthy.subject, hosts: 1, perHost: 300 },
      baseline: { ...healthy.baseline, perHost: 300 },
    };
    const short = assess(stream(5, thin), { power: 0.9 }, fiveMinutes);
    expect(short.phase).toBe('inconclusive');
    expect(describe(short)).toMatch(
      /^inconclusive at sample 5 of 5: group1: too little evidence to pass: a regression of \+1\.0 point would have been caught with \d+% probability \(at least 90% needed\); it needs about [\d]+ more requests over \d+ more intervals? \(about \d+ (s|min) more\)$/,
    );
    // The same window without the rule passes: what the rule exists to stop.
    expect(assess(stream(5, thin), { power: 0 }, fiveMinutes).phase).toBe('pass');
    const busy = assess(stream(60, healthy), { power: 0.9 }, window);
    expect(busy.phase, describe(busy)).toBe('pass');
    expect(busy.power?.[0]).toMatchObject({ metric: 'group1', effect: '+1.0 point' });
    expect(busy.power![0].probability).toBeGreaterThanOrEqual(0.9);
    expect(describe(busy)).toMatch(
      /; a regression of \+1\.0 point would have been caught with (9\d|100)% probability$/,
    );
  });

  it('never states more power than the judge has: the stated chance is at most the rate it catches +minEffect at', () => {
    // Seeded: the same streams every run. Poisson traffic, subject one host against nine.
    const draw = new Draw(20261203);
    const run = (perInterval: number, intervals: number, rate: number) => {
      const subject = { requests: 100_000, errors: 300 };
      const baseline = { requests: 900_000, errors: 2700 };
      const samples: Sample[] = [];
      for (let m = 0; m <= intervals; m++) {
        if (m > 0) {
          const s = draw.poisson(perInterval);
          const b = draw.poisson(perInterval * 9);
          subject.requests += s;
          subject.errors += draw.poisson(s * rate);
          baseline.requests += b;
          baseline.errors += draw.poisson(b * 0.003);
        }
        samples.push({
          at: m * MINUTE,
          metrics: { group1: { subject: { ...subject, hosts: 1 }, baseline: { ...baseline, hosts: 9 } } },
        });
      }
      return assess(samples, { power: 0.9 }, { windowSamples: intervals });
    };
    const stated = (status: ReturnType<typeof assess>) =>
      status.power?.[0]?.probability ?? Number(status.message!.match(/caught with (\d+)% probability/)![1]) / 100;
    for (const [perInterval, intervals] of [
      [500, 5],
      [100, 20],
    ]) {
      let caught = 0;
      for (let i = 0; i < 150; i++) if (run(perInterval, intervals, 0.013).phase === 'fail') caught++;
      let claimed = 0;
      for (let i = 0; i < 30; i++) claimed += stated(run(perInterval, intervals, 0.003)) / 30;
      // 150 trials: a caught rate's standard error is at most 4 points; the statement may be low, never high.
      expect(claimed, `${perInterval} requests x ${intervals}: stated ${claimed}, caught ${caught / 150}`).toBeLessThan(
        caught / 150 + 0.08,
      );
      expect(claimed).toBeGreaterThan(0.1);
    }
  });

  it('before a move: says how much longer the window before it must run for the watch after it to vouch for +minEffect', () => {
    const spec: Partial<AnalysisSpec> = { power: 0.9 };
    // The watch: an hour in minute samples, the group serving 200 requests a minute at 0.3%.
    const watch = { windowSamples: 60, everyMs: MINUTE };
    const window = (minutes: number) => ({
      requests: 200 * minutes,
      errors: 0.6 * minutes,
      durationMs: minutes * MINUTE,
    });
    // A day before the move is plenty; a few minutes are not, and the wait named is enough and not much more.
    expect(referenceTimeNeeded(window(24 * 60), spec, watch, 0.9, 4 * 60 * MINUTE, MINUTE)).toBe(0);
    expect(projectedPower(window(3), spec, watch)).toBeLessThan(0.9);
    const needed = referenceTimeNeeded(window(3), spec, watch, 0.9, 4 * 60 * MINUTE, MINUTE)!;
    expect(needed).toBeGreaterThan(0);
    expect(projectedPower(window(3 + needed / MINUTE), spec, watch)).toBeGreaterThanOrEqual(0.9);
    expect(projectedPower(window(3 + needed / MINUTE - 1), spec, watch)).toBeLessThan(0.9);
    // The window's length is what the watch lacks: a watch held against the longer window passes with the power.
    const samples = stream(60, {
      subject: { perHost: 50, hosts: 4, rate: steady(0.003) },
      baseline: { perHost: 0, hosts: 0, rate: steady(0) },
    }).map((s) =>
      'metrics' in s ? { ...s, metrics: { group1: { subject: (s.metrics.group1 as MetricReading).subject } } } : s,
    );
    const judged = (minutes: number) =>
      assess(samples, spec, {
        windowSamples: 60,
        reference: { group1: window(minutes) },
        baselineName: 'before the move',
      });
    expect(judged(3 + needed / MINUTE).phase).toBe('pass');
    const short = judged(3);
    expect(short.phase).toBe('inconclusive');
    // A group too quiet to vouch for +1 point in four hours more: no wait is named, the watch will say so.
    const quiet = { requests: 1000, errors: 3, durationMs: 10 * MINUTE };
    expect(referenceTimeNeeded(quiet, spec, watch, 0.9, 4 * 60 * MINUTE, MINUTE)).toBeUndefined();
  });

  it('a watch held against a window before the move too short to tell says so, not that it needs more intervals', () => {
    const samples = stream(10, {
      subject: { perHost: 100, hosts: 4, rate: steady(0.003) },
      baseline: { perHost: 0, hosts: 0, rate: steady(0) },
    }).map((s) =>
      'metrics' in s ? { ...s, metrics: { group1: { subject: (s.metrics.group1 as MetricReading).subject } } } : s,
    );
    const status = assess(
      samples,
      { power: 0.9 },
      {
        windowSamples: 10,
        reference: { group1: { requests: 50, errors: 0, durationMs: 30_000 } },
        baselineName: 'before the move',
      },
    );
    expect(status.phase).toBe('inconclusive');
    expect(status.message).toMatch(
      /the window before the move \(50 requests over 30 s\) is too short to tell a rise of \+1\.0 point from its noise/,
    );
  });

  it('replays each run with the power it judged with: none before the rule, an unset one as 0 before it was the default', () => {
    expect(specAsRecorded({ power: 0.9 }, false, false).power).toBe(0);
    expect(specAsRecorded({}, true, false).power).toBe(0);
    expect(specAsRecorded({ power: 0.8 }, true, false).power).toBe(0.8);
    expect(specAsRecorded({}, true, true).power).toBeUndefined(); // the default (0.9) applies
    expect(assess(stream(5, healthy), specAsRecorded({}, true, false), { windowSamples: 5 }).phase).toBe('pass');
  });

  it('cannot pass on too little traffic', () => {
    const quiet = { ...healthy, subject: { ...healthy.subject, perHost: 0 } };
    const status = assess(stream(60, quiet), { trafficFloor: undefined }, window);
    expect(status.phase).toBe('inconclusive');
    expect(status.message).toMatch(/too little traffic to pass: 0 requests/);
  });
});

/** The reading at minute 30 with the restarted host having served a tenth of a minute. */
function slowMinute(sample: Extract<Sample, { metrics: unknown }>): Sample {
  const reading = sample.metrics.group1 as MetricReading;
  const series = { ...reading.subject.series!, subject0: { requests: 100, errors: 0 } };
  return {
    ...sample,
    metrics: { group1: { ...reading, subject: { ...reading.subject, series, requests: 100, errors: 0 } } },
  };
}
