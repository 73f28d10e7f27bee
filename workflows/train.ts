// The weekly train: stage the new branch on every host, then move testwikis, group0, group1 and group2 onto it,
// one station at a time. Every move is a wikiversions.json change landed in the config repository and deployed by
// the rollout engine (canaries first), then verified by asking the wikis which version they run.
import {
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
import { renderTrain } from './render';
import { delta, judge, type Counts, type Thresholds } from './analysis';
import { rolloutWorkflow } from './rollout';

type Activities = ReturnType<typeof createActivities>;

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { maximumAttempts: 5, initialInterval: '1 second', nonRetryableErrorTypes: ['BadInput', 'VersionMismatch'] },
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
  watch?: Thresholds & { everyMs: number };
  strategy: Strategy;
  codeService: string;
  configService: string;
  by: string;
}

const NO_TRAFFIC: Counts = { requests: 0, errors: 0 };
const DEFAULT_WATCH = { everyMs: 60_000, maxErrorRate: 0.01, maxRatioToBaseline: 5, minRequests: 50 };

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
    events: [],
  };
  let approved = false;
  let paused = false;
  let abortRequested = false;
  let holdForHuman = false;
  let pendingRollback: TrainRollbackRequest | null = null;
  let rollbacksDone = 0;
  let moves = 0;

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

  setHandler(trainStatusQuery, () => status);
  setHandler(
    approveStation,
    (request) => {
      approved = true;
      note(`approved ${status.nextStation}${request.comment ? `: ${request.comment}` : ''}`, request.by);
      return status;
    },
    {
      validator: (request) => {
        if (!request?.by) throw new Error('an approval must say who approves (by)');
        if (input.approvers.length && !input.approvers.includes(request.by)) throw new Error(`${request.by} is not an approver of this train; approvers: ${input.approvers.join(', ')}`);
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
  setHandler(resumeTrain, (request) => { paused = false; note('resumed', request.by); });

  upsertSearchAttributes([
    { key: searchAttributes.kind, value: 'train' },
    { key: searchAttributes.version, value: input.version },
  ]);

  /** Lands wikiversions for `target`, deploys it with the engine and verifies it. False when it had to undo. */
  const moveTo = async (target: number, by: string, why: string): Promise<boolean> => {
    const forward = target > status.station;
    const label = `${forward ? 'move' : 'roll back'} ${STATIONS[target] ?? 'all groups'} to ${forward ? input.version : fromVersion}`;
    moves++;
    status.state = forward ? 'deploying' : 'rolling-back';
    note(`${label}${why ? `: ${why}` : ''}`, by);
    report();
    const deploy = async (station: number, attempt: string, strategy: Strategy) => {
      const versions = versionsAt(station);
      const subject = `${STATIONS[station] ?? 'all'} wikis ${station >= 0 ? `to ${input.version}` : `back to ${fromVersion}`} (${trainId})`;
      const change = await acts.landWikiversions({ versions, subject, changeId: `${trainId}-${attempt}`, by });
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
      note(`${STATIONS[target] ?? 'all groups'} verified on ${forward ? input.version : fromVersion}`);
      report();
      return true;
    } catch (err) {
      const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
      status.blocker = `${label} failed: ${cause}`;
      note(status.blocker);
      // The engine has put the hosts back; put the config repository back to match them.
      await deploy(status.station, `config-${moves}-undo`, ROLLBACK_STRATEGY);
      status.state = 'blocked';
      holdForHuman = true;
      report();
      return false;
    }
  };

  report();
  const code = await acts.stageCode({ version: input.version, by: input.by });
  note(`staged ${code.id} from ${code.sha.slice(0, 12)}`);
  await executeChild(rolloutWorkflow, {
    workflowId: `${trainId}-stage`,
    args: [{ service: input.codeService, release: code, selector: {}, strategy: input.strategy, by: input.by }],
  });
  note(`${code.id} is on every host`);

  /**
   * The watch after a move: timers measure the moved group's errors in each interval and compare them with its
   * rate before the move. Returns why it breached, or null when the window passed (or an operator stepped in).
   */
  const watchErrors = async (moved: Station, before: Counts): Promise<string | null> => {
    const thresholds = input.watch ?? DEFAULT_WATCH;
    let previous = await acts.groupCounters();
    for (let remaining = input.watchMs; remaining > 0; ) {
      const step = Math.min(thresholds.everyMs, remaining);
      remaining -= step;
      if (await condition(() => abortRequested || pendingRollback !== null, step, { summary: `watch ${moved} on ${input.version}` })) return null;
      const now = await acts.groupCounters();
      const measured = judge(thresholds, delta(now[moved] ?? NO_TRAFFIC, previous[moved] ?? NO_TRAFFIC), before, { subject: moved, baseline: 'before the move' });
      previous = now;
      if (measured.verdict === 'fail') return measured.why;
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
    if (!input.autoApprove || holdForHuman) {
      if (status.state !== 'blocked' && status.state !== 'rolled-back') status.state = 'awaiting-approval';
      report();
      await condition(() => approved || abortRequested || pendingRollback !== null);
      if (!approved) continue;
    }
    approved = false;
    holdForHuman = false;
    status.blocker = undefined;
    const moved = STATIONS[status.station + 1];
    status.state = 'deploying';
    report();
    const beforeMove = await acts.groupCounters();
    if (!(await moveTo(status.station + 1, input.by, ''))) continue;
    status.state = 'watching';
    report();
    const breach = await watchErrors(moved, delta(beforeMove[moved] ?? NO_TRAFFIC, sinceLastMove[moved] ?? NO_TRAFFIC));
    sinceLastMove = await acts.groupCounters();
    if (breach) {
      // "Always roll back an unexplained error within an hour of a train deployment" (seed 000), without waiting.
      note(`error watch: ${breach}`);
      if (await moveTo(status.station - 1, 'signalbox error watch', `errors rose on ${moved}`)) {
        status.state = 'blocked';
        status.blocker = `${moved} was rolled back by the error watch: ${breach}`;
        holdForHuman = true;
        report();
      }
    }
  }
  note(`train ${status.state}`);
  report();
  await condition(allHandlersFinished);
  return status;
}
