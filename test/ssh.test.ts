// The engine over real OpenSSH (ssh2 client) with hosts pulling from a real rsync daemon, as an unprivileged
// deploy user: a deploy, a canary that catches a fault, a rollback, and host keys that are unknown or changed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RolloutStatus } from '../workflows/definitions';
import { ApplicationFailure } from '@temporalio/common';
import { closeTransports, loadInventory } from '../activities/inventory';
import {
  configLinks,
  configMoving,
  failureOf,
  NEW,
  rollout,
  serviceOnEveryHost,
  startSandbox,
  STRATEGY,
  type Sandbox,
} from './helpers';
import { expectNoOverlap, promoteElsewhere, restartBegun, slowRestart } from './lost-lock';
import { DEPLOY_USER, sshConfig, startSshFleet, type SshFleet } from '../sandbox/ssh-fleet';

let sandbox: Sandbox | undefined;
let ssh: SshFleet | undefined;

afterEach(async () => {
  closeTransports();
  await sandbox?.stop();
  ssh?.stop();
  sandbox = undefined;
  ssh = undefined;
});

async function sshSandbox(trafficPerSecond = 120): Promise<Sandbox> {
  const s = await startSandbox({ worker: false, hosts: 6, trafficPerSecond });
  ssh = await startSshFleet(s.home);
  s.reconfigure((raw) => sshConfig(raw, ssh!));
  await s.startWorker();
  return s;
}

describe('over SSH and rsync', () => {
  it('deploys as the deploy user, pulling from the rsync daemon, and rolls back by switching links', async () => {
    sandbox = await sshSandbox();
    const before = await configLinks(sandbox);
    const release = await configMoving(sandbox, ['testwikis', 'group0']);
    const status: RolloutStatus = await (await rollout(sandbox, release)).result();
    expect(status.phase).toBe('done');
    expect(status.failed).toBe(0);
    expect(new Set(Object.values(await configLinks(sandbox)))).toEqual(new Set([release.id]));
    const host = (await serviceOnEveryHost(sandbox, 'mediawiki-config'))[2];
    if (process.getuid?.() === 0) {
      const owner = execFileSync('stat', ['-c', '%U', path.join(host.root, 'mediawiki-config', 'revs', release.id)], {
        encoding: 'utf8',
      }).trim();
      expect(owner).toBe(DEPLOY_USER);
    }
    const rolledBack = await sandbox.activities.rollbackHosts({
      service: 'mediawiki-config',
      release,
      hosts: Object.keys(before),
      by: 'ops',
      runId: 'manual-rollback',
    });
    expect(rolledBack.map((r) => r.outcome)).toEqual(Object.keys(before).map(() => 'rolled-back'));
    expect(await configLinks(sandbox)).toEqual(before);
  });

  it('catches a faulty canary over SSH and rolls it back', async () => {
    sandbox = await sshSandbox(200);
    fs.writeFileSync(
      path.join(sandbox.home, 'sandbox', 'faults.json'),
      JSON.stringify({ [NEW]: { groups: { group2: { errorRate: 0.6 } } } }),
    );
    const before = await configLinks(sandbox);
    const release = await configMoving(sandbox, ['testwikis', 'group0', 'group1', 'group2']);
    const failure = failureOf(await (await rollout(sandbox, release)).result().catch((e) => e));
    expect(failure.type).toBe('RolloutRolledBack');
    expect(failure.message).toMatch(/canary analysis failed/);
    expect(await configLinks(sandbox)).toEqual(before);
  });

  it('a connection that drops mid-step, or a worker killed mid-step, loses the lock: nothing more of that operation runs, and the next waits for its step', async () => {
    sandbox = await startSandbox({ worker: false, hosts: 2, configure: (c) => slowRestart(c) });
    const s = sandbox;
    ssh = await startSshFleet(s.home);
    s.reconfigure((raw) => sshConfig(raw, ssh!));
    const before = await configLinks(s);
    const release = await configMoving(s, ['testwikis']);
    const [mw1001, mw1002] = loadInventory(s.config).hosts;
    const run = { service: 'mediawiki-config', release, by: 'tester', runId: 'ssh-run', fence: 'ssh-run' };
    const fetched = await s.activities.fetchToHosts({ ...run, hosts: [mw1001.name, mw1002.name] });
    expect(fetched.map((r) => r.outcome)).toEqual(['done', 'done']);

    // mw1001: the worker's connection ends while the promote restarts the host, and the worker goes on.
    const promote = s.activities.promoteHosts({ ...run, hosts: [mw1001.name] }).catch((err: unknown) => err);
    await restartBegun(mw1001.root, release.id);
    closeTransports();
    // A rollback of the run comes in over a new connection: it waits for the restart, still running on the host.
    const rollback = s.activities.rollbackHosts({ ...run, hosts: [mw1001.name] });
    const [lost, rolledBack] = await Promise.all([promote, rollback]);
    expect(expectNoOverlap(mw1001.root).map((step) => `${step.edge} ${step.release}`)).toEqual([
      `begin ${release.id}`,
      `end ${release.id}`,
      `begin ${before.mw1001}`,
      `end ${before.mw1001}`,
    ]);
    // The promote stopped at its next step, failing its activity for Temporal to retry; the rollback put the host back.
    expect(lost).toBeInstanceOf(ApplicationFailure);
    expect(lost).toMatchObject({ type: 'LockLost', message: expect.stringMatching(/^mw1001: lock lost: /) });
    expect(rolledBack).toMatchObject([{ host: mw1001.name, outcome: 'rolled-back', previous: before.mw1001 }]);

    // mw1002: the worker is killed mid-restart; its retry waits for that restart, then finishes the promote.
    const worker = promoteElsewhere(s, { ...run, hosts: [mw1002.name] });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await restartBegun(mw1002.root, release.id);
    worker.kill('SIGKILL');
    await exited;
    expect(await s.activities.promoteHosts({ ...run, hosts: [mw1002.name] })).toMatchObject([
      { host: mw1002.name, outcome: 'done' },
    ]);
    expect(expectNoOverlap(mw1002.root).map((step) => `${step.edge} ${step.release}`)).toEqual(
      ['begin', 'end', 'begin', 'end'].map((edge) => `${edge} ${release.id}`),
    );
    expect(await configLinks(s)).toEqual({ ...before, [mw1002.name]: release.id });
  });

  it('refuses a host whose key is unknown, and one whose key changed', async () => {
    sandbox = await sshSandbox();
    const lines = fs.readFileSync(ssh!.knownHosts, 'utf8').trim().split('\n');
    const otherKey = fs.readFileSync(`${ssh!.hostKeys[0]}.pub`, 'utf8').trim().split(/\s+/)[1];
    const changed = lines[2].replace(/\S+$/, otherKey);
    fs.writeFileSync(ssh!.knownHosts, `${[lines[0], changed, ...lines.slice(3)].join('\n')}\n`);
    const code = await sandbox.activities.stageCode({ version: NEW, by: 'test' });
    const hosts = Object.keys(await configLinks(sandbox));
    const fetched = Object.fromEntries(
      (
        await sandbox.activities.fetchToHosts({ service: 'mediawiki', release: code, hosts, by: 'test', runId: 'keys' })
      ).map((r) => [r.host, r]),
    );
    expect(fetched.mw1002.detail).toMatch(
      /^mw1002: host key of 127\.0\.10\.2:\d+ is unknown; add it to .*known_hosts after checking it out of band$/,
    );
    expect(fetched.mw1003.detail).toMatch(
      /^mw1003: host key of 127\.0\.10\.3:\d+ does not match .*known_hosts: it changed, refusing to connect$/,
    );
    expect(['mw1001', 'mw1004', 'mw1005', 'mw1006'].map((h) => fetched[h].outcome)).toEqual([
      'done',
      'done',
      'done',
      'done',
    ]);
    // The engine stops before switching anything when fetches fail past the limit.
    const failure = failureOf(
      await (
        await rollout(sandbox, code, { ...STRATEGY, maxFail: '1' }, { service: 'mediawiki' })
      )
        .result()
        .catch((e) => e),
    );
    expect(failure.message).toMatch(/2 hosts failed to fetch, more than the limit of 1; nothing was switched/);
    for (const h of await serviceOnEveryHost(sandbox, 'mediawiki')) expect(h.links[`php-${NEW}`]).toBeUndefined();
  });

  it('reads hashed known_hosts entries, and refuses a host whose key is marked @revoked', async () => {
    sandbox = await sshSandbox();
    const lines = fs.readFileSync(ssh!.knownHosts, 'utf8').trim().split('\n');
    const revokedKey = lines[3].split(/\s+/).slice(1, 3).join(' '); // mw1004's key
    fs.writeFileSync(ssh!.knownHosts, `${lines.join('\n')}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', ssh!.knownHosts], { stdio: 'ignore' }); // every host name hashed, as HashKnownHosts does
    fs.appendFileSync(ssh!.knownHosts, `@revoked * ${revokedKey}\n`);
    expect(fs.readFileSync(ssh!.knownHosts, 'utf8')).not.toContain('127.0.10.');
    const code = await sandbox.activities.stageCode({ version: NEW, by: 'test' });
    const hosts = Object.keys(await configLinks(sandbox));
    const fetched = Object.fromEntries(
      (
        await sandbox.activities.fetchToHosts({
          service: 'mediawiki',
          release: code,
          hosts,
          by: 'test',
          runId: 'hashed',
        })
      ).map((r) => [r.host, r]),
    );
    expect(fetched.mw1004.detail).toMatch(
      /^mw1004: host key of 127\.0\.10\.4:\d+ is marked @revoked in .*known_hosts; refusing to connect$/,
    );
    expect(['mw1001', 'mw1002', 'mw1003', 'mw1005', 'mw1006'].map((h) => fetched[h].outcome)).toEqual([
      'done',
      'done',
      'done',
      'done',
      'done',
    ]);
  });
});
