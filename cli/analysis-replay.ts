// What-if replay of analysis runs: reads a finished or running train's or rollout's history, rebuilds the samples
// each canary analysis and error watch judged (the measure activities' results, at the times they completed),
// judges them again with assess() under other settings, and says where the verdict would differ. So thresholds are
// tuned on real history, not guessed.
import type { temporal } from '@temporalio/proto';
import { defaultPayloadConverter } from '@temporalio/common';
import {
  assess,
  describe,
  withDefaults,
  type AnalysisContext,
  type AnalysisSpec,
  type AnalysisStatus,
  type MetricReading,
  type Sample,
  POWER_DEFAULT_PATCH,
  POWER_RULE_PATCH,
  specAsRecorded,
} from '../workflows/analysis/index';
import { referenceBetween } from '../workflows/analysis/counters';
import { STATIONS, type Station } from '../workflows/names';
import { watchSpec, type TrainInput } from '../workflows/train';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type Reading = { metrics: Record<string, MetricReading> };

/** One analysis run as recorded: what it judged, with what, and the samples it saw. */
export interface RecordedRun {
  subject: string;
  spec: Partial<AnalysisSpec>;
  context: AnalysisContext;
  samples: Sample[];
}

export interface ReplayedRun {
  subject: string;
  recorded: AnalysisStatus;
  whatIf: AnalysisStatus;
  /** The first sample after which the two judges stand differently, or null when they agree throughout. */
  differsAt: number | null;
}

const decode = (payloads: temporal.api.common.v1.IPayloads | null | undefined): unknown[] =>
  (payloads?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p as never));
const millis = (t: HistoryEvent['eventTime']): number =>
  Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);
const failureText = (failure: temporal.api.failure.v1.IFailure | null | undefined): string =>
  failure?.cause ? failureText(failure.cause) : (failure?.message ?? 'failed');

interface Call {
  name: string;
  input: any;
  /**
   * Workflow time when the workflow saw it end (the next workflow task's start, which is what Date.now() reads
   * there); for a landing, when it was asked for (the workflow forgets a group's window before landing it).
   */
  at: number;
  result?: any;
  error?: string;
}

/** The activities of a history, in order, with input and answer (or failure); landings as they were scheduled. */
function activityCalls(events: HistoryEvent[]): Call[] {
  const scheduled = new Map<string, { name: string; input: any }>();
  const calls: Call[] = [];
  let unseen: Call[] = [];
  for (const event of events) {
    if (event.workflowTaskStartedEventAttributes) {
      for (const call of unseen) call.at = millis(event.eventTime);
      unseen = [];
      continue;
    }
    const s = event.activityTaskScheduledEventAttributes;
    if (s) {
      const call = { name: s.activityType?.name ?? '', input: decode(s.input)[0] };
      scheduled.set(String(event.eventId), call);
      if (call.name === 'landWikiversions') calls.push({ ...call, at: millis(event.eventTime) });
      continue;
    }
    const done =
      event.activityTaskCompletedEventAttributes ??
      event.activityTaskFailedEventAttributes ??
      event.activityTaskTimedOutEventAttributes;
    const call = done && scheduled.get(String(done.scheduledEventId));
    if (!call || call.name === 'landWikiversions') continue;
    const completed = event.activityTaskCompletedEventAttributes;
    const error = completed
      ? undefined
      : event.activityTaskFailedEventAttributes
        ? failureText(event.activityTaskFailedEventAttributes.failure)
        : 'timed out';
    const ended: Call = {
      ...call,
      at: millis(event.eventTime),
      ...(completed ? { result: decode(completed.result)[0] } : { error }),
    };
    calls.push(ended);
    unseen.push(ended);
  }
  return calls;
}

/** Error signatures acknowledged through the train's `acknowledge` update, with when they were accepted. */
function acknowledgements(events: HistoryEvent[]): { signature: string; at: number }[] {
  return events.flatMap((event) => {
    const request = event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest;
    if (request?.input?.name !== 'acknowledge') return [];
    const [ack] = decode(request.input.args) as [{ signature?: string }];
    return ack?.signature ? [{ signature: ack.signature, at: millis(event.eventTime) }] : [];
  });
}

const sampleOf = (call: Call): Sample =>
  call.result ? { at: call.at, metrics: call.result.metrics } : { at: call.at, error: call.error ?? 'failed' };

/** A rollout's canary analysis: its plan, then the samples of its canaries against the baseline. */
function canaryRuns(events: HistoryEvent[]): RecordedRun[] {
  const calls = activityCalls(events);
  const planEvent = calls.find((c) => c.name === 'canaryAnalysisPlan');
  const plan = planEvent?.result as { windowSamples: number; spec: Partial<AnalysisSpec> } | null | undefined;
  const samples = calls.filter((c) => c.name === 'measureCanary').map(sampleOf);
  if (!plan || !samples.length) return [];
  return [
    {
      subject: `canaries of ${planEvent!.input.service}`,
      spec: plan.spec,
      context: { windowSamples: plan.windowSamples },
      samples,
    },
  ];
}

/**
 * A train's error watches. Its readings of every group and its landings say, as the workflow decided, where each
 * group's window before its move began: at its first reading since its version last changed.
 */
function watchRuns(events: HistoryEvent[], input: TrainInput): RecordedRun[] {
  const spec = watchSpec(input.watch);
  const everyMs = input.watch?.everyMs ?? 60_000;
  const windowSamples = Math.max(1, Math.ceil(input.watchMs / everyMs));
  const snapshots: { at: number; reading: Reading }[] = [];
  const unchangedSince: Partial<Record<Station, number>> = {};
  const windowStartAt: Partial<Record<Station, number>> = {};
  let landed: Record<string, string> | null = null;
  const runs: RecordedRun[] = [];
  let current: RecordedRun | null = null;
  for (const call of activityCalls(events)) {
    if (call.name === 'landWikiversions') {
      const versions = call.input.versions as Record<Station, string>;
      for (const g of STATIONS) if (landed && landed[g] !== versions[g]) delete unchangedSince[g];
      landed = versions;
      continue;
    }
    if (call.name === 'readStations' && call.result) {
      landed ??= (call.result as { versions: Record<string, string> }).versions;
      continue;
    }
    if (call.name !== 'measureGroups') continue;
    const groups: string[] = call.input?.groups ?? [];
    if (groups.length > 1) {
      current = null;
      if (!call.result) continue;
      snapshots.push({ at: call.at, reading: call.result });
      for (const g of STATIONS) {
        unchangedSince[g] ??= snapshots.length - 1;
        windowStartAt[g] = unchangedSince[g];
      }
      continue;
    }
    const group = groups[0] as Station;
    if (!current || current.subject !== `${group} after its move`) {
      const to = snapshots[snapshots.length - 1];
      const from = snapshots[windowStartAt[group] ?? snapshots.length - 1] ?? to;
      current = {
        subject: `${group} after its move`,
        spec,
        context: {
          windowSamples,
          baselineName: 'before the move',
          reference: to
            ? {
                [group]: referenceBetween(
                  { at: from.at, metrics: from.reading.metrics },
                  { at: to.at, metrics: to.reading.metrics },
                  group,
                ),
              }
            : undefined,
        },
        samples: [],
      };
      runs.push(current);
    }
    current.samples.push(sampleOf(call));
  }
  // The workflow reads its acknowledgements at every sample; those in before a run's last sample count for it.
  const acks = acknowledgements(events);
  for (const run of runs) {
    const lastAt = run.samples[run.samples.length - 1]?.at ?? 0;
    run.context.acknowledged = acks.filter((a) => a.at <= lastAt).map((a) => a.signature);
  }
  return runs;
}

/** Whether the workflow took a patch's new path: the SDK records a marker the first time it is asked. */
function tookPatch(events: HistoryEvent[], patchId: string): boolean {
  return events.some((event) => {
    const marker = event.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_patch') return false;
    const [data] = decode(marker.details?.patch_data) as [{ id?: string } | undefined];
    return data?.id === patchId;
  });
}

/** The analysis runs a workflow's history holds: a rollout's canary analysis, or a train's watches. */
export function recordedRuns(events: HistoryEvent[]): RecordedRun[] {
  const started = events[0]?.workflowExecutionStartedEventAttributes;
  const type = started?.workflowType?.name;
  const runs =
    type === 'trainWorkflow'
      ? watchRuns(events, decode(started!.input)[0] as TrainInput)
      : type === 'rolloutWorkflow'
        ? canaryRuns(events)
        : undefined;
  if (!runs) throw new Error(`${type ?? 'this workflow'} runs no analysis: give a train or a rollout`);
  // Judged as the workflow judged them: a run from before the power rule had none.
  const [rule, byDefault] = [tookPatch(events, POWER_RULE_PATCH), tookPatch(events, POWER_DEFAULT_PATCH)];
  for (const run of runs) run.spec = specAsRecorded(run.spec, rule, byDefault);
  return runs;
}

const SETTABLE: Record<string, (spec: Partial<AnalysisSpec>, value: string) => void> = {
  method: (s, v) => {
    if (v !== 'sequential' && v !== 'fixed') throw new Error('method is sequential or fixed');
    s.judge = v;
  },
  alpha: (s, v) => (s.alpha = share(v, 'alpha')),
  minEffect: (s, v) => (s.minEffect = { points: share(v, 'minEffect') }),
  ceiling: (s, v) => (s.maxErrorRate = share(v, 'ceiling')),
  minRequests: (s, v) => (s.minRequests = whole(v, 'minRequests')),
  power: (s, v) => (s.power = share(v, 'power')),
  failureLimit: (s, v) => (s.failureLimit = whole(v, 'failureLimit')),
  inconclusiveLimit: (s, v) => (s.inconclusiveLimit = whole(v, 'inconclusiveLimit')),
  consecutiveErrorLimit: (s, v) => (s.consecutiveErrorLimit = whole(v, 'consecutiveErrorLimit')),
  newErrorMin: (s, v) => (s.newSignatures = { minCount: whole(v, 'newErrorMin') }),
  'trafficFloor.share': (s, v) =>
    (s.trafficFloor = { ...withDefaults(s).trafficFloor!, minShareOfBaseline: share(v, 'trafficFloor.share') }),
  'trafficFloor.intervals': (s, v) =>
    (s.trafficFloor = { ...withDefaults(s).trafficFloor!, intervals: whole(v, 'trafficFloor.intervals') }),
  'latency.maxP99Ratio': (s, v) => (s.latency = { ...s.latency, maxP99Ratio: positive(v, 'latency.maxP99Ratio') }),
  'latency.maxP99Ms': (s, v) => (s.latency = { ...s.latency, maxP99Ms: positive(v, 'latency.maxP99Ms') }),
  maxErrorRate: (s, v) => (s.fixed = { ...withDefaults(s).fixed, maxErrorRate: share(v, 'maxErrorRate') }),
  maxRatioToBaseline: (s, v) =>
    (s.fixed = { ...withDefaults(s).fixed, maxRatioToBaseline: positive(v, 'maxRatioToBaseline') }),
};

function share(value: string, key: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n <= 1))
    throw new Error(`${key} must be a number from 0 to 1, not "${value}"`);
  return n;
}
function whole(value: string, key: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`${key} must be a whole number, not "${value}"`);
  return Number(value);
}
function positive(value: string, key: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n > 0)) throw new Error(`${key} must be a number above 0, not "${value}"`);
  return n;
}

/** Applies `key=value` settings to a spec; an unknown key or a bad value is refused, naming what is allowed. */
export function withSettings(spec: Partial<AnalysisSpec>, settings: string[]): Partial<AnalysisSpec> {
  const changed: Partial<AnalysisSpec> = structuredClone(spec);
  for (const setting of settings) {
    const [key, ...rest] = setting.split('=');
    const set = SETTABLE[key];
    if (!set || !rest.length)
      throw new Error(`--set takes key=value with key one of ${Object.keys(SETTABLE).join(', ')}; not "${setting}"`);
    set(changed, rest.join('='));
  }
  return changed;
}

/** Judges each recorded run again under the settings, and finds the first sample where the judges part. */
export function replay(runs: RecordedRun[], settings: string[]): ReplayedRun[] {
  return runs.map((run) => {
    const other = withSettings(run.spec, settings);
    const judgeUpTo = (spec: Partial<AnalysisSpec>, n: number) =>
      assess(run.samples.slice(0, n + 1), spec, run.context);
    let differsAt: number | null = null;
    for (let n = 0; n < run.samples.length && differsAt === null; n++) {
      if (judgeUpTo(run.spec, n).phase !== judgeUpTo(other, n).phase) differsAt = n;
    }
    return {
      subject: run.subject,
      recorded: assess(run.samples, run.spec, run.context),
      whatIf: assess(run.samples, other, run.context),
      differsAt,
    };
  });
}

export function renderReplay(replayed: ReplayedRun[], settings: string[]): string {
  if (!replayed.length) return 'no analysis runs with samples in this history';
  return replayed
    .map((r) =>
      [
        `${r.subject} (${r.recorded.judgedThrough + 1 > 0 ? r.recorded.judgedThrough : 0} of ${r.recorded.windowSamples} samples judged)`,
        `  as recorded: ${r.recorded.phase}: ${describe(r.recorded)}`,
        `  with ${settings.join(' ') || 'the recorded settings'}: ${r.whatIf.phase}: ${describe(r.whatIf)}`,
        `  ${r.differsAt === null ? 'same verdict at every sample' : `differs from sample ${r.differsAt}`}`,
      ].join('\n'),
    )
    .join('\n');
}
