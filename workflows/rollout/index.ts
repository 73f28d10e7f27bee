// The rollout engine: one workflow per rollout of a release of one service to a set of hosts.
// Fetch runs wide and changes nothing that serves; then canaries, analysis, and rolling batches, each wave a child
// workflow so no history grows with the fleet. Past the failure limit, every host it switched goes back.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  patched,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { authorizer } from '../authorize';
import { describeIdentity, searchAttributes, type RolloutStatus } from '../definitions';
import { hostActivities, rollbackActivities } from './activities';
import type { RolloutInput } from './input';
import { fetchEverywhere, markStable, planWaves, runWave } from './phases';
import { retryUnreached, rollBack } from './rollback';
import { RolloutState, type Rollout } from './state';
import { steer } from './steering';

export type { RolloutInput } from './input';
export { groupBatches, rolloutWaveWorkflow, type WaveInput, type WaveResult } from './wave';

export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutStatus> {
  const runId = workflowInfo().workflowId;
  // A rollback fences this run on every host it rolls back, so a wave that died mid-switch never lands after it.
  const fence = workflowInfo().runId;
  upsertSearchAttributes([
    { key: searchAttributes.kind, value: 'rollout' },
    { key: searchAttributes.service, value: input.service },
    { key: searchAttributes.version, value: input.release.name },
  ]);
  const state = new RolloutState(input.service, input.release.id);
  const rollout: Rollout = { input, runId, fence, auth: authorizer(runId), state };
  steer(rollout);

  // A deploy asked for from outside (not a train's own move) is an action of a person, signed like any other.
  if (!workflowInfo().parent) {
    const who = await rollout.auth
      .verify({ by: input.by, signed: input.signed }, 'deploy', input.release.id)
      .catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(err.message, 'Unauthorized');
      });
    input = rollout.input = { ...input, by: describeIdentity(who) };
  }
  // Before any host is touched: a change whose Depends-On is not live yet must not go out (refuses, never retried).
  if (patched('depends-on-check'))
    await hostActivities.checkDependsOn({ service: input.service, release: input.release, selector: input.selector });
  // One change at a time per service: refused at once, naming the holder, when another rollout is changing it.
  await hostActivities.acquireServiceLease({
    service: input.service,
    workflowId: runId,
    by: input.by,
    parent: workflowInfo().parent?.workflowId,
  });
  try {
    return await rollOut(rollout);
  } finally {
    await CancellationScope.nonCancellable(() =>
      rollbackActivities.releaseServiceLease({ service: input.service, workflowId: runId }),
    );
  }
}

/** Plan, fetch, each wave (canaries first, judged), then stable: the rollout under its service lease. */
async function rollOut(rollout: Rollout): Promise<RolloutStatus> {
  const { input, state } = rollout;
  const status = state.status;
  const retryable: string[] = [];
  const { plan, pending, children } = await planWaves(rollout);
  const fetchFailed = await fetchEverywhere(rollout, pending);
  // Moving back, a host that cannot fetch now is tried again once the others are back (see retryUnreached).
  // Behind a patch: rollouts that were running before rollbacks retried their hosts replay as they ran.
  const retriesUnreached = input.movingBack === true && patched('rollback-retries-unreached');
  if (retriesUnreached) retryable.push(...fetchFailed);
  if (status.failed > status.maxFail) {
    status.phase = 'aborted';
    state.report();
    throw ApplicationFailure.nonRetryable(
      `${status.failed} hosts failed to fetch, more than the limit of ${status.maxFail}; nothing was switched`,
      'RolloutFailed',
      status,
    );
  }

  for (const [index, child] of children.entries()) {
    const ended = await runWave(rollout, index, child, fetchFailed, retryable);
    if (ended) return ended;
  }
  if (retriesUnreached) await retryUnreached(rollout, retryable);
  if (status.paused || state.rollbackRequested) {
    // Paused after the last wave (a canary-only run): still the operator's call.
    await condition(() => state.resumedOrStopped());
    if (state.rollbackRequested) return rollBack(rollout, 'rollback requested by operator');
  }

  // A release is stable once every target host runs it; a canary-only run leaves last-stable alone.
  await markStable(rollout, plan, pending);
  status.phase = 'done';
  state.report();
  return status;
}
