// The train's activities, proxied three ways by how long each may take and how often it is retried, and how the
// train reads their failures.
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../../activities';

export type Activities = ReturnType<typeof createActivities>;

/**
 * Every train activity is idempotent, so attempts are not counted: a worker killed every few seconds slows the
 * train down but never blocks it. After half an hour of failing, the train blocks and asks a person.
 */
export const acts = proxyActivities<Activities>({
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
export const records = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '30 minutes',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' },
});

/** One metrics read: a few quick tries, since the watch takes another sample a minute later anyway. */
export const measurements = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});

export const failureType = (err: unknown) => {
  const cause = err instanceof ActivityFailure || err instanceof ChildWorkflowFailure ? err.cause : undefined;
  return cause instanceof ApplicationFailure ? cause.type : undefined;
};
/** What a failure carries for private destinations only (a security patch's name and git am's words). */
export const embargoedDetails = (err: unknown): string | undefined => {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  const details =
    cause instanceof ApplicationFailure ? (cause.details?.[0] as { embargoed?: string } | undefined) : undefined;
  return details?.embargoed;
};
export const causeOf = (err: unknown): string => {
  const cause = (err as { cause?: Error }).cause;
  return cause ? causeOf(cause) : (err as Error).message;
};
