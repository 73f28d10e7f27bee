// The fast tier's setup (vitest.unit.config.ts): only the workflow bundle, for the replay and the time-skipping
// workflow tests. No dev server, fleet, Gerrit or sshd: the tests of this tier need none.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { writeWorkflowBundle } from './global-setup';

export default async function setup(project: TestProject) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-unit-'));
  project.provide('workflowBundle', await writeWorkflowBundle(dir));
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
