// Temporal itself, as seen from activities: the per-service lease (workflows/lease.ts) taken before a rollout
// touches a host, and released when it ends. Both are idempotent: a retried acquire by the same workflow succeeds.
import { Context } from '@temporalio/activity';
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import type { SignalboxConfig } from '../config/load';
import {
  acquireLease,
  leaseHolderQuery,
  leaseWorkflowId,
  releaseLease,
  TRAIN_AT_REST,
  trainStatusQuery,
  type LeaseHolder,
  type ScheduleChange,
} from '../workflows/definitions';

const GRPC_UNIMPLEMENTED = 12;

async function leaseHandle(client: Client, config: SignalboxConfig, service: string) {
  const workflowId = leaseWorkflowId(service);
  try {
    await client.workflow.start('serviceLeaseWorkflow', {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [null],
      staticSummary: `Lease: one change at a time to ${service}`,
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  return client.workflow.getHandle(workflowId);
}

/** The workflow changing a service now, if it is still running; for the CLI to refuse before it starts anything. */
export async function runningLeaseHolder(
  client: Client,
  config: SignalboxConfig,
  service: string,
): Promise<LeaseHolder | null> {
  const holder = await client.workflow
    .getHandle(leaseWorkflowId(service))
    .query(leaseHolderQuery)
    .catch(() => null);
  if (!holder) return null;
  const described = await client.workflow
    .getHandle(holder.workflowId)
    .describe()
    .catch(() => undefined);
  return described?.status.name === 'RUNNING' ? holder : null;
}

export function describeHolder(service: string, holder: LeaseHolder): string {
  return `${service} is being changed by ${holder.workflowId} (started by ${holder.by}, since ${holder.since}); one change at a time per service: wait for it to finish (\`signalbox rollout status ${holder.workflowId}\`), or steer it with \`signalbox rollout pause|abort|rollback ${holder.workflowId}\``;
}

/** Trains that are running and not at rest (complete, blocked, aborted, rolled back and waiting): at most one may move. */
export async function trainsInMotion(client: Client, except?: string): Promise<string[]> {
  const moving: string[] = [];
  try {
    for await (const train of client.workflow.list({
      query: `SignalboxKind = 'train' AND ExecutionStatus = 'Running'`,
    })) {
      if (train.workflowId === except) continue;
      const status = await client.workflow
        .getHandle(train.workflowId)
        .query(trainStatusQuery)
        .catch(() => undefined);
      if (!status || !TRAIN_AT_REST.includes(status.state))
        moving.push(`${train.workflowId} (${status?.state ?? 'starting'})`);
    }
  } catch (err) {
    // The time-skipping test server has no visibility store; a real server and the dev server have one.
    const code = (err as { code?: number }).code ?? (err as { cause?: { code?: number } }).cause?.code;
    if (code === GRPC_UNIMPLEMENTED) return [];
    throw err;
  }
  return moving;
}

/**
 * A lease update completes only once a worker runs the lease workflow. When this activity is cancelled (its worker
 * is shutting down, and may be the only one) it stops waiting; the retry repeats the update, which is idempotent.
 */
function untilCancelled<T>(update: Promise<T>): Promise<T> {
  return Promise.race([update, Context.current().cancelled]);
}

export function createLeaseActivities(config: SignalboxConfig) {
  async function trainsInMotionActivity(request: { except: string }): Promise<string[]> {
    return trainsInMotion(Context.current().client, request.except);
  }

  async function acquireServiceLease(request: {
    service: string;
    workflowId: string;
    by: string;
    parent?: string;
  }): Promise<LeaseHolder> {
    const client = Context.current().client;
    const handle = await leaseHandle(client, config, request.service);
    const holder: LeaseHolder = { workflowId: request.workflowId, by: request.by, since: new Date().toISOString() };
    try {
      return await untilCancelled(handle.executeUpdate(acquireLease, { args: [{ holder, parent: request.parent }] }));
    } catch (err) {
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
    }
    // Taken: a holder that closed without releasing (terminated, or crashed past its retries) does not keep it.
    const current = await handle.query(leaseHolderQuery);
    const live = await runningLeaseHolder(client, config, request.service);
    if (current && !live)
      return untilCancelled(handle.executeUpdate(acquireLease, { args: [{ holder, replacing: current.workflowId }] }));
    throw ApplicationFailure.nonRetryable(describeHolder(request.service, live ?? current!), 'LeaseTaken');
  }

  async function releaseServiceLease(request: { service: string; workflowId: string }): Promise<void> {
    const handle = await leaseHandle(Context.current().client, config, request.service);
    await untilCancelled(handle.executeUpdate(releaseLease, { args: [{ workflowId: request.workflowId }] }));
  }

  /** Creates or deletes the weekly Schedule; a retry finds its own work done. */
  async function applyScheduleChange(change: ScheduleChange): Promise<string> {
    const client = Context.current().client;
    if (change.change === 'delete') {
      await client.schedule
        .getHandle(change.scheduleId)
        .delete()
        .catch((err: Error) => {
          if (!/not found/i.test(err.message))
            throw ApplicationFailure.nonRetryable(
              `cannot delete schedule ${change.scheduleId}: ${err.message}`,
              'ScheduleRefused',
            );
        });
      return `deleted schedule ${change.scheduleId}`;
    }
    try {
      await client.schedule.create({
        scheduleId: change.scheduleId,
        spec: {
          calendars: [{ dayOfWeek: change.dayOfWeek as 'TUESDAY', hour: change.hour, minute: change.minute }],
          timezone: change.timezone,
        },
        action: {
          type: 'startWorkflow',
          workflowType: 'weeklyTrainWorkflow',
          args: [change.trainInput],
          taskQueue: change.taskQueue,
          workflowId: `${change.scheduleId}-dispatch`,
        },
        policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' },
      });
    } catch (err) {
      if (err instanceof ScheduleAlreadyRunning)
        throw ApplicationFailure.nonRetryable(
          `schedule ${change.scheduleId} already exists; delete it first`,
          'ScheduleRefused',
        );
      throw err;
    }
    return `created schedule ${change.scheduleId}`;
  }

  return { acquireServiceLease, releaseServiceLease, trainsInMotion: trainsInMotionActivity, applyScheduleChange };
}
