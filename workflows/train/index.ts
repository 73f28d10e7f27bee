// The weekly train: stage the new branch on every host, then move testwikis, group0, group1 and group2 onto it,
// one station at a time. Every move is a wikiversions.json change landed in the config repository and deployed by
// the rollout engine (canaries first), then verified by asking the wikis which version they run.
//
// The runbook: stage → for each station: gate → move → watch. Operators steer it with updates (steering.ts);
// a rollback they ask for, or one that did not finish, goes before the next station.
import { allHandlersFinished, condition, isCancellation, patched, workflowInfo } from '@temporalio/workflow';
import type { TrainStatus } from '../definitions';
import { STATIONS } from '../names';
import { causeOf } from './activities';
import { gate } from './gate';
import { move, retryRollback, rollBackOnRequest } from './move';
import { stage } from './stage';
import { setOut } from './start';
import type { TrainState } from './state';
import { steer } from './steering';
import { holdUndecided, rollBackFailedWatch, watch } from './watch';
import type { TrainInput } from './input';

export { watchSpec, type TrainInput } from './input';

export async function trainWorkflow(input: TrainInput): Promise<TrainStatus> {
  const trainId = workflowInfo().workflowId;
  // Trains that started before the analysis run keep their fixed-threshold watch when replayed.
  const analysisRun = patched('analysis-run');
  const train = await setOut(input, trainId, analysisRun);
  const { state, records, readings } = train;
  const status = state.status;
  steer(train);
  state.report();
  // Staging takes a while: reading the groups now gives the first station's window before its move some length.
  if (analysisRun) await readings.measure('the start of the train').catch(() => undefined);
  const code = await stage(train);
  if (code) records.record(`synced ${code.id} to every host`, input.by);
  else status.state = 'aborted';

  while (code) {
    const resumesBefore = state.resumes;
    if (state.paused) {
      status.state = 'paused';
      state.report();
    }
    await condition(() => !state.paused || state.abortRequested || state.pendingRollback !== null);
    if (state.abortRequested) {
      status.state = 'aborted';
      break;
    }
    if (state.pendingRollback) {
      await rollBackOnRequest(train);
      continue;
    }
    if (state.unfinishedRollback) {
      await retryRollback(train, resumesBefore);
      continue;
    }
    if (status.station === STATIONS.length - 1) {
      // The last station's watch could not vouch for it: a person accepts it (approve) or rolls back.
      if (analysisRun && state.holdForHuman && !(await lastStationAccepted(state))) continue;
      status.state = 'complete';
      break;
    }
    const moved = STATIONS[status.station + 1];
    try {
      const through = await gate(train, moved);
      if (!through) continue;
      const window = await move(train, moved, through);
      if (!window) continue;
      const verdict = await watch(train, moved, window);
      if (verdict?.phase === 'fail') await rollBackFailedWatch(train, moved, verdict.summary);
      else if (verdict?.phase === 'inconclusive') holdUndecided(train, moved, verdict.summary);
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Metrics that cannot be read, blockers that cannot be listed: the train holds where it is and asks a person.
      await records.blockAfterFailure(
        `${moved}: ${causeOf(err)}; it stays where it is until a person approves or rolls back`,
      );
    }
  }
  records.record(`train ${status.state}`, input.by);
  if (status.state === 'complete')
    records.announce(
      `[Train] ${input.version} is on all wikis`,
      `Train ${input.version} reached group2 and passed its error watch.\n-- signalbox\n\n${input.link ?? trainId}`,
    );
  state.report();
  await records.sent();
  await condition(allHandlersFinished);
  return status;
}

/** Waits for an approval of the last station, or an operator stepping in; true when approved. */
async function lastStationAccepted(state: TrainState): Promise<boolean> {
  await condition(() => state.approvedOrInterrupted());
  if (!state.approved) return false;
  state.approved = false;
  state.holdForHuman = false;
  state.status.blocker = undefined;
  return true;
}
