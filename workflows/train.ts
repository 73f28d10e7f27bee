// The weekly train: stage the new branch on every host, then move testwikis, group0, group1 and group2 onto it,
// one station at a time. Every move is a wikiversions.json change landed in the config repository and deployed by
// the rollout engine (canaries first), then verified by asking the wikis which version they run.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  allHandlersFinished,
  isCancellation,
  uuid4,
  condition,
  executeChild,
  proxyActivities,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  abortTrain,
  acknowledgeError,
  approveStation,
  pauseTrain,
  resumeTrain,
  rollbackTrain,
  searchAttributes,
  trainStatusQuery,
  describeIdentity,
  type AcknowledgeRequest,
  type ApproveRequest,
  type TrainRollbackRequest,
  type TrainStatus,
} from './definitions';
import type { Release } from '../activities/releases';
import { STATIONS, checkStation, checkVersion, parseAmount, type Station } from './names';
import type { Strategy } from './plan';
import { renderStatusUpdate, renderTrain, type Blocker } from './render';
import {
  delta,
  judge,
  newSignatures,
  signatureDelta,
  type Counts,
  type GroupCounts,
  type Signatures,
  type Thresholds,
} from './analysis';
import { referenceBetween, type AnalysisSpec, type AnalysisView } from './analysis/index';
import { runAnalysis } from './analysis-run';
import { describeWindow, untilWindowOpens, type DeployWindows } from './windows';
import { rolloutWorkflow } from './rollout';
import { authorizer } from './authorize';

type Activities = ReturnType<typeof createActivities>;

/**
 * Every train activity is idempotent, so attempts are not counted: a worker killed every few seconds slows the
 * train down but never blocks it. After half an hour of failing, the train blocks and asks a person.
 */
const acts = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  scheduleToCloseTimeout: '30 minutes',
  heartbeatTimeout: '15 seconds',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '10 seconds',
    nonRetryableErrorTypes: [
      'BadInput',
      'VersionMismatch',
      'StageBlocked',
      'LeaseTaken',
      'DependencyNotLive',
      'TrainInMotion',
      'ChangePlanted',
    ],
  },
});

/** Records and notifications never hold up a deploy or a rollback: they run in order in the background, retried for a while. */
const records = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '30 minutes',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' },
});

/** One metrics read: a few quick tries, since the watch takes another sample a minute later anyway. */
const measurements = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});
/** Failed metric reads in a row that the watch rides out (Argo's consecutiveErrorLimit default) before asking a person. */
const WATCH_UNREADABLE_LIMIT = 4;

export interface TrainInput {
  version: string;
  fromVersion?: string;
  autoApprove: boolean;
  approvers: string[];
  verifyEveryMs: number;
  verifyTimeoutMs: number;
  watchMs: number;
  /** How the error watch judges after a station move: `judge` is the analysis run's spec; the rest, older trains'. */
  watch?: Thresholds & { everyMs: number; newErrorMin?: number; judge?: Partial<AnalysisSpec> };
  /** approval: each station waits for an approver. window: it moves by itself inside its deploy window when no blocker is open. */
  gate?: 'approval' | 'window';
  windows?: DeployWindows;
  /** How often open blockers are checked; absent when no blocker tracker is configured. */
  blockersPollMs?: number;
  /** The train's page in the Temporal UI, linked from status updates. */
  link?: string;
  strategy: Strategy;
  codeService: string;
  configService: string;
  by: string;
}

const NO_TRAFFIC: GroupCounts = { requests: 0, errors: 0, signatures: {} };

/** Every group's counters at one moment: an analysis reading, or (trains started before it) plain sums. */
interface Snapshot {
  /** Workflow time of the reading. */
  at: number;
  reading?: Awaited<ReturnType<Activities['measureGroups']>>;
  legacy?: Record<string, GroupCounts>;
}

/** The watch's analysis spec: the configured judging, else one built from the thresholds older inputs carry. */
export function watchSpec(watch: TrainInput['watch']): Partial<AnalysisSpec> {
  const thresholds = { ...DEFAULT_WATCH, ...watch };
  return (
    watch?.judge ?? {
      fixed: {
        maxErrorRate: thresholds.maxErrorRate,
        maxRatioToBaseline: thresholds.maxRatioToBaseline,
        minRequests: thresholds.minRequests,
      },
      minRequests: thresholds.minRequests,
      newSignatures: { minCount: thresholds.newErrorMin },
    }
  );
}

const DEFAULT_WATCH = { everyMs: 60_000, maxErrorRate: 0.01, maxRatioToBaseline: 5, minRequests: 50, newErrorMin: 5 };

const failureType = (err: unknown) => {
  const cause = err instanceof ActivityFailure || err instanceof ChildWorkflowFailure ? err.cause : undefined;
  return cause instanceof ApplicationFailure ? cause.type : undefined;
};
/** What a failure carries for private destinations only (a security patch's name and git am's words). */
const embargoedDetails = (err: unknown): string | undefined => {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  const details =
    cause instanceof ApplicationFailure ? (cause.details?.[0] as { embargoed?: string } | undefined) : undefined;
  return details?.embargoed;
};
const causeOf = (err: unknown): string => {
  const cause = (err as { cause?: Error }).cause;
  return cause ? causeOf(cause) : (err as Error).message;
};

/** Rollbacks must not stop at a down host or wait for canaries: every host at once, failures reported, not fatal. */
const ROLLBACK_STRATEGY: Strategy = { canary: null, batch: '100%', maxFail: '100%', fetchConcurrency: 80 };

function checkTrainInput(input: TrainInput): void {
  checkVersion(input.version);
  if (input.fromVersion !== undefined) checkVersion(input.fromVersion);
  parseAmount(input.strategy.batch, 100, 'batch');
  parseAmount(input.strategy.maxFail, 100, 'max-fail');
  if (input.strategy.canary !== null) parseAmount(input.strategy.canary, 100, 'canary');
  if (input.watch && !(input.watch.everyMs >= 1000))
    throw new Error(`the watch interval must be at least 1000 ms, not ${input.watch.everyMs}`);
  if (!(input.watchMs >= 0)) throw new Error(`the watch length must be a number of milliseconds, not ${input.watchMs}`);
}

export async function trainWorkflow(input: TrainInput): Promise<TrainStatus> {
  const trainId = workflowInfo().workflowId;
  // Trains that started before the analysis run keep their fixed-threshold watch when replayed.
  const analysisRun = patched('analysis-run');
  try {
    checkTrainInput(input);
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'BadInput');
  }
  // One train in motion at a time: this one starts only when every other is complete, blocked or aborted.
  const others = await acts.trainsInMotion({ except: trainId });
  if (others.length)
    throw ApplicationFailure.nonRetryable(
      `another train is in motion: ${others.join(', ')}; start this one when it is complete, blocked or aborted`,
      'TrainInMotion',
    );
  const { versions: before, catalog } = await acts.readStations();
  const fromVersion = input.fromVersion ?? before.group2;
  if (fromVersion === input.version)
    throw ApplicationFailure.nonRetryable(
      `group2 already runs ${input.version}; pass --from to say which version to move from`,
      'BadInput',
    );
  let reached = -1;
  while (reached < STATIONS.length - 1 && before[STATIONS[reached + 1]] === input.version) reached++;

  const versionsAt = (station: number) =>
    Object.fromEntries(STATIONS.map((s, i) => [s, i <= station ? input.version : fromVersion])) as Record<
      Station,
      string
    >;
  const status: TrainStatus = {
    version: input.version,
    fromVersion,
    state: 'staging',
    station: reached,
    versions: versionsAt(reached),
    nextStation: STATIONS[reached + 1] ?? null,
    acknowledged: [],
    events: [],
  };
  let approved = false;
  let paused = false;
  let abortRequested = false;
  let holdForHuman = false;
  let pendingRollback: TrainRollbackRequest | null = null;
  let rollbacksDone = 0;
  let moves = 0;
  let resumes = 0;
  let lastApprover: string | undefined;
  let recordSeq = 0;
  /** A rollback that did not reach every host: `train resume` deploys it again; nothing moves forward before it. */
  let unfinishedRollback: { target: number; by: string; why: string; changeId: string } | null = null;

  const note = (what: string, by?: string) => {
    status.events.push({ at: new Date().toISOString(), what, by });
    if (status.events.length > 200) status.events.splice(0, status.events.length - 200);
  };
  const report = () => {
    status.versions = versionsAt(status.station);
    status.nextStation = STATIONS[status.station + 1] ?? null;
    upsertSearchAttributes([{ key: searchAttributes.station, value: STATIONS[status.station] ?? 'start' }]);
    setCurrentDetails(
      [
        '```',
        renderTrain(status),
        '```',
        ...status.events.slice(-5).map((e) => `- ${e.at} ${e.what}${e.by ? ` (${e.by})` : ''}`),
      ].join('\n'),
    );
  };
  const finished = () => ['complete', 'aborted'].includes(status.state);

  // Records go out in order, behind the train: a slow IRC server never delays a rollback, and nothing is dropped
  // for a short outage. Each carries an id, so a retried activity writes each line and message once.
  let recordsInOrder: Promise<void> = Promise.resolve();
  const inBackground = (send: () => Promise<unknown>, what: string) => {
    recordsInOrder = recordsInOrder.then(() =>
      send().then(
        () => undefined,
        (err) => note(`${what}: ${causeOf(err)}`),
      ),
    );
  };
  /** A SAL line for an action (who, what, commit range), also logged to IRC. */
  const record = (what: string, by: string, range?: string) => {
    note(what, by);
    const entry = {
      id: `${trainId}#${++recordSeq}`,
      at: new Date().toISOString(),
      by,
      what: `${input.version}: ${what}`,
      range,
    };
    inBackground(() => records.logAction(entry), 'SAL entry not written');
  };
  const announce = (subject: string, body: string) => {
    const message = { id: `${trainId}-msg${++recordSeq}`, subject, body };
    inBackground(() => records.sendNotification(message), 'notification not sent');
  };
  /** Marks the train blocked and sends the status update, once per distinct set of blockers. */
  let announcedBlockers = '';
  const block = (blockers: Blocker[]) => {
    status.state = 'blocked';
    status.blocker = blockers.map((b) => b.title).join('; ');
    report();
    const key = JSON.stringify(blockers);
    if (key === announcedBlockers) return;
    announcedBlockers = key;
    record(`blocked: ${status.blocker}`, 'signalbox');
    const update = renderStatusUpdate(status, blockers, { train: input.link ?? trainId });
    announce(update.subject, update.body);
  };
  /** After a failure: the reason and what every host runs now, and the train waits for a person. */
  const blockAfterFailure = async (reason: string) => {
    holdForHuman = true;
    const picture = await acts
      .fleetPicture({ services: [input.configService] })
      .catch((err: unknown) => `the fleet could not be read: ${causeOf(err)}`);
    block([{ title: `${reason}. Fleet now: ${picture}` }]);
  };
  /** The roadmap page shows the highest group on the new version (0, 1, 2), as release engineers set it by hand. */
  const updateRoadmap = () => {
    const deployedTo = status.station >= 1 ? String(status.station - 1) : '';
    const row = {
      version: input.version,
      deployedTo,
      date: workflowInfo().startTime.toISOString().slice(0, 10),
      by: input.by,
    };
    inBackground(() => records.updateRoadmap(row), 'roadmap not updated');
  };
  const checkApprover = (by: string) => {
    if (input.approvers.length && !input.approvers.includes(by))
      throw new Error(`${by} is not an approver of this train; approvers: ${input.approvers.join(', ')}`);
  };
  const refuseWhenFinished = () => {
    if (finished()) throw new Error(`the train is ${status.state}`);
  };
  const auth = authorizer(trainId);
  /** Runs the validator's rules again after the signature check: other updates may have run meanwhile. */
  const stillValid = (validate: () => void) => {
    try {
      validate();
    } catch (err) {
      throw ApplicationFailure.nonRetryable((err as Error).message, 'Refused');
    }
  };
  setHandler(trainStatusQuery, () => status);

  const validateAck = (request: AcknowledgeRequest) => {
    if (!request?.by || !request.signature?.trim() || !request.reason?.trim())
      throw new Error('an acknowledgement needs who (by), the error signature and why it is known (reason)');
    refuseWhenFinished();
    if (status.acknowledged.some((a) => a.signature === request.signature))
      throw new Error(`"${request.signature}" is already acknowledged`);
  };
  setHandler(
    acknowledgeError,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'ack', request.signature));
      stillValid(() => validateAck(request));
      status.acknowledged.push({ signature: request.signature, by: who, reason: request.reason });
      note(`acknowledged known error "${request.signature}": ${request.reason}`, who);
      return status;
    },
    { validator: (request) => (auth.check(request, 'ack'), validateAck(request)) },
  );

  const validateApproval = (request: ApproveRequest) => {
    if (!request?.by) throw new Error('an approval must say who approves (by)');
    checkApprover(request.by);
    refuseWhenFinished();
    if (unfinishedRollback)
      throw new Error(
        `a rollback has not reached every host yet; \`signalbox train resume ${input.version}\` retries it before anything moves forward`,
      );
    if (status.nextStation === null && !(analysisRun && holdForHuman && status.state === 'blocked'))
      throw new Error('the train is already at group2; there is no station to approve');
    if (request.station !== undefined && request.station !== status.nextStation)
      throw new Error(`the next station is ${status.nextStation}, not ${request.station}`);
    if (approved) throw new Error(`${status.nextStation} is already approved`);
  };
  setHandler(
    approveStation,
    async (request) => {
      const identity = await auth.verify(request, 'approve', request.station ?? status.nextStation ?? undefined);
      stillValid(() => validateApproval({ ...request, by: identity.principal }));
      approved = true;
      lastApprover = describeIdentity(identity);
      note(`approved ${status.nextStation}${request.comment ? `: ${request.comment}` : ''}`, lastApprover);
      return status;
    },
    { validator: (request) => (auth.check(request, 'approve'), validateApproval(request)) },
  );

  const validateRollback = (request: TrainRollbackRequest) => {
    if (!request?.by || !request.reason?.trim()) throw new Error('a rollback needs who (by) and why (reason)');
    refuseWhenFinished();
    const to = request.toStation ?? 'start';
    const index = to === 'start' ? -1 : STATIONS.indexOf(checkStation(to));
    if (index >= status.station)
      throw new Error(
        `the train is at ${STATIONS[status.station] ?? 'start'}; rolling back to ${to} would not move any group back`,
      );
    if (pendingRollback) throw new Error('a rollback is already under way');
  };
  setHandler(
    rollbackTrain,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'rollback', request.toStation ?? 'start'));
      stillValid(() => validateRollback(request));
      pendingRollback = { ...request, by: who };
      const ticket = rollbacksDone;
      await condition(() => rollbacksDone > ticket || abortRequested);
      return status;
    },
    { validator: (request) => (auth.check(request, 'rollback'), validateRollback(request)) },
  );
  setHandler(
    abortTrain,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'abort'));
      stillValid(refuseWhenFinished);
      abortRequested = true;
      note(`abort requested${request.reason ? `: ${request.reason}` : ''}`, who);
      return status;
    },
    { validator: (request) => (auth.check(request, 'abort'), refuseWhenFinished()) },
  );
  const validatePause = () => {
    refuseWhenFinished();
    if (paused) throw new Error('the train is already paused');
  };
  setHandler(
    pauseTrain,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'pause'));
      stillValid(validatePause);
      paused = true;
      note('paused', who);
      record('paused', who);
      return status;
    },
    { validator: (request) => (auth.check(request, 'pause'), validatePause()) },
  );
  setHandler(
    resumeTrain,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'resume'));
      stillValid(refuseWhenFinished);
      paused = false;
      resumes++;
      note('resumed', who);
      return status;
    },
    { validator: (request) => (auth.check(request, 'resume'), refuseWhenFinished()) },
  );

  upsertSearchAttributes([
    { key: searchAttributes.kind, value: 'train' },
    { key: searchAttributes.version, value: input.version },
  ]);

  /**
   * Every reading of all groups this train took, and per group the first one taken since its version last
   * changed: a group's window before its move starts there, so it holds only traffic of the version it runs now.
   */
  const snapshots: Snapshot[] = [];
  /** Counters when the last move's watch ended: the start of the next move's before-window. */
  let sinceLastMove: Snapshot | null = null;
  const unchangedSince: Partial<Record<Station, number>> = {};
  /**
   * Landing: these groups' windows start again, at the next reading. That reading is taken at the top of the loop,
   * before the gate, so a group moved again after a rollback or a failed move is compared with the time between.
   */
  const versionsChange = (groups: readonly Station[]) => {
    if (!analysisRun) return;
    groups.forEach((g) => delete unchangedSince[g]);
    sinceLastMove = null;
  };
  /** Error counters per group; without them there is no watch, so a failure blocks the train before it moves. */
  const measure = async (when: string): Promise<Snapshot> => {
    try {
      if (!analysisRun) return { at: Date.now(), legacy: await measurements.groupCounters() };
      const reading = await measurements.measureGroups({ groups: [...STATIONS] });
      // Stamped when the answer is in, like every sample of a run (see analysis-run.ts).
      const snapshot = { at: Date.now(), reading };
      snapshots.push(snapshot);
      for (const group of STATIONS) unchangedSince[group] ??= snapshots.length - 1;
      return snapshot;
    } catch (err) {
      throw new Error(`metrics could not be read at ${when}: ${causeOf(err)}`);
    }
  };
  /** Where the group's window before its move starts: as far back as it has run its present version. */
  const windowBefore = (group: Station, fallback: Snapshot): Snapshot =>
    snapshots[unchangedSince[group] ?? -1] ?? fallback;

  let lastRange: string | undefined;
  /** Deploys a landed wikiversions release with the engine, then asks the wikis which version they run. */
  const deployAndVerify = async (
    station: number,
    release: Release,
    child: string,
    strategy: Strategy,
    by: string,
    movingBack = false,
  ) => {
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
    const versions = versionsAt(station);
    const expected = Object.fromEntries(Object.entries(catalog.groups).map(([db, group]) => [db, versions[group]]));
    await acts.verifyLiveVersions({
      expected,
      domains: catalog.domains,
      everyMs: input.verifyEveryMs,
      timeoutMs: input.verifyTimeoutMs,
    });
  };
  /** A move holds the config service's lease from landing to verification, so no other deploy lands in between. */
  const underLease = async <T>(by: string, work: () => Promise<T>): Promise<T> => {
    await acts.acquireServiceLease({ service: input.configService, workflowId: trainId, by });
    try {
      return await work();
    } finally {
      await CancellationScope.nonCancellable(() =>
        acts.releaseServiceLease({ service: input.configService, workflowId: trainId }),
      );
    }
  };
  /** Change ids are chosen once, at random, inside the workflow: a restarted train never finds an old change. */
  const newChangeId = (what: string) => `${trainId}-${what}-${uuid4()}`;

  /**
   * Moves groups back to the old version: lands wikiversions for `target` and deploys it to every host at once.
   * The target is only ever older than what runs now, so a failure here is reported and retried on `train
   * resume`, never answered by moving the fleet forward.
   */
  const rollBackTo = async (
    target: number,
    by: string,
    why: string,
    changeId = newChangeId('rollback'),
  ): Promise<boolean> => {
    // Backward names every group that goes back; after a failed forward move, the group that tried to move.
    const goingBack = STATIONS.slice(target + 1, Math.max(status.station, target + 1) + 1);
    const label = `roll back ${goingBack.join(', ')} to ${fromVersion}`;
    moves++;
    status.state = 'rolling-back';
    note(`${label}${why ? `: ${why}` : ''}`, by);
    report();
    try {
      await underLease(by, async () => {
        const versions = versionsAt(target);
        const subject = `${STATIONS[target + 1] ?? 'all'} wikis back to ${fromVersion}${why ? `: ${why}` : ''} (${trainId})`;
        versionsChange(goingBack);
        const change = await acts.landWikiversions({ versions, subject, changeId, by });
        lastRange = change.range;
        // The configuration repository now says `target`, and so does every host the rollback reaches.
        status.station = Math.min(status.station, target);
        unfinishedRollback = { target, by, why, changeId };
        await deployAndVerify(target, change.release, `config-${moves}`, ROLLBACK_STRATEGY, by, true);
      });
      unfinishedRollback = null;
      report();
      record(`${label}${why ? ` (${why})` : ''}: done and verified`, by, lastRange);
      updateRoadmap();
      return true;
    } catch (err) {
      unfinishedRollback ??= { target, by, why, changeId };
      report();
      await blockAfterFailure(
        `${label} did not finish: ${causeOf(err)}. No group moves forward until \`signalbox train resume ${input.version}\` has retried the rollback`,
      );
      return false;
    }
  };

  /** Moves the next station onto the new version, canaries first. On any failure the old wikiversions go back. */
  const moveForward = async (target: number, by: string): Promise<boolean> => {
    const label = `move ${STATIONS[target]} to ${input.version}`;
    moves++;
    status.state = 'deploying';
    note(label, by);
    report();
    try {
      await underLease(by, async () => {
        const subject = `${STATIONS[target]} wikis to ${input.version} (${trainId})`;
        versionsChange([STATIONS[target]]);
        const change = await acts.landWikiversions({
          versions: versionsAt(target),
          subject,
          changeId: newChangeId('move'),
          by,
        });
        lastRange = change.range;
        await deployAndVerify(target, change.release, `config-${moves}`, input.strategy, by);
      });
      status.station = target;
      report();
      record(`${label}: done and verified`, by, lastRange);
      updateRoadmap();
      return true;
    } catch (err) {
      const reason = `${label} failed: ${causeOf(err)}`;
      note(reason);
      if (failureType(err) === 'LeaseTaken') {
        // Refused before anything landed or any host was touched: there is nothing to put back.
        await blockAfterFailure(`${reason}; approve again once it is done`);
        return false;
      }
      // Never forward in reaction to a failure: every host goes back to the old wikiversions.
      if (await rollBackTo(status.station, 'signalbox', `${STATIONS[target]} did not pass its move`))
        await blockAfterFailure(`${reason}; rolled back and verified`);
      return false;
    }
  };

  report();
  // Staging takes a while: reading the groups now gives the first station's window before its move some length.
  if (analysisRun) await measure('the start of the train').catch(() => undefined);
  let code: Awaited<ReturnType<Activities['stageCode']>> | null = null;
  let staged = false;
  while (!staged && !abortRequested) {
    const resumesBefore = resumes;
    try {
      if (!code) {
        code = await acts.stageCode({ version: input.version, by: input.by });
        record(
          `branch cut and staged ${code.id}${code.patches.length ? ` with ${code.patches.length} security patch(es)` : ''}`,
          input.by,
          `wmf/${fromVersion}..${code.sha.slice(0, 12)}`,
        );
      }
      await executeChild(rolloutWorkflow, {
        workflowId: `${trainId}-stage${resumesBefore ? `-${resumesBefore}` : ''}`,
        args: [{ service: input.codeService, release: code, selector: {}, strategy: input.strategy, by: input.by }],
      });
      record(`synced ${code.id} to every host`, input.by);
      staged = true;
    } catch (err) {
      // The runbook's "git am failed" row, a failed build, or a sync that did not finish: nothing serves the new
      // code yet, and nothing ships until a person has looked; `train resume` tries again.
      const embargoed = embargoedDetails(err);
      if (embargoed) {
        const message = {
          id: `${trainId}-embargo${++recordSeq}`,
          subject: `[Train] ${input.version} blocked by a security patch (embargoed)`,
          body: `${embargoed}\n-- signalbox\n\n${input.link ?? trainId}`,
        };
        inBackground(() => records.sendPrivately(message), 'embargoed details not sent privately');
      }
      if (failureType(err) === 'StageBlocked') block([{ title: `stage of ${input.version}: ${causeOf(err)}` }]);
      else
        await blockAfterFailure(
          `stage of ${input.version} did not finish: ${causeOf(err)}; \`signalbox train resume ${input.version}\` tries again`,
        );
      await condition(() => resumes > resumesBefore || abortRequested);
      status.state = 'staging';
      status.blocker = undefined;
      announcedBlockers = '';
      report();
    }
  }

  /**
   * The deploy-window gate: sleeps until the next station's window opens, then moves when no blocker is open,
   * checking the blockers every poll. An approval moves it at any time. Returns how it was let through.
   */
  const windowGate = async (station: Station): Promise<'window' | 'approved' | 'interrupted'> => {
    const interrupted = () => approved || abortRequested || pendingRollback !== null;
    const windows = input.windows!;
    for (;;) {
      const wait = untilWindowOpens(new Date(), windows.stations[station], windows.timezone);
      if (wait > 0) {
        status.state = 'awaiting-window';
        status.windowOpensAt = new Date(Date.now() + wait).toISOString();
        report();
        note(`waiting for the ${station} window, ${describeWindow(windows.stations[station], windows.timezone)}`);
        if (await condition(interrupted, wait, { summary: `${station} window opens` })) break;
        continue;
      }
      status.windowOpensAt = undefined;
      if (input.blockersPollMs === undefined) return 'window';
      const blockers = await acts.openBlockers({ version: input.version });
      if (!blockers.open.length) {
        if (status.state === 'blocked') record('blockers resolved', 'signalbox');
        announcedBlockers = '';
        return 'window';
      }
      block(blockers.open);
      if (await condition(interrupted, input.blockersPollMs, { summary: 'open blockers' })) break;
    }
    return approved ? 'approved' : 'interrupted';
  };

  /**
   * The watch after a move: an analysis run judges the moved group's errors, traffic and latency against its own
   * window before the move, sample by sample, with the sequential judge. Null when an operator stepped in.
   */
  const watchGroup = async (
    moved: Station,
    from: Snapshot,
    to: Snapshot,
  ): Promise<Pick<AnalysisView, 'phase' | 'summary'> | null> => {
    if (!analysisRun) {
      const before = [to.legacy?.[moved] ?? NO_TRAFFIC, from.legacy?.[moved] ?? NO_TRAFFIC];
      const breach = await legacyWatchErrors(
        moved,
        delta(before[0], before[1]),
        signatureDelta(before[0].signatures, before[1].signatures),
      );
      return breach ? { phase: 'fail', summary: breach } : { phase: 'pass', summary: '' };
    }
    if (input.watchMs === 0) return { phase: 'pass', summary: 'no watch configured' };
    const everyMs = input.watch?.everyMs ?? DEFAULT_WATCH.everyMs;
    const windowSamples = Math.max(1, Math.ceil(input.watchMs / everyMs));
    return runAnalysis({
      subject: `${moved} after its move`,
      read: () => measurements.measureGroups({ groups: [moved], version: input.version }),
      everyMs: input.watchMs / windowSamples,
      spec: watchSpec(input.watch),
      context: () => ({
        windowSamples,
        reference: {
          [moved]: referenceBetween(
            { at: from.at, metrics: from.reading?.metrics },
            { at: to.at, metrics: to.reading?.metrics },
            moved,
          ),
        },
        acknowledged: status.acknowledged.map((a) => a.signature),
        baselineName: 'before the move',
      }),
      interrupted: () => abortRequested || pendingRollback !== null,
      progress: (view) => {
        status.watch = view;
        report();
      },
    });
  };

  /** The watch as trains that started before the analysis run had it: fixed thresholds per interval. */
  const legacyWatchErrors = async (
    moved: Station,
    before: Counts,
    signaturesBefore: Signatures,
  ): Promise<string | null> => {
    const thresholds = { ...DEFAULT_WATCH, ...input.watch };
    let previous = (await measure('the start of the watch')).legacy!;
    let unreadable = 0;
    for (let remaining = input.watchMs; remaining > 0;) {
      const step = Math.min(thresholds.everyMs, remaining);
      remaining -= step;
      if (
        await condition(() => abortRequested || pendingRollback !== null, step, {
          summary: `watch ${moved} on ${input.version}`,
        })
      )
        return null;
      // A failed read is not a measurement: the next one spans both intervals. Too many in a row, and a person decides.
      const now = await measurements.groupCounters().catch((err: unknown) => {
        if (++unreadable > WATCH_UNREADABLE_LIMIT)
          throw new Error(
            `the error watch of ${moved} could not read metrics ${unreadable} times in a row: ${causeOf(err)}`,
          );
        return null;
      });
      if (!now) continue;
      unreadable = 0;
      const [current, last] = [now[moved] ?? NO_TRAFFIC, previous[moved] ?? NO_TRAFFIC];
      const measured = judge(thresholds, delta(current, last), before, { subject: moved, baseline: 'before the move' });
      const unknown = newSignatures(
        signatureDelta(current.signatures, last.signatures),
        signaturesBefore,
        status.acknowledged.map((a) => a.signature),
        thresholds.newErrorMin,
      );
      previous = now;
      if (measured.verdict === 'fail') return measured.why;
      if (unknown.length)
        return `new error on ${moved}, seen ${unknown[0].count} times in ${Math.round(step / 1000)} s and never before the move: ${unknown[0].signature}`;
    }
    return null;
  };
  if (!staged) status.state = 'aborted';

  while (staged) {
    const resumesBefore = resumes;
    if (paused) {
      status.state = 'paused';
      report();
    }
    await condition(() => !paused || abortRequested || pendingRollback !== null);
    if (abortRequested) {
      status.state = 'aborted';
      break;
    }
    if (pendingRollback) {
      const request: TrainRollbackRequest = pendingRollback;
      const to = request.toStation ?? 'start';
      if (await rollBackTo(to === 'start' ? -1 : STATIONS.indexOf(to), request.by, request.reason))
        status.state = 'rolled-back';
      holdForHuman = true;
      pendingRollback = null;
      rollbacksDone++;
      report();
      continue;
    }
    if (unfinishedRollback) {
      // Only a person restarts this: `train resume` deploys the same rollback again, to the hosts it missed.
      await condition(() => resumes > resumesBefore || abortRequested || pendingRollback !== null);
      if (resumes > resumesBefore && unfinishedRollback) {
        const { target, by, why, changeId } = unfinishedRollback;
        if (await rollBackTo(target, by, why, changeId)) status.state = 'rolled-back';
      }
      continue;
    }
    if (status.station === STATIONS.length - 1) {
      if (analysisRun && holdForHuman) {
        // The last station's watch could not vouch for it: a person accepts it (approve) or rolls back.
        await condition(() => approved || abortRequested || pendingRollback !== null);
        if (!approved) continue;
        approved = false;
        holdForHuman = false;
        status.blocker = undefined;
      }
      status.state = 'complete';
      break;
    }
    const moved = STATIONS[status.station + 1];
    let movedBy = input.by;
    try {
      // The analysis run does without it (the group's window then starts at an earlier or a later reading).
      sinceLastMove ??= analysisRun
        ? await measure('the end of stage').catch(() => null)
        : await measure('the end of stage');
      const windowStart = sinceLastMove;
      if (input.gate === 'window' && !holdForHuman) {
        const gate = await windowGate(moved);
        if (gate === 'interrupted') continue;
        if (gate === 'window') movedBy = `signalbox (${moved} deploy window)`;
      } else if (!input.autoApprove || holdForHuman) {
        if (status.state !== 'blocked' && status.state !== 'rolled-back') status.state = 'awaiting-approval';
        report();
        await condition(() => approved || abortRequested || pendingRollback !== null);
        if (!approved) continue;
      }
      // Paused while the gate was open: nothing moves until resumed (the approval, if any, is kept).
      if (paused) continue;
      if (approved) movedBy = lastApprover ?? movedBy;
      approved = false;
      holdForHuman = false;
      status.blocker = undefined;
      status.state = 'deploying';
      report();
      const beforeMove = await measure(`${moved} before its move`);
      const referenceStart = analysisRun ? windowBefore(moved, windowStart ?? beforeMove) : windowStart!;
      if (!(await moveForward(status.station + 1, movedBy))) continue;
      status.state = 'watching';
      report();
      const verdict = await watchGroup(moved, referenceStart, beforeMove);
      // A failed read here is not worth a block: the next station's window then starts at its next reading.
      sinceLastMove = analysisRun
        ? await measure(`${moved} after its watch`).catch(() => null)
        : await measure(`${moved} after its watch`);
      // An approval given during the watch was for what it would find; a verdict other than pass asks again.
      if (analysisRun && verdict && verdict.phase !== 'pass') approved = false;
      if (verdict?.phase === 'fail') {
        // "Always roll back an unexplained error within an hour of a train deployment" (seed 000), without waiting.
        note(`error watch: ${verdict.summary}`);
        if (await rollBackTo(status.station - 1, 'signalbox error watch', `errors rose on ${moved}`)) {
          holdForHuman = true;
          block([{ title: `${moved} was rolled back by the error watch: ${verdict.summary}` }]);
        }
      } else if (verdict?.phase === 'inconclusive') {
        // The watch cannot vouch for the release (no metrics, too little traffic): a person decides, nothing moves.
        note(`error watch: ${verdict.summary}`);
        holdForHuman = true;
        block([
          { title: `the error watch of ${moved} could not decide: ${verdict.summary}; approve to go on, or roll back` },
        ]);
      }
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Metrics that cannot be read, blockers that cannot be listed: the train holds where it is and asks a person.
      await blockAfterFailure(`${moved}: ${causeOf(err)}; it stays where it is until a person approves or rolls back`);
    }
  }
  record(`train ${status.state}`, input.by);
  if (status.state === 'complete')
    announce(
      `[Train] ${input.version} is on all wikis`,
      `Train ${input.version} reached group2 and passed its error watch.\n-- signalbox\n\n${input.link ?? trainId}`,
    );
  report();
  await recordsInOrder;
  await condition(allHandlersFinished);
  return status;
}
