// A rollout's phases: plan the waves, fetch everywhere (nothing that serves changes), then each wave in turn,
// and once every target host runs the release, mark it stable.
import { ApplicationFailure, condition, executeChild } from '@temporalio/workflow';
import type { RolloutStatus } from '../definitions';
import { chunk, planRollout, type RolloutPlan } from '../plan';
import { ACTIVITIES_IN_FLIGHT, HOSTS_PER_FETCH_ACTIVITY, hostActivities, inParallel } from './activities';
import { judgeCanaries } from './canary';
import { rollBack } from './rollback';
import type { Rollout } from './state';
import { groupBatches, rolloutWaveWorkflow, type WaveResult } from './wave';

export type Child = ReturnType<typeof groupBatches>[number];

/** Which hosts need the release, in which waves, and the failure limit; the status shows the plan. */
export async function planWaves({ input, state }: Rollout) {
  const status = state.status;
  const { current, canaryHosts, idleHosts } = await hostActivities.currentReleases({
    service: input.service,
    release: input.release,
    selector: input.selector,
  });
  let plan: RolloutPlan;
  try {
    plan = planRollout(current, input.release.id, {
      ...input.strategy,
      canaryHosts: input.strategy.canaryHosts ?? canaryHosts,
      idleHosts,
    });
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'BadInput');
  }
  const pending = plan.waves.flatMap((w) => w.hosts);
  status.total = Object.keys(current).length;
  status.done = plan.alreadyOnRelease.length;
  status.maxFail = plan.maxFailures;
  const children = groupBatches(plan.waves);
  status.waves = children.map((c) => ({
    name: c.name,
    hosts: c.waves.reduce((n, w) => n + w.hosts.length, 0),
    done: 0,
    failed: 0,
  }));
  return { plan, pending, children };
}

/** Fetch runs wide and changes nothing that serves. Returns the hosts that could not fetch. */
export async function fetchEverywhere({ input, runId, state }: Rollout, pending: string[]): Promise<Set<string>> {
  const status = state.status;
  status.phase = 'fetching';
  state.report();
  const fetchFailed = new Set<string>();
  try {
    for (const hosts of chunk(pending, HOSTS_PER_FETCH_ACTIVITY)) {
      const results = await hostActivities.fetchToHosts({
        service: input.service,
        release: input.release,
        by: input.by,
        runId,
        hosts,
        concurrency: input.strategy.fetchConcurrency,
      });
      const failures = results.filter((r) => r.outcome === 'failed');
      state.recordFailures(failures);
      failures.forEach((f) => fetchFailed.add(f.host));
    }
  } catch (err) {
    status.phase = 'aborted';
    state.report();
    const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
    throw ApplicationFailure.nonRetryable(
      `fetch did not finish (${cause}); nothing was switched`,
      'RolloutFailed',
      status,
    );
  }
  return fetchFailed;
}

/**
 * One wave child, after the operator's word if paused: its failures counted, rolled back past the limit, and
 * the canaries judged. The status when the rollout ends here (aborted); undefined to go on.
 */
export async function runWave(
  rollout: Rollout,
  index: number,
  child: Child,
  fetchFailed: Set<string>,
  retryable: string[],
): Promise<RolloutStatus | undefined> {
  const { input, runId, fence, state } = rollout;
  const status = state.status;
  const batches = child.waves.map((w) => w.hosts.filter((h) => !fetchFailed.has(h)));
  const isCanary = child.name === 'canary';
  status.phase = isCanary ? 'canary' : 'batches';
  state.report();
  await condition(() => state.resumedOrStopped());
  if (state.rollbackRequested) return rollBack(rollout, 'rollback requested by operator');
  if (state.abortRequested) {
    // Abort stops before the next wave; what is switched stays, each host checked and pooled.
    status.phase = 'aborted';
    state.report();
    return status;
  }
  state.attempted.push(...batches.flat());
  let result: WaveResult;
  try {
    result = await executeChild(rolloutWaveWorkflow, {
      workflowId: `${runId}-${child.name.replace(/\s+/g, '-')}`,
      args: [
        {
          service: input.service,
          release: input.release,
          batches,
          failuresAllowed: status.maxFail - status.failed,
          by: input.by,
          runId,
          movingBack: input.movingBack,
          fence,
        },
      ],
    });
  } catch (err) {
    return rollBack(
      rollout,
      `${child.name} did not finish: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}`,
    );
  }
  state.recordFailures(result.failures, result.failed);
  retryable.push(...(result.retryable ?? []));
  const ok = result.batches.reduce((n, b) => n + b.done, 0);
  status.done += ok;
  status.waves[index].done = ok;
  status.waves[index].failed = result.failed + (status.waves[index].hosts - batches.flat().length);
  state.report();
  if (status.failed > status.maxFail) {
    return rollBack(
      rollout,
      `${status.failed} hosts failed, more than the limit of ${status.maxFail}: ${result.failures
        .slice(0, 3)
        .map((f) => `${f.host}: ${f.detail}`)
        .join('; ')}`,
    );
  }
  if (isCanary) await judgeCanaries(rollout, batches, result);
  return undefined;
}

/** Marks the release last-stable on its target hosts, when every one of them runs it. */
export async function markStable({ input, runId, state }: Rollout, plan: RolloutPlan, pending: string[]) {
  const complete = state.status.done === state.status.total;
  await inParallel(
    chunk(complete ? [...plan.alreadyOnRelease, ...pending] : [], HOSTS_PER_FETCH_ACTIVITY),
    ACTIVITIES_IN_FLIGHT,
    (hosts) =>
      hostActivities.markStable({ service: input.service, release: input.release, by: input.by, runId, hosts }),
  );
}
