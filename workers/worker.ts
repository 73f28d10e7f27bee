// The signalbox worker: runs the workflows and activities on the task queue. The SDK stops it gracefully on
// SIGINT and SIGTERM: it stops polling, lets running activities finish within the grace time, then exits.
// Every activity error, failure and payload it sends to the server is redacted first, so no secret reaches a
// workflow history or the worker's log.
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { SignalboxConfig } from '../config/load';
import { createActivities } from '../activities';
import { closeTransports } from '../activities/inventory';
import { RedactingFailureConverter, redactError, redactingCodec, registerSecrets } from '../activities/redact';
import { connectError, temporalConnection, type TemporalConnection } from '../config/temporal-connection';

export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', 'index.ts');
/** The failure converter's path (a plain JS hand-over, see the file); clients need none, they decode as by default. */
export const FAILURE_CONVERTER_PATH = path.join(__dirname, 'failure-converter.js');

/** Failures and payloads redacted on their way to the server; what they decode to is unchanged. */
function redactingDataConverter(): NonNullable<WorkerOptions['dataConverter']> {
  (globalThis as unknown as Record<symbol, unknown>)[Symbol.for('signalbox.failureConverter')] ??=
    new RedactingFailureConverter();
  return { failureConverterPath: FAILURE_CONVERTER_PATH, payloadCodecs: [redactingCodec] };
}

/** Secured like the CLI's connection: an envconfig profile and TEMPORAL_* variables over signalbox.yml. */
function connectNative(temporal: TemporalConnection): Promise<NativeConnection> {
  return NativeConnection.connect(temporal.options).catch((err) => {
    throw connectError(temporal, err);
  });
}

/** What a worker is still running, so a shutdown that waits can say on what. */
export interface ActivityInFlight {
  type: string;
  workflowId?: string;
  attempt: number;
  since: Date;
}
const activitiesOf = new WeakMap<Worker, Set<ActivityInFlight>>();

export function activitiesInFlight(worker: Worker): ActivityInFlight[] {
  return [...(activitiesOf.get(worker) ?? [])];
}

export function describeInFlight(activities: ActivityInFlight[], now = new Date()): string {
  return activities
    .map(
      (a) =>
        `${a.type} for ${a.workflowId ?? '?'} (attempt ${a.attempt}, ${Math.round((now.getTime() - a.since.getTime()) / 1000)} s)`,
    )
    .join(', ');
}

export async function createWorker(config: SignalboxConfig, connection?: NativeConnection): Promise<Worker> {
  const temporal = temporalConnection(config);
  const conn = connection ?? (await connectNative(temporal));
  // Tests and benchmarks bundle the workflow code once and hand it over; otherwise the worker bundles at start.
  const bundlePath = process.env.SIGNALBOX_WORKFLOW_BUNDLE;
  const workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> = bundlePath
    ? { workflowBundle: { codePath: bundlePath } }
    : { workflowsPath: WORKFLOWS_PATH };
  registerSecrets(config);
  const inFlight = new Set<ActivityInFlight>();
  const worker = await Worker.create({
    connection: conn,
    namespace: temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    activities: createActivities(config),
    dataConverter: redactingDataConverter(),
    // Every activity's error redacted where it leaves the activity, before the SDK logs it or converts it.
    interceptors: {
      activity: [
        (context) => ({
          inbound: {
            async execute(input, next) {
              const { activityType, workflowExecution, attempt } = context.info;
              const running = {
                type: activityType,
                workflowId: workflowExecution?.workflowId,
                attempt,
                since: new Date(),
              };
              inFlight.add(running);
              try {
                return await next(input);
              } catch (err) {
                throw redactError(err);
              } finally {
                inFlight.delete(running);
              }
            },
          },
        }),
      ],
    },
    ...workflows,
    shutdownGraceTime: '10 seconds',
    maxConcurrentActivityTaskExecutions: 200,
  });
  activitiesOf.set(worker, inFlight);
  return worker;
}

export async function runWorker(config: SignalboxConfig, say: (line: string) => void = console.log): Promise<void> {
  const temporal = temporalConnection(config);
  const connection = await connectNative(temporal);
  const worker = await createWorker(config, connection);
  say(
    `worker: polling task queue "${config.temporal.taskQueue}" on ${temporal.summary} (namespace ${temporal.namespace})`,
  );
  try {
    await worker.run();
  } finally {
    closeTransports();
    await connection.close();
    say('worker: stopped');
  }
}
