// What the weekly Schedule starts: it works out the next version ("auto") and starts train-<version>, so a
// scheduled train has the same id, and the same protection against running twice, as one started by hand.
import { ParentClosePolicy, proxyActivities, startChild, workflowInfo } from '@temporalio/workflow';
import { authorizer, type Steering } from './authorize';
import type { ScheduleChange } from './definitions';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { createActivities } from '../activities';
import { trainWorkflowId } from './names';
import { trainWorkflow, type TrainInput } from './train';

const { nextTrainVersion } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '15 seconds',
});

export async function weeklyTrainWorkflow(input: Omit<TrainInput, 'version'>): Promise<string> {
  const version = await nextTrainVersion();
  const workflowId = trainWorkflowId(version);
  try {
    await startChild(trainWorkflow, {
      workflowId,
      args: [{ ...input, version }],
      // The train outlives this short workflow: it runs for days, approved station by station.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      staticSummary: `Train ${version} (weekly schedule)`,
    });
  } catch (err) {
    if ((err as Error).name === 'WorkflowExecutionAlreadyStartedError')
      return `${workflowId} already exists; nothing started`;
    throw err;
  }
  return `started ${workflowId}`;
}

const { applyScheduleChange } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['ScheduleRefused'] },
});

/**
 * Changing the weekly Schedule is an admin's signed action like any other: this short workflow has the worker
 * verify the signature and the role, and only then creates or deletes the Schedule.
 */
export async function scheduleChangeWorkflow(request: ScheduleChange & Steering): Promise<string> {
  await authorizer(workflowInfo().workflowId).verify(request, 'schedule', request.scheduleId);
  return applyScheduleChange(request);
}
