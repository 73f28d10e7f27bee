// The weekly train: stage the new branch on every host, then move testwikis, group0, group1 and group2 onto it,
// one station at a time. Every move is a wikiversions.json change landed in the config repository and deployed by
// the rollout engine (canaries first), then verified by asking the wikis which version they run.
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  executeChild,
  proxyActivities,
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
  type ControlRequest,
  type TrainRollbackRequest,
  type TrainStatus,
} from './definitions';
import { STATIONS, checkStation, checkVersion, type Station } from './names';
import type { Strategy } from './plan';
import { renderStatusUpdate, renderTrain, type Blocker } from './render';
import { delta, judge, newSignatures, signatureDelta, type Counts, type GroupCounts, type Signatures, type Thresholds } from './analysis';
import { describeWindow, untilWindowOpens, type DeployWindows } from './windows';
import { rolloutWorkflow } from './rollout';

type Activities = ReturnType<typeof createActivities>;

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { maximumAttempts: 5, initialInterval: '1 second', nonRetryableErrorTypes: ['BadInput', 'VersionMismatch', 'StageBlocked'] },
});

/** Records and notifications must not hold up a deploy or a rollback: a few quick tries, then a note. */
const records = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, initialInterval: '1 second' },
});

export interface TrainInput {
  version: string;
  fromVersion?: string;
  autoApprove: boolean;
  approvers: string[];
  verifyEveryMs: number;
  verifyTimeoutMs: number;
  watchMs: number;
  /** How the error watch judges each interval after a station move. */
  watch?: Thresholds & { everyMs: number; newErrorMin?: number };
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
const DEFAULT_WATCH = { everyMs: 60_000, maxErrorRate: 0.01, maxRatioToBaseline: 5, minRequests: 50, newErrorMin: 5 };

const failureType = (err: unknown) => (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause.type : undefined);
const causeOf = (err: unknown) => (err as { cause?: Error }).cause?.message ?? (err as Error).message;

/** Rollbacks must not stop at a down host or wait for canaries: every host at once, failures reported, not fatal. */
const ROLLBACK_STRATEGY: Strategy = { canary: null, batch: '100%', maxFail: '100%', fetchConcurrency: 80 };

export async function trainWorkflow(input: TrainInput): Promise<TrainStatus> {
  const trainId = workflowInfo().workflowId;
  try {
    checkVersion(input.version);
    if (input.fromVersion !== undefined) checkVersion(input.fromVersion);
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'BadInput');
  }
  const { versions: before, catalog } = await acts.readStations();
  const fromVersion = input.fromVersion ?? before.group2;
  if (fromVersion === input.version) throw ApplicationFailure.nonRetryable(`group2 already runs ${input.version}; pass --from to say which version to move from`, 'BadInput');
  let reached = -1;
  while (reached < STATIONS.length - 1 && before[STATIONS[reached + 1]] === input.version) reached++;

  const versionsAt = (station: number) => Object.fromEntries(STATIONS.map((s, i) => [s, i <= station ? input.version : fromVersion])) as Record<Station, string>;
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
  let retryStage = false;
  let lastApprover: string | undefined;
  let recordSeq = 0;

  const note = (what: string, by?: string) => {
    status.events.push({ at: new Date().toISOString(), what, by });
    if (status.events.length > 200) status.events.splice(0, status.events.length - 200);
  };
  const report = () => {
    status.versions = versionsAt(status.station);
    status.nextStation = STATIONS[status.station + 1] ?? null;
    upsertSearchAttributes([{ key: searchAttributes.station, value: STATIONS[status.station] ?? 'start' }]);
    setCurrentDetails(['```', renderTrain(status), '```', ...status.events.slice(-5).map((e) => `- ${e.at} ${e.what}${e.by ? ` (${e.by})` : ''}`)].join('\n'));
  };
  const finished = () => ['complete', 'aborted'].includes(status.state);

  /** A SAL line for an action (who, what, commit range), also logged to IRC. Never holds up the train. */
  const record = async (what: string, by: string, range?: string) => {
    note(what, by);
    const entry = { id: `${trainId}#${++recordSeq}`, at: new Date().toISOString(), by, what: `${input.version}: ${what}`, range };
    await records.logAction(entry).catch((err) => note(`SAL entry not written: ${causeOf(err)}`));
  };
  const announce = async (subject: string, body: string) => {
    await records.sendNotification({ id: `${trainId}-msg${++recordSeq}`, subject, body }).catch((err) => note(`notification not sent: ${causeOf(err)}`));
  };
  /** Marks the train blocked and sends the status update, once per distinct set of blockers. */
  let announcedBlockers = '';
  const block = async (blockers: Blocker[]) => {
    status.state = 'blocked';
    status.blocker = blockers.map((b) => b.title).join('; ');
    report();
    const key = JSON.stringify(blockers);
    if (key === announcedBlockers) return;
    announcedBlockers = key;
    await record(`blocked: ${status.blocker}`, 'signalbox');
    const update = renderStatusUpdate(status, blockers, { train: input.link ?? trainId });
    await announce(update.subject, update.body);
  };
  /** The roadmap page shows the highest group on the new version (0, 1, 2), as release engineers set it by hand. */
  const updateRoadmap = async () => {
    const deployedTo = status.station >= 1 ? String(status.station - 1) : '';
    await records.updateRoadmap({ version: input.version, deployedTo, date: workflowInfo().startTime.toISOString().slice(0, 10), by: input.by }).catch((err) => note(`roadmap not updated: ${causeOf(err)}`));
  };
  const checkApprover = (by: string) => {
    if (input.approvers.length && !input.approvers.includes(by)) throw new Error(`${by} is not an approver of this train; approvers: ${input.approvers.join(', ')}`);
  };
  setHandler(trainStatusQuery, () => status);
  setHandler(
    acknowledgeError,
    (request) => {
      status.acknowledged.push({ signature: request.signature, by: request.by, reason: request.reason });
      note(`acknowledged known error "${request.signature}": ${request.reason}`, request.by);
      return status;
    },
    {
      validator: (request) => {
        if (!request?.by || !request.signature?.trim() || !request.reason?.trim()) throw new Error('an acknowledgement needs who (by), the error signature and why it is known (reason)');
        checkApprover(request.by);
        if (finished()) throw new Error(`the train is ${status.state}`);
        if (status.acknowledged.some((a) => a.signature === request.signature)) throw new Error(`"${request.signature}" is already acknowledged`);
      },
    },
  );
  setHandler(
    approveStation,
    (request) => {
      approved = true;
      lastApprover = request.by;
      note(`approved ${status.nextStation}${request.comment ? `: ${request.comment}` : ''}`, request.by);
      return status;
    },
    {
      validator: (request) => {
        if (!request?.by) throw new Error('an approval must say who approves (by)');
        checkApprover(request.by);
        if (finished()) throw new Error(`the train is ${status.state}`);
        if (status.nextStation === null) throw new Error('the train is already at group2; there is no station to approve');
        if (request.station !== undefined && request.station !== status.nextStation) throw new Error(`the next station is ${status.nextStation}, not ${request.station}`);
        if (approved) throw new Error(`${status.nextStation} is already approved`);
      },
    },
  );
  setHandler(
    rollbackTrain,
    async (request) => {
      pendingRollback = request;
      const ticket = rollbacksDone;
      await condition(() => rollbacksDone > ticket || abortRequested);
      return status;
    },
    {
      validator: (request) => {
        if (!request?.by || !request.reason?.trim()) throw new Error('a rollback needs who (by) and why (reason)');
        if (finished()) throw new Error(`the train is ${status.state}`);
        const to = request.toStation ?? 'start';
        const index = to === 'start' ? -1 : STATIONS.indexOf(checkStation(to));
        if (index >= status.station) throw new Error(`the train is at ${STATIONS[status.station] ?? 'start'}; rolling back to ${to} would not move any group back`);
        if (pendingRollback) throw new Error('a rollback is already under way');
      },
    },
  );
  setHandler(abortTrain, (request) => {
    abortRequested = true;
    note(`abort requested${request.reason ? `: ${request.reason}` : ''}`, request.by);
    return status;
  }, { validator: (_request: ControlRequest) => { if (finished()) throw new Error(`the train is ${status.state}`); } });
  setHandler(pauseTrain, (request) => { paused = true; note('paused', request.by); });
  setHandler(resumeTrain, (request) => {
    paused = false;
    retryStage = true;
    note('resumed', request.by);
  });

  upsertSearchAttributes([
    { key: searchAttributes.kind, value: 'train' },
    { key: searchAttributes.version, value: input.version },
  ]);

  /** Lands wikiversions for `target`, deploys it with the engine and verifies it. False when it had to undo. */
  const moveTo = async (target: number, by: string, why: string): Promise<boolean> => {
    const forward = target > status.station;
    // Forward names the station reached; backward names every group that goes back.
    const groups = forward ? STATIONS[target] : STATIONS.slice(target + 1, status.station + 1).join(', ');
    const label = `${forward ? 'move' : 'roll back'} ${groups} to ${forward ? input.version : fromVersion}`;
    moves++;
    status.state = forward ? 'deploying' : 'rolling-back';
    note(`${label}${why ? `: ${why}` : ''}`, by);
    report();
    let lastRange: string | undefined;
    const deploy = async (station: number, attempt: string, strategy: Strategy) => {
      const versions = versionsAt(station);
      const subject = `${STATIONS[station] ?? 'all'} wikis ${station >= 0 ? `to ${input.version}` : `back to ${fromVersion}`} (${trainId})`;
      const change = await acts.landWikiversions({ versions, subject, changeId: `${trainId}-${attempt}`, by });
      lastRange = change.range;
      await executeChild(rolloutWorkflow, {
        workflowId: `${trainId}-${attempt}`,
        args: [{ service: input.configService, release: change.release, selector: {}, strategy, by }],
      });
      const expected = Object.fromEntries(Object.entries(catalog.groups).map(([db, group]) => [db, versions[group]]));
      await acts.verifyLiveVersions({ expected, domains: catalog.domains, everyMs: input.verifyEveryMs, timeoutMs: input.verifyTimeoutMs });
    };
    try {
      await deploy(target, `config-${moves}`, forward ? input.strategy : ROLLBACK_STRATEGY);
      status.station = target;
      report();
      await record(`${label}${why ? ` (${why})` : ''}: done and verified`, by, lastRange);
      await updateRoadmap();
      return true;
    } catch (err) {
      // The engine has put the hosts back; put the config repository back to match them.
      await deploy(status.station, `config-${moves}-undo`, ROLLBACK_STRATEGY);
      holdForHuman = true;
      await block([{ title: `${label} failed: ${causeOf(err)}` }]);
      return false;
    }
  };

  report();
  let code: Awaited<ReturnType<Activities['stageCode']>> | null = null;
  while (!code && !abortRequested) {
    try {
      code = await acts.stageCode({ version: input.version, by: input.by });
    } catch (err) {
      if (failureType(err) !== 'StageBlocked') throw err;
      // The runbook's "git am failed" row, and a failed build: nothing ships until it is fixed; `train resume` tries again.
      retryStage = false;
      await block([{ title: `stage of ${input.version}: ${causeOf(err)}` }]);
      await condition(() => retryStage || abortRequested);
      status.state = 'staging';
      status.blocker = undefined;
      announcedBlockers = '';
      report();
    }
  }
  if (code) {
    await record(`branch cut and staged ${code.id}${code.patches.length ? ` with ${code.patches.length} security patch(es)` : ''}`, input.by, `wmf/${fromVersion}..${code.sha.slice(0, 12)}`);
    await executeChild(rolloutWorkflow, {
      workflowId: `${trainId}-stage`,
      args: [{ service: input.codeService, release: code, selector: {}, strategy: input.strategy, by: input.by }],
    });
    await record(`synced ${code.id} to every host`, input.by);
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
        if (status.state === 'blocked') await record('blockers resolved', 'signalbox');
        announcedBlockers = '';
        return 'window';
      }
      await block(blockers.open);
      if (await condition(interrupted, input.blockersPollMs, { summary: 'open blockers' })) break;
    }
    return approved ? 'approved' : 'interrupted';
  };

  /**
   * The watch after a move: timers measure the moved group's errors in each interval and compare them with its
   * rate before the move. Returns why it breached, or null when the window passed (or an operator stepped in).
   */
  const watchErrors = async (moved: Station, before: Counts, signaturesBefore: Signatures): Promise<string | null> => {
    const thresholds = { ...DEFAULT_WATCH, ...input.watch };
    let previous = await acts.groupCounters();
    for (let remaining = input.watchMs; remaining > 0; ) {
      const step = Math.min(thresholds.everyMs, remaining);
      remaining -= step;
      if (await condition(() => abortRequested || pendingRollback !== null, step, { summary: `watch ${moved} on ${input.version}` })) return null;
      const now = await acts.groupCounters();
      const [current, last] = [now[moved] ?? NO_TRAFFIC, previous[moved] ?? NO_TRAFFIC];
      const measured = judge(thresholds, delta(current, last), before, { subject: moved, baseline: 'before the move' });
      const unknown = newSignatures(signatureDelta(current.signatures, last.signatures), signaturesBefore, status.acknowledged.map((a) => a.signature), thresholds.newErrorMin);
      previous = now;
      if (measured.verdict === 'fail') return measured.why;
      if (unknown.length) return `new error on ${moved}, seen ${unknown[0].count} times in ${Math.round(step / 1000)} s and never before the move: ${unknown[0].signature}`;
    }
    return null;
  };
  let sinceLastMove = await acts.groupCounters();

  for (;;) {
    await condition(() => !paused || abortRequested || pendingRollback !== null);
    if (abortRequested) {
      status.state = 'aborted';
      break;
    }
    if (pendingRollback) {
      const request: TrainRollbackRequest = pendingRollback;
      const to = request.toStation ?? 'start';
      await moveTo(to === 'start' ? -1 : STATIONS.indexOf(to), request.by, request.reason);
      if (status.state !== 'blocked') status.state = 'rolled-back';
      holdForHuman = true;
      pendingRollback = null;
      rollbacksDone++;
      report();
      continue;
    }
    if (status.station === STATIONS.length - 1) {
      status.state = 'complete';
      break;
    }
    const moved = STATIONS[status.station + 1];
    let movedBy = input.by;
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
    if (approved) movedBy = lastApprover ?? movedBy;
    approved = false;
    holdForHuman = false;
    status.blocker = undefined;
    status.state = 'deploying';
    report();
    const beforeMove = await acts.groupCounters();
    if (!(await moveTo(status.station + 1, movedBy, ''))) continue;
    status.state = 'watching';
    report();
    const before = [beforeMove[moved] ?? NO_TRAFFIC, sinceLastMove[moved] ?? NO_TRAFFIC];
    const breach = await watchErrors(moved, delta(before[0], before[1]), signatureDelta(before[0].signatures, before[1].signatures));
    sinceLastMove = await acts.groupCounters();
    if (breach) {
      // "Always roll back an unexplained error within an hour of a train deployment" (seed 000), without waiting.
      note(`error watch: ${breach}`);
      if (await moveTo(status.station - 1, 'signalbox error watch', `errors rose on ${moved}`)) {
        holdForHuman = true;
        await block([{ title: `${moved} was rolled back by the error watch: ${breach}` }]);
      }
    }
  }
  await record(`train ${status.state}`, input.by);
  if (status.state === 'complete') await announce(`[Train] ${input.version} is on all wikis`, `Train ${input.version} reached group2 and passed its error watch.\n-- signalbox\n\n${input.link ?? trainId}`);
  report();
  await condition(allHandlersFinished);
  return status;
}
