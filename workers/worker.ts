// The signalbox worker: runs the workflows and activities on the task queue. The SDK stops it gracefully on
// SIGINT and SIGTERM: it stops polling, lets running activities finish within the grace time, then exits.
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { SignalboxConfig } from '../config/load';
import { createActivities } from '../activities';
import { closeTransports } from '../activities/inventory';

export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', 'index.ts');

export async function createWorker(config: SignalboxConfig, connection?: NativeConnection): Promise<Worker> {
  const conn = connection ?? (await NativeConnection.connect({ address: config.temporal.address }));
  // Tests and benchmarks bundle the workflow code once and hand it over; otherwise the worker bundles at start.
  const bundlePath = process.env.SIGNALBOX_WORKFLOW_BUNDLE;
  const workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> = bundlePath ? { workflowBundle: { codePath: bundlePath } } : { workflowsPath: WORKFLOWS_PATH };
  return Worker.create({
    connection: conn,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    activities: createActivities(config),
    ...workflows,
    shutdownGraceTime: '10 seconds',
    maxConcurrentActivityTaskExecutions: 200,
  });
}

export async function runWorker(config: SignalboxConfig, say: (line: string) => void = console.log): Promise<void> {
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await createWorker(config, connection);
  say(`worker: polling task queue "${config.temporal.taskQueue}" on ${config.temporal.address} (namespace ${config.temporal.namespace})`);
  try {
    await worker.run();
  } finally {
    closeTransports();
    await connection.close();
    say('worker: stopped');
  }
}
