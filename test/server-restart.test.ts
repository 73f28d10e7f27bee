// The Temporal server itself dies mid-rollout and comes back on the same SQLite file: the rollout resumes where it
// stopped and every host ends consistent.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RolloutStatus } from '../workflows/definitions';
import { rolloutStatusQuery } from '../workflows/definitions';
import { freePort } from '../sandbox/fleet';
import { devServerPid, startDevServer, stopDevServer } from '../scripts/temporal-runtime';
import { assertHostsConsistent, configLinks, configMoving, rollout, startSandbox, STRATEGY, waitFor, type Sandbox } from './helpers';

let sandbox: Sandbox | undefined;
let serverHome: string | undefined;

afterEach(async () => {
  await sandbox?.stop();
  if (serverHome) await stopDevServer(serverHome);
  sandbox = undefined;
});

describe('a Temporal server restart mid-rollout', () => {
  it('resumes the rollout from the SQLite file, with every host consistent', async () => {
    serverHome = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-server-'));
    const address = `127.0.0.1:${await freePort()}`;
    const server = { home: serverHome, address, namespace: 'default', uiPort: 0, headless: true, say: () => undefined };
    await startDevServer(server);
    sandbox = await startSandbox({
      temporalAddress: address,
      configure: (c) => c.services['mediawiki-config'].checks.push({ name: 'settle', command: ['sleep', '1'], timeoutMs: 5000 }),
    });
    const release = await configMoving(sandbox, ['testwikis']);
    const handle = await rollout(sandbox, release, { ...STRATEGY, batch: '2' });
    await waitFor('a batch in flight', async () => {
      const s = await handle.query(rolloutStatusQuery);
      return s.phase === 'batches' && s.done >= 2 && s.done < 6;
    }, 90_000, 100);
    const before = devServerPid(serverHome);
    process.kill(before!, 'SIGKILL');
    await waitFor('the server to be gone', async () => devServerPid(serverHome!) === null, 10_000, 50);
    await startDevServer(server);
    expect(devServerPid(serverHome)).not.toBe(before);
    const status: RolloutStatus = await handle.result();
    expect(status.phase).toBe('done');
    expect(status.failed).toBe(0);
    expect(new Set(Object.values(await configLinks(sandbox)))).toEqual(new Set([release.id]));
    await assertHostsConsistent(sandbox, 'mediawiki-config');
  });
});
