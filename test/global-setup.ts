// One real Temporal dev server (the CLI's start-dev, SQLite in a temporary folder) for the whole run, and the
// workflow code bundled once for every worker the tests start.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { freePort } from '../sandbox/fleet';
import { startDevServer, stopDevServer } from '../tools/temporal-runtime';
import { WORKFLOWS_PATH } from '../workers/worker';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalHome: string;
    workflowBundle: string;
    namespaces: string[];
  }
}

/** The workflow code bundled once into `dir`, for every worker and replayer of the run; returns its path. */
export async function writeWorkflowBundle(dir: string): Promise<string> {
  const bundle = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error },
  });
  const bundlePath = path.join(dir, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, bundle.code);
  return bundlePath;
}

export default async function setup(project: TestProject) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-temporal-'));
  const address = `127.0.0.1:${await freePort()}`;
  // Workflow ids such as train-<version> are meant to be unique, so each test sandbox gets a namespace of its own.
  const namespaces = Array.from({ length: 60 }, (_, i) => `test-${i}`);
  await startDevServer({
    home,
    address,
    namespace: 'default',
    extraNamespaces: namespaces,
    uiPort: 0,
    headless: true,
    say: () => undefined,
  });
  project.provide('temporalAddress', address);
  project.provide('temporalHome', home);
  project.provide('workflowBundle', await writeWorkflowBundle(home));
  project.provide('namespaces', namespaces);
  return async () => {
    await stopDevServer(home);
    fs.rmSync(home, { recursive: true, force: true });
  };
}
