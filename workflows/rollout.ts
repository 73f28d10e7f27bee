// The rollout engine: one workflow per rollout of a release of one service to a set of hosts.
// Fetch runs wide and changes nothing that serves; then canaries, analysis, and rolling batches, each wave a child
// workflow so no history grows with the fleet. Past the failure limit, every host it switched goes back.
import {
  ApplicationFailure,
  condition,
  executeChild,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
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
  type ControlRequest,
  type HostResult,
  type RolloutStatus,
} from './definitions';
import { chunk, planRollout, type Strategy } from './plan';

type Activities = ReturnType<typeof createActivities>;

const hostActivities = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { maximumAttempts: 5, initialInterval: '1 second', nonRetryableErrorTypes: ['BadInput'] },
});

export interface RolloutInput {
  service: string;
  release: Release;
  selector: HostSelector;
  strategy: Strategy;
  by: string;
  /** Pause before each wave after the canaries until resumed (the "continue?" of an interactive deploy). */
  pauseAfterCanary?: boolean;
}

export interface WaveInput {
  service: string;
  release: Release;
  hosts: string[];
  by: string;
  runId: string;
}

/** Hosts per activity inside a wave: small enough that a retry redoes little, large enough to keep events few. */
const HOSTS_PER_ACTIVITY = 25;
const HOSTS_PER_FETCH_ACTIVITY = 250;

export async function rolloutWaveWorkflow(input: WaveInput): Promise<HostResult[]> {
  const parts = chunk(input.hosts, HOSTS_PER_ACTIVITY);
  const results = await Promise.all(parts.map((hosts) => hostActivities.promoteHosts({ ...input, hosts, concurrency: hosts.length })));
  return results.flat();
}

export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutStatus> {
  const runId = workflowInfo().workflowId;
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
  const touched: string[] = [];
  const finished = () => ['done', 'rolled-back', 'aborted'].includes(status.phase);
  const refuseWhenFinished = (_request?: ControlRequest) => {
    if (finished()) throw new Error(`rollout is already ${status.phase}`);
  };

  setHandler(rolloutStatusQuery, () => status);
  setHandler(pauseRollout, (request) => ((status.paused = true), (status.pauseReason = `paused by ${request.by}${request.reason ? `: ${request.reason}` : ''}`), status), {
    validator: refuseWhenFinished,
  });
  setHandler(resumeRollout, () => ((status.paused = false), (status.pauseReason = undefined), status), {
    validator: (_request: ControlRequest) => {
      refuseWhenFinished();
      if (!status.paused) throw new Error('rollout is not paused');
    },
  });
  setHandler(abortRollout, (request) => ((abortRequested = true), (status.pauseReason = `abort requested by ${request.by}`), status), { validator: refuseWhenFinished });
  setHandler(rollbackRollout, (request) => ((rollbackRequested = true), (status.pauseReason = `rollback requested by ${request.by}`), status), { validator: refuseWhenFinished });

  const report = () =>
    setCurrentDetails(
      [
        `**${input.service}** → \`${input.release.id}\`: ${status.phase}${status.paused ? ` (paused: ${status.pauseReason})` : ''}`,
        `${status.done}/${status.total} hosts done, ${status.failed} failed (limit ${status.maxFail})`,
        ...status.waves.map((w) => `- ${w.name}: ${w.done}/${w.hosts}${w.failed ? `, ${w.failed} failed` : ''}`),
      ].join('\n'),
    );

  const rollBack = async (reason: string): Promise<never> => {
    status.phase = 'rolling-back';
    report();
    const results = (
      await Promise.all(
        chunk(touched, HOSTS_PER_FETCH_ACTIVITY).map((hosts) => hostActivities.rollbackHosts({ service: input.service, release: input.release, by: input.by, runId, hosts })),
      )
    ).flat();
    const stuck = results.filter((r) => r.outcome === 'failed');
    status.phase = 'rolled-back';
    report();
    throw ApplicationFailure.nonRetryable(
      `${reason}; rolled back ${results.filter((r) => r.outcome === 'rolled-back').length} hosts${stuck.length ? `, ${stuck.length} could not be rolled back: ${stuck.map((s) => `${s.host} (${s.detail})`).join('; ')}` : ''}`,
      'RolloutRolledBack',
      status,
    );
  };

  // Before any host is touched: a change whose Depends-On is not live yet must not go out (refuses, never retried).
  if (patched('depends-on-check')) await hostActivities.checkDependsOn({ service: input.service, release: input.release, selector: input.selector });
  const { current, canaryHosts } = await hostActivities.currentReleases({ service: input.service, release: input.release, selector: input.selector });
  const plan = planRollout(current, input.release.id, { ...input.strategy, canaryHosts: input.strategy.canaryHosts ?? canaryHosts });
  const pending = plan.waves.flatMap((w) => w.hosts);
  status.total = Object.keys(current).length;
  status.done = plan.alreadyOnRelease.length;
  status.maxFail = plan.maxFailures;
  status.waves = plan.waves.map((w) => ({ name: w.name, hosts: w.hosts.length, done: 0, failed: 0 }));
  const recordFailures = (results: HostResult[]) => {
    const failures = results.filter((r) => r.outcome === 'failed');
    status.failed += failures.length;
    status.failures.push(...failures.slice(0, Math.max(0, 50 - status.failures.length)));
    return failures;
  };

  status.phase = 'fetching';
  report();
  const fetchFailed = new Set<string>();
  for (const hosts of chunk(pending, HOSTS_PER_FETCH_ACTIVITY)) {
    const results = await hostActivities.fetchToHosts({ service: input.service, release: input.release, by: input.by, runId, hosts, concurrency: input.strategy.fetchConcurrency });
    recordFailures(results).forEach((f) => fetchFailed.add(f.host));
  }
  if (status.failed > status.maxFail) {
    status.phase = 'aborted';
    report();
    throw ApplicationFailure.nonRetryable(`${status.failed} hosts failed to fetch, more than the limit of ${status.maxFail}; nothing was switched`, 'RolloutFailed', status);
  }

  for (const [index, wave] of plan.waves.entries()) {
    const hosts = wave.hosts.filter((h) => !fetchFailed.has(h));
    status.phase = index === 0 && wave.name === 'canary' ? 'canary' : 'batches';
    report();
    await condition(() => !status.paused || abortRequested || rollbackRequested);
    if (rollbackRequested) return rollBack('rollback requested by operator');
    if (abortRequested) {
      status.phase = 'aborted';
      report();
      return status;
    }
    const results = await executeChild(rolloutWaveWorkflow, {
      workflowId: `${runId}-${wave.name.replace(/\s+/g, '-')}`,
      args: [{ service: input.service, release: input.release, hosts, by: input.by, runId }],
    });
    touched.push(...results.filter((r) => r.outcome !== 'failed' || r.previous !== undefined).map((r) => r.host));
    const failures = recordFailures(results);
    const ok = results.length - failures.length;
    status.done += ok;
    status.waves[index].done = ok;
    status.waves[index].failed = failures.length + (wave.hosts.length - hosts.length);
    report();
    if (status.failed > status.maxFail) {
      return rollBack(`${status.failed} hosts failed, more than the limit of ${status.maxFail}: ${failures.slice(0, 3).map((f) => `${f.host}: ${f.detail}`).join('; ')}`);
    }
    if (wave.name === 'canary') {
      status.phase = 'analysis';
      report();
      const verdict = await hostActivities.analyzeCanary({ service: input.service, release: input.release, canaries: results.filter((r) => r.outcome !== 'failed').map((r) => r.host) });
      status.failures.push(...verdict.notes.map((note) => ({ host: '(analysis)', outcome: 'skipped' as const, detail: note })));
      if (verdict.result === 'fail') return rollBack(`canary analysis failed: ${verdict.summary}`);
      if (verdict.result === 'inconclusive' || input.pauseAfterCanary) {
        status.paused = true;
        status.pauseReason = verdict.result === 'inconclusive' ? `canary analysis inconclusive: ${verdict.summary}; resume or roll back` : 'canaries are live; resume to continue';
      }
    }
  }

  // A release is stable once every target host runs it; a canary-only run leaves last-stable alone.
  const complete = status.done === status.total;
  await Promise.all(
    chunk(complete ? [...plan.alreadyOnRelease, ...pending] : [], HOSTS_PER_FETCH_ACTIVITY).map((hosts) =>
      hostActivities.markStable({ service: input.service, release: input.release, by: input.by, runId, hosts }),
    ),
  );
  status.phase = 'done';
  report();
  return status;
}
