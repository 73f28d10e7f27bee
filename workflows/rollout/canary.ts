// The canaries' verdict: an analysis run against the rest of the pooled fleet (or, for rollouts started before
// it, one sleeping activity). A failure rolls back; an undecided run, or pauseAfterCanary, pauses for a person.
import { patched } from '@temporalio/workflow';
import type { AnalysisView } from '../analysis/index';
import { runAnalysis } from '../analysis-run';
import { hostActivities, measurements, type Activities } from './activities';
import { rollBack } from './rollback';
import type { Rollout } from './state';
import type { WaveResult } from './wave';

/** After the canary wave: judges the canaries that switched, and rolls back or pauses by the verdict. */
export async function judgeCanaries(rollout: Rollout, batches: string[][], result: WaveResult): Promise<void> {
  const { input, state } = rollout;
  const status = state.status;
  status.phase = 'analysis';
  state.report();
  const failedHosts = new Set(result.failures.map((f) => f.host));
  const canaries = batches.flat().filter((h) => !failedHosts.has(h));
  // Behind a patch: rollouts that analysed canaries in one sleeping activity replay as they ran.
  if (patched('canary-analysis-run')) {
    const verdict = await analyzeCanaries(rollout, canaries);
    if (verdict?.phase === 'fail') return rollBack(rollout, `canary analysis failed: ${verdict.summary}`);
    if (verdict?.phase === 'inconclusive' || (verdict && input.pauseAfterCanary)) {
      status.paused = true;
      status.pauseReason =
        verdict.phase === 'inconclusive'
          ? `canary analysis inconclusive: ${verdict.summary}; resume or roll back`
          : 'canaries are live; resume to continue';
    }
    return;
  }
  let verdict: Awaited<ReturnType<Activities['analyzeCanary']>>;
  try {
    verdict = await hostActivities.analyzeCanary({ service: input.service, release: input.release, canaries });
  } catch (err) {
    // Metrics that cannot be read are not a verdict: hold and ask a person.
    verdict = {
      result: 'inconclusive',
      summary: `metrics could not be read: ${(err as Error).message}`,
      measurements: [],
      notes: [],
    };
  }
  status.failures.push(
    ...verdict.notes.map((note) => ({ host: '(analysis)', outcome: 'skipped' as const, detail: note })),
  );
  if (verdict.result === 'fail') return rollBack(rollout, `canary analysis failed: ${verdict.summary}`);
  if (verdict.result === 'inconclusive' || input.pauseAfterCanary) {
    status.paused = true;
    status.pauseReason =
      verdict.result === 'inconclusive'
        ? `canary analysis inconclusive: ${verdict.summary}; resume or roll back`
        : 'canaries are live; resume to continue';
  }
}

/**
 * The canaries against the rest of the pooled fleet, on workflow timers, until the sequential judge decides.
 * Null when the operator stepped in (the wave loop then rolls back or stops).
 */
async function analyzeCanaries({ input, state }: Rollout, canaries: string[]): Promise<AnalysisView | null> {
  const plan = await hostActivities.canaryAnalysisPlan({ service: input.service });
  if (!plan)
    return {
      subject: `canaries of ${input.service}`,
      phase: 'pass',
      summary: 'no metric analysis configured',
      evidence: [],
      judgedThrough: 0,
      windowSamples: 0,
    };
  return runAnalysis({
    subject: `canaries of ${input.service}`,
    read: () => measurements.measureCanary({ service: input.service, canaries }),
    everyMs: plan.everyMs,
    spec: plan.spec,
    context: () => ({ windowSamples: plan.windowSamples }),
    interrupted: () => state.rollbackRequested || state.abortRequested,
    progress: (view) => {
      state.status.analysis = view;
      state.report();
    },
  });
}
