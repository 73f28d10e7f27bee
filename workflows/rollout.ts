// The rollout engine: one workflow per rollout of a release of one service to a set of hosts.
// Fetch runs wide and changes nothing that serves; then canaries, analysis, and rolling batches, each wave a child
// workflow so no history grows with the fleet. Past the failure limit, every host it switched goes back.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  executeChild,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { Release } from '../activities/releases';
import type { HostSelector } from '../activities/hosts';
import {
  abortRollout,
  pauseRollout,
  resumeRollout,
  rollbackRollout,
  rolloutStatusQuery,
  searchAttributes,
  describeIdentity,
  type Action,
  type ControlRequest,
  type HostResult,
  type SignedAction,
  type RolloutStatus,
} from './definitions';
import { authorizer } from './authorize';
import { runAnalysis } from './analysis-run';
import { viewLine, type AnalysisView } from './analysis/index';
import { chunk, planRollout, type RolloutPlan, type Strategy, type Wave } from './plan';

type Activities = ReturnType<typeof createActivities>;

/**
 * Host work is idempotent (each host keeps a journal of its steps), so a retry is always safe: attempts are not
 * counted, and a worker that dies every few seconds slows a rollout down but never fails it. The time bound is
 * what turns a real outage (the worker fleet gone for an hour) into a rollback.
 */
const hostActivities = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  scheduleToCloseTimeout: '2 hours',
  heartbeatTimeout: '15 seconds',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '10 seconds',
    nonRetryableErrorTypes: ['BadInput', 'DependencyNotLive', 'LeaseTaken'],
  },
});

/** Putting hosts back must finish: no time bound, and its failures are per-host results, not exceptions. */
const rollbackActivities = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', nonRetryableErrorTypes: ['BadInput'] },
});

/** One metrics read: a few quick tries; the run takes another sample an interval later, and counts failed reads. */
const measurements = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});

export interface RolloutInput {
  service: string;
  release: Release;
  selector: HostSelector;
  strategy: Strategy;
  by: string;
  /** Pause before each wave after the canaries until resumed (the "continue?" of an interactive deploy). */
  pauseAfterCanary?: boolean;
  /** The person's signed deploy statement, for a rollout started from outside a train. */
  signed?: SignedAction;
  /**
   * This rollout puts back an older release (a train rollback). A host that fails its checks then stays on it,
   * depooled for a person, instead of going back to the newer release it replaced.
   */
  movingBack?: boolean;
}

export interface WaveInput {
  service: string;
  release: Release;
  /** One or more batches, switched one after another: several when a tiny batch size would mean thousands of children. */
  batches: string[][];
  /** Failures this child may still see before it stops without starting its next batch. */
  failuresAllowed: number;
  by: string;
  runId: string;
  movingBack?: boolean;
  /** The parent rollout's run, which its rollback fences on each host. */
  fence?: string;
}

export interface WaveResult {
  /** Per batch: hosts on the release now, and failures. */
  batches: { done: number; failed: number }[];
  /** Failures, at most FAILURES_KEPT of them, with their count in `failed`. */
  failures: HostResult[];
  failed: number;
  /** Batches not started because the failure limit was crossed. */
  notStarted: number;
  /** Every failed host that may yet succeed on a retry (unreachable and the like), by name. */
  retryable: string[];
}

/** Hosts per activity inside a wave: small enough that a retry redoes little, large enough to keep events few. */
const HOSTS_PER_ACTIVITY = 25;
const HOSTS_PER_FETCH_ACTIVITY = 250;
/** Host activities in flight at once in one workflow, and wave children per rollout, at any fleet or batch size. */
const ACTIVITIES_IN_FLIGHT = 100;
const MAX_WAVE_CHILDREN = 100;
const FAILURES_KEPT = 50;

/** Runs `work` over `items`, at most `width` at a time; deterministic, so usable in workflow code. */
async function inParallel<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return results;
}

export async function rolloutWaveWorkflow(input: WaveInput): Promise<WaveResult> {
  const result: WaveResult = { batches: [], failures: [], failed: 0, notStarted: 0, retryable: [] };
  for (const [index, hosts] of input.batches.entries()) {
    if (result.failed > input.failuresAllowed) {
      result.notStarted = input.batches.length - index;
      break;
    }
    const parts = chunk(hosts, HOSTS_PER_ACTIVITY);
    const results = (
      await inParallel(parts, ACTIVITIES_IN_FLIGHT, (part) =>
        hostActivities.promoteHosts({
          service: input.service,
          release: input.release,
          hosts: part,
          by: input.by,
          runId: input.runId,
          concurrency: part.length,
          movingBack: input.movingBack,
          fence: input.fence,
        }),
      )
    ).flat();
    const failures = results.filter((r) => r.outcome === 'failed');
    result.batches.push({ done: results.length - failures.length, failed: failures.length });
    result.failed += failures.length;
    result.failures.push(...failures.slice(0, Math.max(0, FAILURES_KEPT - result.failures.length)));
    result.retryable.push(...failures.filter((f) => mayPassOnRetry(f)).map((f) => f.host));
  }
  return result;
}

/**
 * A host that could not be reached, fetched or switched may succeed later. One whose checks failed is already on
 * the release it was sent to: moving back, it stays there in the pool, named, rather than hold the rollback up.
 */
const mayPassOnRetry = (result: HostResult) =>
  result.code !== 'not-fetched' && !result.code?.startsWith('check-failed');
/** How long a rollback keeps retrying hosts it could not reach before it names them for a person: about 95 s. */
const ROLLBACK_RETRY_WAITS = ['5s', '10s', '20s', '30s', '30s'] as const;

/** Groups consecutive batches so that no rollout starts more than MAX_WAVE_CHILDREN children. */
export function groupBatches(waves: Wave[]): { name: string; waves: Wave[] }[] {
  const canary = waves[0]?.name === 'canary' ? [waves[0]] : [];
  const batches = waves.slice(canary.length);
  const perChild = Math.max(1, Math.ceil(batches.length / (MAX_WAVE_CHILDREN - canary.length)));
  const groups = chunk(batches, perChild).map((group) => ({
    name:
      group.length === 1 ? group[0].name : `${group[0].name}-${group[group.length - 1].name.replace(/^batch /, '')}`,
    waves: group,
  }));
  return [...canary.map((w) => ({ name: w.name, waves: [w] })), ...groups];
}

export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutStatus> {
  const runId = workflowInfo().workflowId;
  // A rollback fences this run on every host it rolls back, so a wave that died mid-switch never lands after it.
  const fence = workflowInfo().runId;
  upsertSearchAttributes([
    { key: searchAttributes.kind, value: 'rollout' },
    { key: searchAttributes.service, value: input.service },
    { key: searchAttributes.version, value: input.release.name },
  ]);
  const status: RolloutStatus = {
    service: input.service,
    release: input.release.id,
    phase: 'planning',
    paused: false,
    total: 0,
    done: 0,
    failed: 0,
    maxFail: 0,
    waves: [],
    failures: [],
  };
  let abortRequested = false;
  let rollbackRequested = false;
  /** Every host a wave was started on: the rollback's whole target, whatever the wave reported back. */
  const attempted: string[] = [];
  const finished = () => ['done', 'rolled-back', 'aborted'].includes(status.phase);
  const refuseWhenFinished = (_request?: ControlRequest) => {
    if (finished()) throw new Error(`rollout is already ${status.phase}`);
  };

  const auth = authorizer(runId);
  /** Checks the signature, then the rule again (other updates may have run meanwhile), then does `apply`. */
  const steer = (
    action: Action,
    rule: (request: ControlRequest) => void,
    apply: (request: ControlRequest, who: string) => void,
  ) =>
    [
      async (request: ControlRequest) => {
        const who = describeIdentity(await auth.verify(request, action));
        try {
          rule(request);
        } catch (err) {
          throw ApplicationFailure.nonRetryable((err as Error).message, 'Refused');
        }
        apply(request, who);
        return status;
      },
      { validator: (request: ControlRequest) => (auth.check(request, action), rule(request)) },
    ] as const;
  const notPaused = () => {
    refuseWhenFinished();
    if (!status.paused) throw new Error('rollout is not paused');
  };
  setHandler(rolloutStatusQuery, () => status);
  setHandler(
    pauseRollout,
    ...steer(
      'pause',
      refuseWhenFinished,
      (request, who) => (
        (status.paused = true),
        (status.pauseReason = `paused by ${who}${request.reason ? `: ${request.reason}` : ''}`)
      ),
    ),
  );
  setHandler(
    resumeRollout,
    ...steer('resume', notPaused, () => ((status.paused = false), (status.pauseReason = undefined))),
  );
  setHandler(
    abortRollout,
    ...steer(
      'abort',
      refuseWhenFinished,
      (_request, who) => ((abortRequested = true), (status.pauseReason = `abort requested by ${who}`)),
    ),
  );
  setHandler(
    rollbackRollout,
    ...steer(
      'rollback',
      refuseWhenFinished,
      (_request, who) => ((rollbackRequested = true), (status.pauseReason = `rollback requested by ${who}`)),
    ),
  );

  const report = () =>
    setCurrentDetails(
      [
        `**${input.service}** → \`${input.release.id}\`: ${status.phase}${status.paused ? ` (paused: ${status.pauseReason})` : ''}`,
        `${status.done}/${status.total} hosts done, ${status.failed} failed (limit ${status.maxFail})`,
        ...status.waves
          .slice(0, 20)
          .map((w) => `- ${w.name}: ${w.done}/${w.hosts}${w.failed ? `, ${w.failed} failed` : ''}`),
        ...(status.analysis ? [`analysis of ${viewLine(status.analysis)}`] : []),
      ].join('\n'),
    );
  const recordFailures = (failures: HostResult[], count = failures.length) => {
    status.failed += count;
    status.failures.push(...failures.slice(0, Math.max(0, FAILURES_KEPT - status.failures.length)));
  };

  /** Every host this run started on goes back to what it replaced, and nothing else; a host that cannot is named. */
  const rollBack = async (reason: string): Promise<never> => {
    status.phase = 'rolling-back';
    report();
    const results = (
      await inParallel(chunk(attempted, HOSTS_PER_FETCH_ACTIVITY), ACTIVITIES_IN_FLIGHT, (hosts) =>
        rollbackActivities.rollbackHosts({
          service: input.service,
          release: input.release,
          by: input.by,
          runId,
          hosts,
          movingBack: input.movingBack,
          fence,
        }),
      )
    ).flat();
    const stuck = results.filter((r) => r.outcome === 'failed');
    status.phase = 'rolled-back';
    status.failures.push(...stuck.slice(0, FAILURES_KEPT));
    report();
    const rolledBack = results.filter((r) => r.outcome === 'rolled-back').length;
    const shown = stuck
      .slice(0, 10)
      .map((s) => `${s.host} (${s.detail})`)
      .join('; ');
    throw ApplicationFailure.nonRetryable(
      `${reason}; rolled back ${rolledBack} hosts to what they ran before${stuck.length ? `; ${stuck.length} could not be rolled back and are left depooled for a person: ${shown}` : '; every host is on the release it ran before'}`,
      'RolloutRolledBack',
      status,
    );
  };

  // A deploy asked for from outside (not a train's own move) is an action of a person, signed like any other.
  if (!workflowInfo().parent) {
    const who = await auth
      .verify({ by: input.by, signed: input.signed }, 'deploy', input.release.id)
      .catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(err.message, 'Unauthorized');
      });
    input = { ...input, by: describeIdentity(who) };
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
    return await rollOut();
  } finally {
    await CancellationScope.nonCancellable(() =>
      rollbackActivities.releaseServiceLease({ service: input.service, workflowId: runId }),
    );
  }

  /**
   * Moving back, a host that was down is retried for a while: the old release is the only place it should go, and
   * a host back within a minute or two must not wait for a person. Whatever is still unreached stays named.
   */
  async function retryUnreached(hosts: string[]): Promise<void> {
    const request = { service: input.service, release: input.release, by: input.by, runId, movingBack: true, fence };
    // The first round, at once, also takes hosts whose fetch failed out of the pool (they are unreachable).
    for (const wait of [null, ...ROLLBACK_RETRY_WAITS]) {
      if (!hosts.length) return;
      if (wait) await sleep(wait);
      await inParallel(chunk(hosts, HOSTS_PER_FETCH_ACTIVITY), ACTIVITIES_IN_FLIGHT, (part) =>
        hostActivities.fetchToHosts({ ...request, hosts: part }),
      );
      const results = (
        await inParallel(chunk(hosts, HOSTS_PER_ACTIVITY), ACTIVITIES_IN_FLIGHT, (part) =>
          hostActivities.promoteHosts({ ...request, hosts: part, concurrency: part.length }),
        )
      ).flat();
      const recovered = new Set(results.filter((r) => r.outcome !== 'failed').map((r) => r.host));
      status.failed -= recovered.size;
      status.done += recovered.size;
      status.failures = status.failures.filter((f) => !recovered.has(f.host));
      hosts = results.filter((r) => r.outcome === 'failed' && mayPassOnRetry(r)).map((r) => r.host);
      report();
    }
  }

  /**
   * The canaries against the rest of the pooled fleet, on workflow timers, until the sequential judge decides.
   * Null when the operator stepped in (the wave loop then rolls back or stops).
   */
  async function analyzeCanaries(canaries: string[]): Promise<AnalysisView | null> {
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
      interrupted: () => rollbackRequested || abortRequested,
      progress: (view) => {
        status.analysis = view;
        report();
      },
    });
  }

  async function rollOut(): Promise<RolloutStatus> {
    const retryable: string[] = [];
    const { current, canaryHosts } = await hostActivities.currentReleases({
      service: input.service,
      release: input.release,
      selector: input.selector,
    });
    let plan: RolloutPlan;
    try {
      plan = planRollout(current, input.release.id, {
        ...input.strategy,
        canaryHosts: input.strategy.canaryHosts ?? canaryHosts,
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

    status.phase = 'fetching';
    report();
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
        recordFailures(failures);
        failures.forEach((f) => fetchFailed.add(f.host));
      }
    } catch (err) {
      status.phase = 'aborted';
      report();
      const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
      throw ApplicationFailure.nonRetryable(
        `fetch did not finish (${cause}); nothing was switched`,
        'RolloutFailed',
        status,
      );
    }
    // Moving back, a host that cannot fetch now is tried again once the others are back (see retryUnreached).
    // Behind a patch: rollouts that were running before rollbacks retried their hosts replay as they ran.
    const retriesUnreached = input.movingBack === true && patched('rollback-retries-unreached');
    if (retriesUnreached) retryable.push(...fetchFailed);
    if (status.failed > status.maxFail) {
      status.phase = 'aborted';
      report();
      throw ApplicationFailure.nonRetryable(
        `${status.failed} hosts failed to fetch, more than the limit of ${status.maxFail}; nothing was switched`,
        'RolloutFailed',
        status,
      );
    }

    for (const [index, child] of children.entries()) {
      const batches = child.waves.map((w) => w.hosts.filter((h) => !fetchFailed.has(h)));
      const isCanary = child.name === 'canary';
      status.phase = isCanary ? 'canary' : 'batches';
      report();
      await condition(() => !status.paused || abortRequested || rollbackRequested);
      if (rollbackRequested) return rollBack('rollback requested by operator');
      if (abortRequested) {
        // Abort stops before the next wave; what is switched stays, each host checked and pooled.
        status.phase = 'aborted';
        report();
        return status;
      }
      attempted.push(...batches.flat());
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
          `${child.name} did not finish: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}`,
        );
      }
      recordFailures(result.failures, result.failed);
      retryable.push(...(result.retryable ?? []));
      const ok = result.batches.reduce((n, b) => n + b.done, 0);
      status.done += ok;
      status.waves[index].done = ok;
      status.waves[index].failed = result.failed + (status.waves[index].hosts - batches.flat().length);
      report();
      if (status.failed > status.maxFail) {
        return rollBack(
          `${status.failed} hosts failed, more than the limit of ${status.maxFail}: ${result.failures
            .slice(0, 3)
            .map((f) => `${f.host}: ${f.detail}`)
            .join('; ')}`,
        );
      }
      if (isCanary) {
        status.phase = 'analysis';
        report();
        const failedHosts = new Set(result.failures.map((f) => f.host));
        const canaries = batches.flat().filter((h) => !failedHosts.has(h));
        // Behind a patch: rollouts that analysed canaries in one sleeping activity replay as they ran.
        if (patched('canary-analysis-run')) {
          const verdict = await analyzeCanaries(canaries);
          if (verdict?.phase === 'fail') return rollBack(`canary analysis failed: ${verdict.summary}`);
          if (verdict?.phase === 'inconclusive' || (verdict && input.pauseAfterCanary)) {
            status.paused = true;
            status.pauseReason =
              verdict.phase === 'inconclusive'
                ? `canary analysis inconclusive: ${verdict.summary}; resume or roll back`
                : 'canaries are live; resume to continue';
          }
          continue;
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
        if (verdict.result === 'fail') return rollBack(`canary analysis failed: ${verdict.summary}`);
        if (verdict.result === 'inconclusive' || input.pauseAfterCanary) {
          status.paused = true;
          status.pauseReason =
            verdict.result === 'inconclusive'
              ? `canary analysis inconclusive: ${verdict.summary}; resume or roll back`
              : 'canaries are live; resume to continue';
        }
      }
    }
    if (retriesUnreached) await retryUnreached(retryable);
    if (status.paused || rollbackRequested) {
      // Paused after the last wave (a canary-only run): still the operator's call.
      await condition(() => !status.paused || abortRequested || rollbackRequested);
      if (rollbackRequested) return rollBack('rollback requested by operator');
    }

    // A release is stable once every target host runs it; a canary-only run leaves last-stable alone.
    const complete = status.done === status.total;
    await inParallel(
      chunk(complete ? [...plan.alreadyOnRelease, ...pending] : [], HOSTS_PER_FETCH_ACTIVITY),
      ACTIVITIES_IN_FLIGHT,
      (hosts) =>
        hostActivities.markStable({ service: input.service, release: input.release, by: input.by, runId, hosts }),
    );
    status.phase = 'done';
    report();
    return status;
  }
}
