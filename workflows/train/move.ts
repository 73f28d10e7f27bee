// Moving groups: every move, forward or back, is a wikiversions.json change landed in the config repository under
// the config service's lease, deployed by the rollout engine and verified by asking the wikis what they run.
import { CancellationScope, condition, executeChild, uuid4 } from '@temporalio/workflow';
import type { Release } from '../../activities/releases';
import type { TrainRollbackRequest } from '../definitions';
import { STATIONS, type Station } from '../names';
import type { Strategy } from '../plan';
import { rolloutWorkflow } from '../rollout';
import { acts, causeOf, failureType } from './activities';
import type { Train } from './context';
import type { Through } from './gate';
import type { Snapshot } from './readings';

/** Rollbacks must not stop at a down host or wait for canaries: every host at once, failures reported, not fatal. */
const ROLLBACK_STRATEGY: Strategy = { canary: null, batch: '100%', maxFail: '100%', fetchConcurrency: 80 };

/** The group's window before its move, and the reading just before it: what the watch compares with. */
export interface Window {
  from: Snapshot;
  to: Snapshot;
}

/** The move phase: a reading just before it, then the move. Null when the move failed (and was put back). */
export async function move(train: Train, moved: Station, through: Through): Promise<Window | null> {
  const { state, readings, analysisRun } = train;
  state.status.state = 'deploying';
  state.report();
  const beforeMove = await readings.measure(`${moved} before its move`);
  const referenceStart = analysisRun
    ? readings.windowBefore(moved, through.windowStart ?? beforeMove)
    : through.windowStart!;
  if (!(await moveForward(train, state.status.station + 1, through.by))) return null;
  return { from: referenceStart, to: beforeMove };
}

/** Deploys a landed wikiversions release with the engine, then asks the wikis which version they run. */
async function deployAndVerify(
  { id: trainId, input, catalog, state }: Train,
  station: number,
  release: Release,
  child: string,
  strategy: Strategy,
  by: string,
  movingBack = false,
) {
  const rolledOut = await executeChild(rolloutWorkflow, {
    workflowId: `${trainId}-${child}`,
    args: [{ service: input.configService, release, selector: {}, strategy, by, movingBack }],
  });
  // A host a rollback could not put back (unreachable, or unhealthy on the older release) is named, and the
  // rollback stays unfinished for `train resume`: the live check alone would not see a depooled host.
  if (movingBack && rolledOut.failed > 0) {
    const named = rolledOut.failures
      .filter((f) => f.host !== '(analysis)')
      .slice(0, 10)
      .map((f) => `${f.host} (${f.detail ?? f.code})`);
    throw new Error(`${rolledOut.failed} hosts are not back on ${release.id}: ${named.join('; ')}`);
  }
  const versions = state.versionsAt(station);
  const expected = Object.fromEntries(Object.entries(catalog.groups).map(([db, group]) => [db, versions[group]]));
  await acts.verifyLiveVersions({
    expected,
    domains: catalog.domains,
    everyMs: input.verifyEveryMs,
    timeoutMs: input.verifyTimeoutMs,
  });
}

/** A move holds the config service's lease from landing to verification, so no other deploy lands in between. */
async function underLease<T>({ id: trainId, input }: Train, by: string, work: () => Promise<T>): Promise<T> {
  await acts.acquireServiceLease({ service: input.configService, workflowId: trainId, by });
  try {
    return await work();
  } finally {
    await CancellationScope.nonCancellable(() =>
      acts.releaseServiceLease({ service: input.configService, workflowId: trainId }),
    );
  }
}

/** Change ids are chosen once, at random, inside the workflow: a restarted train never finds an old change. */
const newChangeId = (trainId: string, what: string) => `${trainId}-${what}-${uuid4()}`;

/**
 * Moves groups back to the old version: lands wikiversions for `target` and deploys it to every host at once.
 * The target is only ever older than what runs now, so a failure here is reported and retried on `train
 * resume`, never answered by moving the fleet forward.
 */
export async function rollBackTo(
  train: Train,
  target: number,
  by: string,
  why: string,
  changeId = newChangeId(train.id, 'rollback'),
): Promise<boolean> {
  const { id: trainId, input, fromVersion, state, records, readings } = train;
  const status = state.status;
  // Backward names every group that goes back; after a failed forward move, the group that tried to move.
  const goingBack = STATIONS.slice(target + 1, Math.max(status.station, target + 1) + 1);
  const label = `roll back ${goingBack.join(', ')} to ${fromVersion}`;
  state.moves++;
  status.state = 'rolling-back';
  state.note(`${label}${why ? `: ${why}` : ''}`, by);
  state.report();
  try {
    await underLease(train, by, async () => {
      const versions = state.versionsAt(target);
      const subject = `${STATIONS[target + 1] ?? 'all'} wikis back to ${fromVersion}${why ? `: ${why}` : ''} (${trainId})`;
      readings.versionsChange(goingBack);
      const change = await acts.landWikiversions({ versions, subject, changeId, by });
      state.lastRange = change.range;
      // The configuration repository now says `target`, and so does every host the rollback reaches.
      status.station = Math.min(status.station, target);
      state.unfinishedRollback = { target, by, why, changeId };
      await deployAndVerify(train, target, change.release, `config-${state.moves}`, ROLLBACK_STRATEGY, by, true);
    });
    state.unfinishedRollback = null;
    state.report();
    records.record(`${label}${why ? ` (${why})` : ''}: done and verified`, by, state.lastRange);
    records.updateRoadmap();
    return true;
  } catch (err) {
    state.unfinishedRollback ??= { target, by, why, changeId };
    state.report();
    await records.blockAfterFailure(
      `${label} did not finish: ${causeOf(err)}. No group moves forward until \`signalbox train resume ${input.version}\` has retried the rollback`,
    );
    return false;
  }
}

/** Moves the next station onto the new version, canaries first. On any failure the old wikiversions go back. */
async function moveForward(train: Train, target: number, by: string): Promise<boolean> {
  const { id: trainId, input, state, records, readings } = train;
  const label = `move ${STATIONS[target]} to ${input.version}`;
  state.moves++;
  state.status.state = 'deploying';
  state.note(label, by);
  state.report();
  try {
    await underLease(train, by, async () => {
      const subject = `${STATIONS[target]} wikis to ${input.version} (${trainId})`;
      readings.versionsChange([STATIONS[target]]);
      const change = await acts.landWikiversions({
        versions: state.versionsAt(target),
        subject,
        changeId: newChangeId(trainId, 'move'),
        by,
      });
      state.lastRange = change.range;
      await deployAndVerify(train, target, change.release, `config-${state.moves}`, input.strategy, by);
    });
    state.status.station = target;
    state.report();
    records.record(`${label}: done and verified`, by, state.lastRange);
    records.updateRoadmap();
    return true;
  } catch (err) {
    const reason = `${label} failed: ${causeOf(err)}`;
    state.note(reason);
    if (failureType(err) === 'LeaseTaken') {
      // Refused before anything landed or any host was touched: there is nothing to put back.
      await records.blockAfterFailure(`${reason}; approve again once it is done`);
      return false;
    }
    // Never forward in reaction to a failure: every host goes back to the old wikiversions.
    if (await rollBackTo(train, state.status.station, 'signalbox', `${STATIONS[target]} did not pass its move`))
      await records.blockAfterFailure(`${reason}; rolled back and verified`);
    return false;
  }
}

/** An operator's `train rollback`: carried out, then the train holds for a person. */
export async function rollBackOnRequest(train: Train): Promise<void> {
  const state = train.state;
  const request: TrainRollbackRequest = state.pendingRollback!;
  const to = request.toStation ?? 'start';
  if (await rollBackTo(train, to === 'start' ? -1 : STATIONS.indexOf(to), request.by, request.reason))
    state.status.state = 'rolled-back';
  state.holdForHuman = true;
  state.pendingRollback = null;
  state.rollbacksDone++;
  state.report();
}

/** A rollback that did not reach every host: only a person restarts it. */
export async function retryRollback(train: Train, resumesBefore: number): Promise<void> {
  const state = train.state;
  // Only a person restarts this: `train resume` deploys the same rollback again, to the hosts it missed.
  await condition(() => state.resumes > resumesBefore || state.abortRequested || state.pendingRollback !== null);
  if (state.resumes > resumesBefore && state.unfinishedRollback) {
    const { target, by, why, changeId } = state.unfinishedRollback;
    if (await rollBackTo(train, target, by, why, changeId)) state.status.state = 'rolled-back';
  }
}
