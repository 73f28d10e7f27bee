// The typed model of one analysis run: what a measurement reads, what a run is asked to decide, what it decided
// and why. The shape follows Argo Rollouts' AnalysisRun (failure, inconclusive and consecutive-error limits,
// a phase per run and counts per metric); the judging itself is sequential (see sequential.ts).
// Pure types and defaults: workflow code imports them.
import type { Thresholds } from '../analysis';

/** Cumulative counters as read: they only grow, except when the process that keeps them restarts. */
export interface Counters {
  requests: number;
  errors: number;
}

export interface Latency {
  p50?: number;
  p95?: number;
  p99?: number;
}

/** One side of a comparison (the subject, or its baseline) at one moment. */
export interface SideReading extends Counters {
  /**
   * The same counters per series (usually per host). With them a restarted host resets only its own counters;
   * without them a drop of the sum is taken for a restart of the whole side.
   */
  series?: Record<string, Counters>;
  /** Cumulative error counts per signature (the error's message). */
  signatures?: Record<string, number>;
  /** Hosts serving this side: give it when the sides differ in size (canaries against the rest of the fleet). */
  hosts?: number;
  /** Latency quantiles over the last interval, in ms: gauges, not counters. */
  latency?: Latency;
  /**
   * Cumulative request-duration histogram: requests at most `le` seconds, by `le` ("+Inf" last), as Prometheus
   * keeps it. Without `latency`, the interval's p99 is read from the increase of these buckets.
   */
  buckets?: Record<string, number>;
}

/** One metric (a group, a set of canaries, a wiki) read at one moment. */
export interface MetricReading {
  subject: SideReading;
  /** Concurrent baseline; leave it out when the run compares against `AnalysisContext.reference` instead. */
  baseline?: SideReading;
  /** Error signatures seen elsewhere, on older releases: never new with this one. */
  known?: string[];
}

/** A read that failed: it is not a measurement and is never judged as one. */
export interface MeasurementError {
  error: string;
}

/**
 * One measurement: every metric read at `at` (ms on the caller's clock; workflow time in a workflow).
 * Sample 0 is the starting reading the first interval is measured from.
 */
export type Sample =
  { at: number; metrics: Record<string, MetricReading | MeasurementError> } | { at: number; error: string };

/** The smallest increase worth catching: in percentage points of error rate (0.01 = +1 point) or as a ratio. */
export type MinEffect = { points: number } | { ratio: number };

export interface LatencyLimits {
  /** The subject's p99 may be at most this many times the baseline's. */
  maxP99Ratio?: number;
  /** The subject's p99 may be at most this many ms. */
  maxP99Ms?: number;
}

export interface TrafficFloor {
  /** The subject should serve at least this share of its baseline's traffic per host (or per ms of the reference). */
  minShareOfBaseline: number;
  /** Intervals in a row below it that fail the run: one is a restart, more is a host that does not serve. */
  intervals: number;
}

export interface NewSignatureRule {
  /** A signature the baseline never showed fails once the subject has shown it this many times. */
  minCount: number;
}

export interface AnalysisSpec {
  /** Failed measurements tolerated: intervals over the fixed judge's thresholds. The sequential tests judge the whole run instead. */
  failureLimit: number;
  /** Inconclusive measurements tolerated (only the fixed judge has them: too few requests in one interval). */
  inconclusiveLimit: number;
  /** Unreadable measurements tolerated in a row; one more and the run is inconclusive. */
  consecutiveErrorLimit: number;
  /** 'sequential': anytime-valid tests over the whole run. 'fixed': today's per-interval thresholds, for comparison. */
  judge: 'sequential' | 'fixed';
  /**
   * Bound on the chance that a healthy subject fails any sequential test during the whole run, however often it is
   * looked at. 0.005 makes the bound itself the target of at most 0.5% false rollbacks per watch.
   */
  alpha: number;
  minEffect: MinEffect;
  /** Guardrail: a subject whose error rate is confidently above this fails whatever its baseline does. */
  maxErrorRate?: number;
  /** Off unless the measurements carry latency: every sequential test configured takes a share of alpha. */
  latency?: LatencyLimits;
  /**
   * Fewer subject (or concurrent baseline) requests than this over the whole window: the run cannot pass, it is
   * inconclusive. A thin reference window only makes the comparison less sensitive.
   */
  minRequests: number;
  /**
   * The chance a regression of `minEffect` must have had of being caught before a window may pass; short of it the
   * run is inconclusive and says what more it needs. 0 turns the rule off; runs recorded before it replay with it
   * off whatever their settings.
   */
  power: number;
  trafficFloor?: TrafficFloor;
  newSignatures?: NewSignatureRule;
  /** The fixed judge's thresholds, applied to every interval like `judge` in workflows/analysis.ts. */
  fixed: Thresholds;
}

/** Argo Rollouts' defaults for the limits; the watch's thresholds for the fixed judge. */
export const DEFAULT_SPEC: AnalysisSpec = {
  failureLimit: 0,
  inconclusiveLimit: 0,
  consecutiveErrorLimit: 4,
  judge: 'sequential',
  alpha: 0.005,
  minEffect: { points: 0.01 },
  maxErrorRate: 0.05,
  minRequests: 50,
  power: 0.9,
  trafficFloor: { minShareOfBaseline: 0.5, intervals: 3 },
  newSignatures: { minCount: 5 },
  fixed: { maxErrorRate: 0.01, maxRatioToBaseline: 5, minRequests: 50 },
};

/** Runs recorded before the power rule passed on any window that did not cross: they replay as they ran. */
export const POWER_RULE_PATCH = 'analysis-power-rule';
/** Runs recorded after the rule but before it was on by default judged an unset power as 0: they replay that way. */
export const POWER_DEFAULT_PATCH = 'analysis-power-default';

/** The spec a run judges with, given which of the two patches its history took. */
export function specAsRecorded(spec: Partial<AnalysisSpec>, rule: boolean, byDefault: boolean): Partial<AnalysisSpec> {
  if (!rule) return { ...spec, power: 0 };
  return byDefault ? spec : { ...spec, power: spec.power ?? 0 };
}

export const withDefaults = (spec: Partial<AnalysisSpec> = {}): AnalysisSpec => ({
  ...DEFAULT_SPEC,
  ...spec,
  fixed: { ...DEFAULT_SPEC.fixed, ...spec.fixed },
});

/** What the subject was before, when there is no concurrent baseline (a group's window before its move). */
export interface Reference extends Counters {
  durationMs: number;
  signatures?: Record<string, number>;
  latency?: Latency;
}

export interface AnalysisContext {
  /** How many intervals after sample 0 make the whole window; the run passes only once they are all in. */
  windowSamples: number;
  /** Per metric: the baseline to compare against when readings carry none. */
  reference?: Record<string, Reference>;
  /** Signatures a person marked as known. */
  acknowledged?: readonly string[];
  /** How the baseline is named after its numbers: 'on the baseline' (the default), 'before the move'. */
  baselineName?: string;
}

export type Phase = 'running' | 'pass' | 'fail' | 'inconclusive';

export type TestKind = 'mixture-SPRT' | 'ceiling' | 'traffic-floor' | 'new-signature' | 'latency' | 'fixed';

export interface Rate {
  requests: number;
  errors: number;
  rate: number;
}

/** Where one test of one metric stands, in numbers a person can check. */
export interface Evidence {
  metric: string;
  test: TestKind;
  /** Over the run so far (for per-interval tests: the interval that decided). */
  subject: Rate;
  baseline: Rate;
  /** Log likelihood ratio for the sequential tests; the measured value for the threshold tests. */
  statistic: number;
  bound: number;
  /** The share of `alpha` this test spends, for the sequential tests. */
  alpha?: number;
  /** Sample index at which the test failed the run. */
  crossedAt?: number;
  /** When the test failed on a recent run of intervals only (a regression that began mid-run): the sample it began at. */
  from?: number;
  /** What the numbers alone do not say: the signature, the latencies, the traffic. */
  detail?: string;
}

/** Per metric counts, as Argo Rollouts keeps them. */
export interface MetricResult {
  metric: string;
  measured: number;
  failed: number;
  inconclusive: number;
  errors: number;
  consecutiveErrors: number;
}

/** What a comparison that did not cross could have caught: the minimum effect, and the chance it had. */
export interface PowerStatement {
  metric: string;
  /** The minimum effect as people read it: "+1.0 point", "2x". */
  effect: string;
  probability: number;
}

export interface AnalysisStatus {
  phase: Phase;
  /** At the window's close: per metric, the chance the minimum effect would have been caught. */
  power?: PowerStatement[];
  /** The evidence that decided a 'fail', first; then every other test's standing. */
  evidence: Evidence[];
  metrics: MetricResult[];
  /** The longest run of unreadable measurements still going on, over all metrics. */
  consecutiveErrors: number;
  /** Index of the last sample judged, and how many make the window. */
  judgedThrough: number;
  windowSamples: number;
  /** Why the run is inconclusive, or the last read error while it is running. */
  message?: string;
  baselineName: string;
}
