// The rollout engine on the sandbox's local transport: waves, re-runs, canary analysis, crash faults, the failure
// limit with dead and hanging hosts, operator control, a worker killed mid-promote, and bad input.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  pauseRollout,
  resumeRollout,
  rollbackRollout,
  rolloutStatusQuery,
  type RolloutStatus,
} from '../workflows/definitions';
import { fleetFile, loadInventory } from '../activities/inventory';
import { stageFromForge } from '../activities/releases';
import { SANDBOX_START_VERSION } from '../sandbox/wikis';
import {
  assertHostsConsistent,
  cli,
  configLinks,
  configMoving,
  failureOf,
  NEW,
  refusal,
  rollout,
  serviceOnEveryHost,
  startSandbox,
  STRATEGY,
  waitFor,
  workerProcess,
  type Sandbox,
} from './helpers';

let sandbox: Sandbox | undefined;

afterEach(async () => {
  await sandbox?.stop();
  sandbox = undefined;
});

describe('rollout engine', () => {
  it('deploys canaries then batches, records host state, and a second run touches nothing', async () => {
    sandbox = await startSandbox();
    const release = await configMoving(sandbox, ['testwikis']);
    const handle = await rollout(sandbox, release, STRATEGY, { id: 'first' });
    const status: RolloutStatus = await handle.result();
    expect(status.phase).toBe('done');
    expect(status.waves.map((w) => [w.name, w.hosts])).toEqual([
      ['canary', 1],
      ['batch 1', 4],
      ['batch 2', 3],
    ]);
    const hosts = await serviceOnEveryHost(sandbox, 'mediawiki-config');
    expect(hosts[0].host).toBe('mw1001'); // the named canary went first
    for (const h of hosts) {
      expect(h.links.current).toBe(`revs/${release.id}`);
      expect(h.state).toMatchObject({
        current: release.id,
        lastStable: release.id,
        deployedBy: 'tester (unverified: auth none)',
        runId: 'first',
      });
      expect(h.state.previous).toMatch(/^config-[0-9a-f]{12}$/);
    }
    await assertHostsConsistent(sandbox, 'mediawiki-config');

    const again: RolloutStatus = await (await rollout(sandbox, release, STRATEGY, { id: 'second' })).result();
    expect(again.waves).toEqual([]);
    expect(again.done).toBe(8);
    for (const h of await serviceOnEveryHost(sandbox, 'mediawiki-config')) expect(h.state.runId).toBe('first');
  });

  it('rolls back a canary whose error rate is above the baseline, and only the canary ever served it', async () => {
    // Three one-second samples: one holds about 20 canary requests, too few to tell a fault in one group's wikis
    // from noise every time, and the judge would then (rightly, at its alpha) not fail it.
    sandbox = await startSandbox({
      trafficPerSecond: 200,
      configure: (c) => (c.services['mediawiki-config'].analysis.measurements = 3),
    });
    fs.writeFileSync(
      path.join(sandbox.home, 'sandbox', 'faults.json'),
      JSON.stringify({ [NEW]: { groups: { group2: { errorRate: 0.5 } } } }),
    );
    const before = await configLinks(sandbox);
    const release = await configMoving(sandbox, ['testwikis', 'group0', 'group1', 'group2']);
    const err = await (await rollout(sandbox, release)).result().catch((e) => e);
    const failure = failureOf(err);
    expect(failure.type).toBe('RolloutRolledBack');
    expect(failure.message).toMatch(
      /^canary analysis failed: errors: errors \d+\.\d\d% of [\d,]+ vs \d\.\d\d% of [\d,]+ on the baseline; .* at sample \d+; rolled back 1 hosts/,
    );
    expect(await configLinks(sandbox)).toEqual(before);
    const hosts = await serviceOnEveryHost(sandbox, 'mediawiki-config');
    const exposed = hosts.filter((h) => h.state.previous === release.id).map((h) => h.host);
    expect(exposed).toEqual(['mw1001']);
    await assertHostsConsistent(sandbox, 'mediawiki-config');
  });

  it('counts a release that will not start as a failure, and rolls back at max-fail 0', async () => {
    sandbox = await startSandbox();
    fs.writeFileSync(
      path.join(sandbox.home, 'sandbox', 'faults.json'),
      JSON.stringify({ [NEW]: { groups: {}, crash: true, signature: 'Class "Wikimedia\\\\Foo" not found' } }),
    );
    const before = await configLinks(sandbox);
    const release = await configMoving(sandbox, ['testwikis']);
    const failure = failureOf(await (await rollout(sandbox, release)).result().catch((e) => e));
    expect(failure.message).toMatch(/1 hosts failed, more than the limit of 0: mw1001: restart failed/);
    expect(await configLinks(sandbox)).toEqual(before);
    const live = (await (
      await fetch(`${JSON.parse(fs.readFileSync(fleetFile(sandbox.home), 'utf8')).controlUrl}/hosts`)
    ).json()) as { up: boolean; pooled: boolean }[];
    expect(live.every((h: { up: boolean; pooled: boolean }) => h.up && h.pooled)).toBe(true);
  });

  it('counts an unreachable host and a hanging check as failures, and finishes within the limit', async () => {
    sandbox = await startSandbox({
      worker: false,
      configure: (c) => {
        c.services['mediawiki-config'].checks.push({
          name: 'slow check',
          command: ['sleep', '30'],
          timeoutMs: 1000,
          groups: ['slow'],
        });
        c.fleet.ssh = { knownHosts: '/dev/null', connectTimeoutMs: 2000 };
      },
    });
    const fleet = JSON.parse(fs.readFileSync(fleetFile(sandbox.home), 'utf8'));
    fleet.hosts[3].groups.push('slow');
    fleet.hosts.push({
      name: 'mw-gone',
      address: '127.0.0.254',
      port: 9,
      sshPort: 9,
      root: '/srv/gone',
      groups: ['appserver'],
      transport: 'ssh',
    });
    fs.writeFileSync(fleetFile(sandbox.home), JSON.stringify(fleet));
    await sandbox.startWorker();
    const release = await configMoving(sandbox, ['testwikis']).catch(async (err) => {
      throw err;
    });
    const status: RolloutStatus = await (
      await rollout(sandbox, release, { ...STRATEGY, canary: null, batch: '100%', maxFail: '2' })
    ).result();
    expect(status.phase).toBe('done');
    expect(status.failed).toBe(2);
    const byHost = Object.fromEntries(status.failures.map((f) => [f.host, f.detail]));
    expect(byHost['mw-gone']).toMatch(/ssh connection to 127\.0\.0\.254:9 failed/);
    expect(byHost.mw1004).toMatch(/check "slow check" failed: .*timed out after 1000 ms/);
    const links = await configLinks(sandbox);
    expect(links.mw1004).not.toBe(release.id); // a host that failed its checks went straight back
    expect(Object.entries(links).filter(([h, r]) => h !== 'mw1004' && r === release.id)).toHaveLength(7);
  });

  it('pauses, refuses a resume it cannot honour, and rolls back on request', async () => {
    sandbox = await startSandbox();
    const before = await configLinks(sandbox);
    const release = await configMoving(sandbox, ['group0']);
    const handle = await rollout(sandbox, release, STRATEGY, { pauseAfterCanary: true });
    const paused = await waitFor('the canary pause', async () => {
      const s = await handle.query(rolloutStatusQuery);
      return s.paused && s;
    });
    expect(paused.pauseReason).toMatch(/canaries are live/);
    expect(paused.done).toBe(1);
    expect((await handle.executeUpdate(pauseRollout, { args: [{ by: 'ops' }] })).paused).toBe(true);
    await handle.executeUpdate(resumeRollout, { args: [{ by: 'ops' }] });
    expect(await refusal(handle.executeUpdate(resumeRollout, { args: [{ by: 'ops' }] }))).toMatch(/not paused/);
    await handle.executeUpdate(pauseRollout, { args: [{ by: 'ops', reason: 'dashboards look odd' }] });
    await handle.executeUpdate(rollbackRollout, { args: [{ by: 'ops' }] });
    expect(failureOf(await handle.result().catch((e) => e)).message).toMatch(
      /rollback requested by operator; rolled back \d+ hosts/,
    );
    expect(await configLinks(sandbox)).toEqual(before);
  });

  it('resumes after the worker is killed mid-promote, with every host consistent', async () => {
    sandbox = await startSandbox({
      worker: false,
      configure: (c) =>
        c.services['mediawiki-config'].checks.push({ name: 'settle', command: ['sleep', '1'], timeoutMs: 5000 }),
    });
    const release = await configMoving(sandbox, ['testwikis']);
    const first = workerProcess(sandbox);
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
    first.kill('SIGKILL');
    const second = workerProcess(sandbox);
    try {
      const status: RolloutStatus = await handle.result();
      expect(status.phase).toBe('done');
      expect(status.failed).toBe(0);
      expect(new Set(Object.values(await configLinks(sandbox)))).toEqual(new Set([release.id]));
      await assertHostsConsistent(sandbox, 'mediawiki-config');
    } finally {
      second.kill('SIGTERM');
    }
  });

  it('deploys from the CLI: dry run touches nothing, canaries widen by host state, bad input is refused', async () => {
    sandbox = await startSandbox();
    await configMoving(sandbox, ['group1']);
    const before = JSON.stringify(await serviceOnEveryHost(sandbox, 'mediawiki-config'));
    const dry = await cli(sandbox, ['deploy', 'main', '--service', 'mediawiki-config', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/canary:\n {2}mw1001: config-[0-9a-f]{12} -> config-[0-9a-f]{12}/);
    expect(dry.stdout).toMatch(/-\s+"enwiktionary": "php-1\.41\.0-wmf\.25"/);
    expect(JSON.stringify(await serviceOnEveryHost(sandbox, 'mediawiki-config'))).toBe(before);

    for (const bad of [
      ['deploy', 'main;reboot', '--service', 'mediawiki-config'],
      ['deploy', '../../etc/passwd-0123456789ab', '--service', 'mediawiki-config'],
      ['deploy', 'main', '--service', 'Bad_Service'],
      ['deploy', 'main', '--service', 'mediawiki-config', '--canary', 'lots'],
    ]) {
      const refused = await cli(sandbox, bad);
      expect(refused.code, bad.join(' ')).toBe(2);
      expect(refused.stderr).toMatch(/invalid|unknown service/);
    }
    const badConfig = path.join(sandbox.home, 'bad.yml');
    fs.writeFileSync(badConfig, 'auth: none\nservices:\n  mediawiki:\n    link: [oops]\n');
    const refusedConfig = await cli(sandbox, [
      '--config',
      badConfig,
      'deploy',
      'main',
      '--service',
      'mediawiki-config',
    ]);
    expect(refusedConfig.code).toBe(2);
    expect(refusedConfig.stderr).toMatch(
      /bad\.yml is not valid:\n {2}- line 4, services\.mediawiki\.link: must be string/,
    );
    expect(JSON.stringify(await serviceOnEveryHost(sandbox, 'mediawiki-config'))).toBe(before);

    const onRelease = async () =>
      Object.values(await configLinks(sandbox!)).filter(
        (r) => r !== JSON.parse(before)[0].links.current.replace('revs/', ''),
      ).length;
    expect(
      (
        await cli(sandbox, [
          'deploy',
          'main',
          '--service',
          'mediawiki-config',
          '--canary',
          '25%',
          '--batch',
          '0',
          '--yes',
        ])
      ).code,
    ).toBe(0);
    expect(await onRelease()).toBe(2);
    expect(
      (
        await cli(sandbox, [
          'deploy',
          'main',
          '--service',
          'mediawiki-config',
          '--canary',
          '50%',
          '--batch',
          '0',
          '--yes',
        ])
      ).code,
    ).toBe(0);
    expect(await onRelease()).toBe(4);
    const full = await cli(sandbox, ['deploy', 'main', '--service', 'mediawiki-config', '--yes']);
    expect(full.stdout).toContain('deployed config-');
    expect(await onRelease()).toBe(8);
  });
});

describe('Depends-On', () => {
  it('refuses a config change until the code change it depends on is live on every host, then deploys it', async () => {
    sandbox = await startSandbox();
    const s = sandbox;
    const code = SANDBOX_START_VERSION;
    await s.forge.land({
      repo: 'mediawiki-config',
      branch: 'main',
      files: { 'FancyFeature.php': '<?php $wgFancyFeature = true;\n' },
      subject: 'Enable FancyFeature everywhere',
      changeId: 'I-fancy-config',
      dependsOn: ['I-fancy-code'],
      author: 'tester',
    });
    const before = JSON.stringify(await serviceOnEveryHost(s, 'mediawiki-config'));

    const notLanded = await cli(s, ['deploy', 'main', '--service', 'mediawiki-config', '--yes']);
    expect(notLanded.code).toBe(2);
    expect(notLanded.stderr).toMatch(
      /\("Enable FancyFeature everywhere"\) depends on I-fancy-code, which is in none of mediawiki-config, mediawiki/,
    );
    expect(JSON.stringify(await serviceOnEveryHost(s, 'mediawiki-config'))).toBe(before);

    // The backport lands on the running branch but is not deployed yet: still refused, naming the hosts without it.
    await s.forge.land({
      repo: 'mediawiki',
      branch: `wmf/${code}`,
      files: { 'includes/FancyFeature.php': '<?php class FancyFeature {}\n' },
      subject: 'Backport: FancyFeature',
      changeId: 'I-fancy-code',
      author: 'tester',
    });
    const notLive = await cli(s, ['deploy', 'main', '--service', 'mediawiki-config', '--yes']);
    expect(notLive.code).toBe(2);
    expect(notLive.stderr).toMatch(
      /depends on I-fancy-code \(mediawiki [0-9a-f]{10}\), which is not live on 8 of 8 hosts \(mw1001, .*, and 3 more\); deploy it there first/,
    );
    expect(JSON.stringify(await serviceOnEveryHost(s, 'mediawiki-config'))).toBe(before);

    // Started straight on the engine (as a train or a script would), the workflow refuses before touching a host.
    const release = await stageFromForge(
      s.forge,
      loadInventory(s.config).stagingDir,
      'mediawiki-config',
      'mediawiki-config',
      'refs/heads/main',
      'config',
    );
    const refused = await (await rollout(s, release)).result().then(
      () => undefined,
      (err) => (err as { cause?: { cause?: { type?: string; message?: string } } }).cause?.cause,
    );
    expect(refused?.type).toBe('DependencyNotLive');
    expect(refused?.message).toMatch(/not live on 8 of 8 hosts/);
    expect(JSON.stringify(await serviceOnEveryHost(s, 'mediawiki-config'))).toBe(before);

    const codeDeploy = await cli(s, ['deploy', code, '--yes']);
    expect(codeDeploy.stdout).toContain(`deployed ${code}-`);
    const deployed = await cli(s, ['deploy', 'main', '--service', 'mediawiki-config', '--yes']);
    expect(deployed.stderr).toBe('');
    expect(deployed.stdout).toContain('deployed config-');
    for (const h of await serviceOnEveryHost(s, 'mediawiki-config'))
      expect(fs.existsSync(path.join(h.root, 'mediawiki-config', h.links.current!, 'FancyFeature.php'))).toBe(true);
  });
});
