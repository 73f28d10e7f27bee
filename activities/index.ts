// Every activity the worker registers, built from one loaded config. Workflows import this file as a type only.
import { Context } from '@temporalio/activity';
import type { SignalboxConfig } from '../config/load';
import { createAuthActivities } from './auth';
import { createBackportActivities } from './backport';
import { createGitHubActivities } from './github';
import { createHostActivities } from './hosts';
import { createLeaseActivities } from './lease';
import { createNotifyActivities } from './notify';
import { createMetricsActivities } from './metrics';
import { withRedactedErrors } from './redact';
import { createTrainActivities } from './train';
import { createWikiActivities } from './wiki';

/** How often every activity heartbeats; workflows set heartbeatTimeout to a few of these. */
export const HEARTBEAT_EVERY_MS = 3000;

/**
 * Every activity beats on a timer while it runs, so a worker that dies (SIGKILL, lost machine) is noticed within
 * the heartbeat timeout and the activity is retried elsewhere, instead of after its whole start-to-close timeout.
 */
function heartbeating<T extends Record<string, (...args: any[]) => Promise<any>>>(activities: T): T {
  const wrapped: Record<string, (...args: any[]) => Promise<any>> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args) => {
      let context: Context | undefined;
      try {
        context = Context.current();
      } catch {
        return fn(...args); // called directly (CLI, benchmarks), not as an activity
      }
      const ticker = setInterval(() => context!.heartbeat(), HEARTBEAT_EVERY_MS);
      try {
        return await fn(...args);
      } finally {
        clearInterval(ticker);
      }
    };
  }
  return wrapped as T;
}

export function createActivities(config: SignalboxConfig) {
  return withRedactedErrors(
    config,
    heartbeating({
      ...createAuthActivities(config),
      ...createBackportActivities(config),
      ...createHostActivities(config),
      ...createLeaseActivities(config),
      ...createMetricsActivities(config),
      ...createTrainActivities(config),
      ...createWikiActivities(config),
      ...createNotifyActivities(config),
      ...createGitHubActivities(config),
    }),
  );
}
