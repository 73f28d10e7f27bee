// The rollout engine's activities, proxied by what each must survive, and the limits that keep its histories small.
import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import type { HostResult } from '../definitions';

export type Activities = ReturnType<typeof createActivities>;

/**
 * Host work is idempotent (each host keeps a journal of its steps), so a retry is always safe: attempts are not
 * counted, and a worker that dies every few seconds slows a rollout down but never fails it. The time bound is
 * what turns a real outage (the worker fleet gone for an hour) into a rollback.
 */
export const hostActivities = proxyActivities<Activities>({
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
export const rollbackActivities = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', nonRetryableErrorTypes: ['BadInput'] },
});

/** One metrics read: a few quick tries; the run takes another sample an interval later, and counts failed reads. */
export const measurements = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});

/** Hosts per activity inside a wave: small enough that a retry redoes little, large enough to keep events few. */
export const HOSTS_PER_ACTIVITY = 25;
export const HOSTS_PER_FETCH_ACTIVITY = 250;
/** Host activities in flight at once in one workflow, and wave children per rollout, at any fleet or batch size. */
export const ACTIVITIES_IN_FLIGHT = 100;
export const MAX_WAVE_CHILDREN = 100;
export const FAILURES_KEPT = 50;

/** Runs `work` over `items`, at most `width` at a time; deterministic, so usable in workflow code. */
export async function inParallel<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
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

/**
 * A host that could not be reached, fetched or switched may succeed later. One whose checks failed is already on
 * the release it was sent to: moving back, it stays there in the pool, named, rather than hold the rollback up.
 */
export const mayPassOnRetry = (result: HostResult) =>
  result.code !== 'not-fetched' && !result.code?.startsWith('check-failed');
