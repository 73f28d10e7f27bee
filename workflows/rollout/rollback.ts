// Putting hosts back: a rollback returns every host this run started on to what it replaced; moving back, hosts
// that were down are retried for a while before they are named for a person.
import { ApplicationFailure, sleep } from '@temporalio/workflow';
import { chunk } from '../plan';
import {
  ACTIVITIES_IN_FLIGHT,
  FAILURES_KEPT,
  HOSTS_PER_ACTIVITY,
  HOSTS_PER_FETCH_ACTIVITY,
  hostActivities,
  inParallel,
  mayPassOnRetry,
  rollbackActivities,
} from './activities';
import type { Rollout } from './state';

/** How long a rollback keeps retrying hosts it could not reach before it names them for a person: about 95 s. */
const ROLLBACK_RETRY_WAITS = ['5s', '10s', '20s', '30s', '30s'] as const;

/** Every host this run started on goes back to what it replaced, and nothing else; a host that cannot is named. */
export async function rollBack({ input, runId, fence, state }: Rollout, reason: string): Promise<never> {
  const status = state.status;
  status.phase = 'rolling-back';
  state.report();
  const results = (
    await inParallel(chunk(state.attempted, HOSTS_PER_FETCH_ACTIVITY), ACTIVITIES_IN_FLIGHT, (hosts) =>
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
  state.report();
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
}

/**
 * Moving back, a host that was down is retried for a while: the old release is the only place it should go, and
 * a host back within a minute or two must not wait for a person. Whatever is still unreached stays named.
 */
export async function retryUnreached({ input, runId, fence, state }: Rollout, hosts: string[]): Promise<void> {
  const status = state.status;
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
    state.report();
  }
}
