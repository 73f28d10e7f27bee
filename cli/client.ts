// Starting and steering workflows from the CLI, npm start, tests and benchmarks.
import path from 'node:path';
import { Client, Connection, ServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/common';
import type { SignalboxConfig } from '../config/load';
import { connectError, temporalConnection, transportFailure } from '../config/temporal-connection';
import { trainsInMotion } from '../activities/lease';
import { searchAttributes } from '../workflows/definitions';
import { isVersion, trainWorkflowId } from '../workflows/names';
import type { TrainInput } from '../workflows/train';
import type { RolloutInput } from '../workflows/rollout';
import type { BackportInput } from '../workflows/backport';

export async function connectClient(config: SignalboxConfig): Promise<Client> {
  const temporal = temporalConnection(config);
  const connection = await Connection.connect({ ...temporal.options, connectTimeout: 10_000 }).catch(async (err) => {
    throw connectError(temporal, err, await transportFailure(temporal));
  });
  return new Client({ connection, namespace: temporal.namespace });
}

export class UserError extends Error {}

/** How to run this CLI in a child process (the sandbox server runs as `signalbox sandbox serve`). */
export const CLI_ENTRY = [path.join(__dirname, '..', 'scripts', 'signalbox.js')];

export function trainInputFrom(
  config: SignalboxConfig,
  version: string,
  overrides: Partial<TrainInput> = {},
): TrainInput {
  return {
    version,
    autoApprove: config.train.autoApprove,
    verifyEveryMs: config.train.verifyEveryMs,
    verifyTimeoutMs: config.train.verifyTimeoutMs,
    watchMs: config.train.watchMs,
    watch: {
      everyMs: config.train.watchIntervalMs,
      maxErrorRate: config.train.watchMaxErrorRate,
      maxRatioToBaseline: config.train.watchMaxRatio,
      minRequests: config.train.watchMinRequests,
      newErrorMin: config.train.watchNewErrorMin,
      judge: config.train.watchJudge,
    },
    gate: config.train.gate,
    windows: config.train.windows,
    blockersPollMs: config.train.blockers?.pollMs,
    link: isVersion(version)
      ? `http://127.0.0.1:${config.temporal.uiPort}/namespaces/${config.temporal.namespace}/workflows/${trainWorkflowId(version)}`
      : undefined,
    strategy: config.rollout,
    codeService: config.train.codeService,
    configService: config.train.configService,
    by: process.env.USER ?? 'signalbox',
    ...overrides,
  };
}

interface StartRequest {
  workflowType: 'trainWorkflow' | 'rolloutWorkflow' | 'backportWorkflow';
  workflowId: string;
  input: TrainInput | RolloutInput | BackportInput;
  reusePolicy: WorkflowIdReusePolicy;
  summary: string;
  details: string;
  attributes: { kind: string; version?: string; service?: string };
  /** What to tell the operator when the id is taken. */
  whenTaken: (existing: { status: string; started: string } | undefined) => string;
}

/** Starts a workflow with its UI summary and search attributes; a taken id becomes a plain message. */
async function startOnce(client: Client, config: SignalboxConfig, request: StartRequest) {
  const { kind, version, service } = request.attributes;
  try {
    return await client.workflow.start(request.workflowType, {
      taskQueue: config.temporal.taskQueue,
      workflowId: request.workflowId,
      args: [request.input],
      workflowIdReusePolicy: request.reusePolicy,
      staticSummary: request.summary,
      staticDetails: request.details,
      typedSearchAttributes: [
        { key: searchAttributes.kind, value: kind },
        ...(version ? [{ key: searchAttributes.version, value: version }] : []),
        ...(service ? [{ key: searchAttributes.service, value: service }] : []),
      ],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const described = await client.workflow
      .getHandle(request.workflowId)
      .describe()
      .catch(() => undefined);
    throw new UserError(
      request.whenTaken(
        described && { status: described.status.name.toLowerCase(), started: described.startTime.toISOString() },
      ),
    );
  }
}

export async function startTrain(client: Client, config: SignalboxConfig, input: TrainInput) {
  const workflowId = trainWorkflowId(input.version);
  const moving = await trainsInMotion(client, workflowId);
  if (moving.length)
    throw new UserError(
      `refused: another train is in motion: ${moving.join(', ')}; start ${input.version} when it is complete, blocked or aborted`,
    );
  return startOnce(client, config, {
    workflowType: 'trainWorkflow',
    workflowId,
    input,
    // A train that failed may be started again; one that is running or completed may not.
    reusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    summary: `Train ${input.version}${input.fromVersion ? ` from ${input.fromVersion}` : ''}`,
    details: `Started by ${input.by}. Stations: testwikis → group0 → group1 → group2. ${input.autoApprove ? 'Auto-approved.' : 'Each station waits for `signalbox train approve`.'}`,
    attributes: { kind: 'train', version: input.version },
    whenTaken: (existing) =>
      `train ${input.version} already exists as workflow ${workflowId}${existing ? ` (${existing.status}, started ${existing.started})` : ''}; ` +
      `see \`signalbox train status ${input.version}\`. A train can be started again only after it failed.`,
  });
}

/** Rollouts may reuse an id once closed, but never run twice at once: `deploy-<service>` is a per-service lock. */
export function startRollout(client: Client, config: SignalboxConfig, input: RolloutInput, workflowId: string) {
  return startOnce(client, config, {
    workflowType: 'rolloutWorkflow',
    workflowId,
    input,
    reusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    summary: `Deploy ${input.release.id} (${input.service})`,
    details: `Started by ${input.by}: canary ${input.strategy.canary ?? 'none'}, batch ${input.strategy.batch}, max-fail ${input.strategy.maxFail}`,
    attributes: { kind: 'rollout', version: input.release.name, service: input.service },
    whenTaken: () =>
      `${workflowId} is running; wait for it, or steer it with \`signalbox rollout pause|resume|abort|rollback ${workflowId}\``,
  });
}

/** A backport may run again once closed (a fix after a rollback), never twice at once. */
export function startBackport(client: Client, config: SignalboxConfig, input: BackportInput, workflowId: string) {
  const changes = input.changes.map((c) => c.number).join(', ');
  return startOnce(client, config, {
    workflowType: 'backportWorkflow',
    workflowId,
    input,
    reusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    summary: `Backport ${changes}${input.emergency ? ' (emergency)' : ''}`,
    details: `Started by ${input.by}: check, merge, the test servers (${input.testHosts}), a confirmation, then production`,
    attributes: { kind: 'backport' },
    whenTaken: () =>
      `${workflowId} is running; see \`signalbox backport status ${workflowId.replace(/^backport-/, '')}\``,
  });
}

/** Runs an update and turns a validator's refusal into a plain message for the operator. */
export async function update<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new UserError(`refused: ${err.cause?.message ?? err.message}`);
    if (err instanceof ServiceError)
      throw new UserError(
        `${err.message}: ${(err.cause as Error | undefined)?.message ?? 'no detail from the server'}`,
      );
    throw err;
  }
}
