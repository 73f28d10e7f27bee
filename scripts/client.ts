// Starting and steering workflows from the CLI, npm start, tests and benchmarks.
import path from 'node:path';
import { Client, Connection, ServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/common';
import type { SignalboxConfig } from '../config/load';
import { searchAttributes } from '../workflows/definitions';
import { trainWorkflowId } from '../workflows/names';
import type { TrainInput } from '../workflows/train';
import type { RolloutInput } from '../workflows/rollout';

export async function connectClient(config: SignalboxConfig): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: 10_000 }).catch((err) => {
    throw new Error(`cannot reach Temporal at ${config.temporal.address} (${(err as Error).message}); start it with \`signalbox dev\``);
  });
  return new Client({ connection, namespace: config.temporal.namespace });
}

export class UserError extends Error {}

/** How to run this CLI in a child process (the sandbox server runs as `signalbox sandbox serve`). */
export const CLI_ENTRY = [path.join(__dirname, 'signalbox.js')];

export function trainInputFrom(config: SignalboxConfig, version: string, overrides: Partial<TrainInput> = {}): TrainInput {
  return {
    version,
    autoApprove: config.train.autoApprove,
    approvers: config.train.approvers,
    verifyEveryMs: config.train.verifyEveryMs,
    verifyTimeoutMs: config.train.verifyTimeoutMs,
    watchMs: config.train.watchMs,
    strategy: config.rollout,
    codeService: config.train.codeService,
    configService: config.train.configService,
    by: process.env.USER ?? 'signalbox',
    ...overrides,
  };
}

export async function startTrain(client: Client, config: SignalboxConfig, input: TrainInput) {
  const workflowId = trainWorkflowId(input.version);
  try {
    return await client.workflow.start('trainWorkflow', {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [input],
      // A train that failed may be started again; one that is running or completed may not.
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      staticSummary: `Train ${input.version}${input.fromVersion ? ` from ${input.fromVersion}` : ''}`,
      staticDetails: `Started by ${input.by}. Stations: testwikis → group0 → group1 → group2. ${input.autoApprove ? 'Auto-approved.' : 'Each station waits for `signalbox train approve`.'}`,
      typedSearchAttributes: [
        { key: searchAttributes.kind, value: 'train' },
        { key: searchAttributes.version, value: input.version },
      ],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const described = await client.workflow.getHandle(workflowId).describe().catch(() => undefined);
      throw new UserError(
        `train ${input.version} already exists as workflow ${workflowId}${described ? ` (${described.status.name.toLowerCase()}, started ${described.startTime.toISOString()})` : ''}; ` +
          `see \`signalbox train status ${input.version}\`. A train can be started again only after it failed.`,
      );
    }
    throw err;
  }
}

/** Rollouts may reuse an id once closed, but never run twice at once: `deploy-<service>` is a per-service lock. */
export async function startRollout(client: Client, config: SignalboxConfig, input: RolloutInput, workflowId: string) {
  try {
    return await client.workflow.start('rolloutWorkflow', {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      staticSummary: `Deploy ${input.release.id} (${input.service})`,
      staticDetails: `Started by ${input.by}: canary ${input.strategy.canary ?? 'none'}, batch ${input.strategy.batch}, max-fail ${input.strategy.maxFail}`,
      typedSearchAttributes: [
        { key: searchAttributes.kind, value: 'rollout' },
        { key: searchAttributes.service, value: input.service },
        { key: searchAttributes.version, value: input.release.name },
      ],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new UserError(`${workflowId} is running; wait for it, or steer it with \`signalbox rollout pause|resume|abort|rollback ${workflowId}\``);
    }
    throw err;
  }
}

/** Runs an update and turns a validator's refusal into a plain message for the operator. */
export async function update<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new UserError(`refused: ${err.cause?.message ?? err.message}`);
    if (err instanceof ServiceError) throw new UserError(`${err.message}: ${(err.cause as Error | undefined)?.message ?? 'no detail from the server'}`);
    throw err;
  }
}
