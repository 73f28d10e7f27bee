// The Temporal server itself dies mid-rollout, and mid-train, and comes back on the same SQLite file: the work
// resumes where it stopped and every host ends consistent.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RolloutStatus, TrainStatus } from '../workflows/definitions';
import { rolloutStatusQuery, trainStatusQuery } from '../workflows/definitions';
import { STATIONS } from '../workflows/names';
import { startTrain, trainInputFrom } from '../cli/client';
import { freePort } from '../sandbox/fleet';
import { devServerPid, startDevServer, stopDevServer } from '../tools/temporal-runtime';
import {
  assertHostsConsistent,
  configLinks,
  configMoving,
  liveVersions,
  NEW,
  rollout,
  startSandbox,
  STRATEGY,
  waitFor,
  type Sandbox,
} from './helpers';

let sandbox: Sandbox | undefined;
let serverHome: string | undefined;

afterEach(async () => {
  await sandbox?.stop();
  if (serverHome) await stopDevServer(serverHome);
  sandbox = undefined;
});

/** A dev server of the test's own, on a SQLite file, and a way to SIGKILL it and start it again on the same file. */
async function ownServer() {
  serverHome = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-server-'));
  const home = serverHome;
  const address = `127.0.0.1:${await freePort()}`;
  const server = { home, address, namespace: 'default', uiPort: 0, headless: true, say: () => undefined };
  await startDevServer(server);
  return {
    address,
    async killAndRestart() {
      const before = devServerPid(home);
      process.kill(before!, 'SIGKILL');
      await waitFor('the server to be gone', async () => devServerPid(home) === null, 10_000, 50);
      await startDevServer(server);
      expect(devServerPid(home)).not.toBe(before);
    },
  };
}

describe('a Temporal server restart', () => {
  it('mid-rollout: resumes the rollout from the SQLite file, with every host consistent', async () => {
    const { address, killAndRestart } = await ownServer();
    sandbox = await startSandbox({
      temporalAddress: address,
      configure: (c) =>
        c.services['mediawiki-config'].checks.push({ name: 'settle', command: ['sleep', '1'], timeoutMs: 5000 }),
    });
    const release = await configMoving(sandbox, ['testwikis']);
    const handle = await rollout(sandbox, release, { ...STRATEGY, batch: '2' });
    await waitFor(
      'a batch in flight',
      async () => {
        const s = await handle.query(rolloutStatusQuery);
        return s.phase === 'batches' && s.done >= 2 && s.done < 6;
      },
      90_000,
      100,
    );
    await killAndRestart();
    const status: RolloutStatus = await handle.result();
    expect(status.phase).toBe('done');
    expect(status.failed).toBe(0);
    expect(new Set(Object.values(await configLinks(sandbox)))).toEqual(new Set([release.id]));
    await assertHostsConsistent(sandbox, 'mediawiki-config');
  });

  it('mid-train: the train picks up at the station it was on and reaches group2', async () => {
    const { address, killAndRestart } = await ownServer();
    sandbox = await startSandbox({ temporalAddress: address });
    const handle = await startTrain(
      sandbox.client,
      sandbox.config,
      trainInputFrom(sandbox.config, NEW, { autoApprove: true }),
    );
    const atKill: TrainStatus = await waitFor(
      'the train past testwikis',
      async () => {
        const s = await handle.query(trainStatusQuery);
        return s.station >= STATIONS.indexOf('testwikis') && s.station < STATIONS.indexOf('group2') && s;
      },
      120_000,
      100,
    );
    await killAndRestart();
    const result: TrainStatus = await handle.result();
    expect(result.state).toBe('complete');
    expect(Object.values(result.versions)).toEqual([NEW, NEW, NEW, NEW]);
    // Each station was moved once: the restart neither lost a move nor replayed one.
    const moves = result.events.map((e) => e.what).filter((what) => /^move \S+ to /.test(what));
    expect(moves).toEqual(
      STATIONS.flatMap((station) => [`move ${station} to ${NEW}`, `move ${station} to ${NEW}: done and verified`]),
    );
    expect(atKill.station).toBeGreaterThanOrEqual(0);
    for (const [db, versions] of await liveVersions(sandbox)) expect([...versions], db).toEqual([NEW]);
    await assertHostsConsistent(sandbox, 'mediawiki-config');
  });
});
