// The backport's activities, proxied by how long each may take. Merging waits for Gerrit's CI and submit (up to
// forge.gerrit.mergeTimeoutMs), so it gets longer than the train's steps; refusals that need a person are final.
import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../../activities';

export type Activities = ReturnType<typeof createActivities>;

export const acts = proxyActivities<Activities>({
  startToCloseTimeout: '20 minutes',
  scheduleToCloseTimeout: '40 minutes',
  heartbeatTimeout: '15 seconds',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '10 seconds',
    nonRetryableErrorTypes: [
      'BadInput',
      'StageBlocked',
      'LeaseTaken',
      'ChangePlanted',
      'ChangeGone',
      'Abandoned',
      'NewPatchSet',
      'Vetoed',
      'CiFailed',
      'NeedsReview',
    ],
  },
});

/** Records and pings never hold a backport up: retried in the background for a while. */
export const records = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '30 minutes',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' },
});
