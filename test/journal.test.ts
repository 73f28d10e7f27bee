// The per-host journal on real sandbox hosts: a promote resumed from each step a crash can leave a host at, a
// rollback that only moves back what its run touched and names the hosts it cannot put back, bounded host
// results with the full text in a log, and pruning that keeps every release something may still need.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  activateRelease,
  journalFor,
  linkTarget,
  lockService,
  readService,
  writeJournal,
  type HostJournal,
  type JournalStep,
  type ServiceState,
} from '../activities/host-ops';
import { closeTransports, fleetFile, loadInventory } from '../activities/inventory';
import { poolStates, setPooled } from '../activities/loadbalancer';
import { stageFromForge, type Release } from '../activities/releases';
import { LocalTransport } from '../activities/transport';
import type { HostResult } from '../workflows/definitions';
import {
  askVersion,
  assertHostsConsistent,
  configMoving,
  NEW,
  OLD,
  serviceOnEveryHost,
  startSandbox,
  type Sandbox,
} from './helpers';
import { expectNoOverlap, promoteElsewhere, restartBegun, slowRestart } from './lost-lock';

const SERVICE = 'mediawiki-config';
const RUN = 'journal-run';

let sandbox: Sandbox | undefined;

afterEach(async () => {
  closeTransports();
  await sandbox?.stop();
  sandbox = undefined;
});

type Crash = JournalStep | 'switched-before-journal' | 'no-journal';

/**
 * Leaves a host exactly as a worker killed during a promote would: the journal at `crash`, the load balancer and
 * the link to match. 'switched-before-journal' is a kill inside the switch (link moved, journal still 'depooled');
 * 'no-journal' is a host switched by an engine that kept no journal, left depooled.
 */
async function crashPromote(s: Sandbox, hostName: string, release: Release, crash: Crash): Promise<void> {
  const inv = loadInventory(s.config);
  const host = inv.hosts.find((h) => h.name === hostName)!;
  const t = new LocalTransport(host.name);
  const before = await readService(t, host.name, host.root, SERVICE, [path.join(host.root, 'logs', 'error.log')]);
  const replaced = linkTarget(before, 'current');
  const entry = (step: JournalStep): HostJournal => ({
    op: 'promote',
    runId: RUN,
    release: release.id,
    replaced,
    link: 'current',
    step,
    at: new Date().toISOString(),
    stateBefore: before.state,
    logOffsets: before.logSizes,
  });
  const state: ServiceState = {
    current: release.id,
    previous: before.state.current,
    lastStable: before.state.lastStable,
    deployedAt: new Date().toISOString(),
    deployedBy: 'tester',
    runId: RUN,
    replaced,
  };
  await setPooled(inv.loadBalancer, host.name, false);
  if (crash === 'no-journal') {
    fs.rmSync(path.join(host.root, SERVICE, 'journal.json'), { force: true });
    await activateRelease(t, host.name, host.root, SERVICE, release.id, 'current', state);
    return;
  }
  await writeJournal(t, host.name, host.root, SERVICE, entry('depooled'));
  if (crash === 'depooled') return;
  if (crash === 'switched-before-journal')
    return activateRelease(t, host.name, host.root, SERVICE, release.id, 'current', state);
  await activateRelease(t, host.name, host.root, SERVICE, release.id, 'current', state, { journal: entry('switched') });
  if (crash === 'switched') return;
  const restarted = await fetch(`${inv.loadBalancer}/hosts/${host.name}/restart`, { method: 'POST' });
  expect(restarted.ok).toBe(true);
  await writeJournal(t, host.name, host.root, SERVICE, entry('restarted'));
  if (crash === 'restarted') return;
  await writeJournal(t, host.name, host.root, SERVICE, entry('checked'));
}

/** What each host's app server answers for every wiki of a group: the version it loaded at its last restart. */
async function answering(s: Sandbox, hostNames: string[], group: string): Promise<Record<string, string[]>> {
  const wikis: Record<string, { domain: string; group: string }> = JSON.parse(
    await s.forge.readFile(SERVICE, 'refs/heads/main', 'wikis.json'),
  );
  const { hosts } = loadInventory(s.config);
  const found: Record<string, string[]> = {};
  for (const name of hostNames) {
    const host = hosts.find((h) => h.name === name)!;
    const versions = new Set<string>();
    for (const w of Object.values(wikis).filter((w) => w.group === group)) {
      versions.add(await askVersion(host, w.domain));
    }
    found[name] = [...versions];
  }
  return found;
}

const byHost = (results: HostResult[]) => Object.fromEntries(results.map((r) => [r.host, r]));

describe('host journal', () => {
  it('resumes a promote from every step a crash leaves a host at, and never calls an unchecked host done', async () => {
    sandbox = await startSandbox({
      worker: false,
      // A check that fails with more output than a host result may carry, on one host only.
      configure: (c) =>
        c.services[SERVICE].checks.push({
          name: 'noisy check',
          command: ['sh', '-c', 'printf "%0600d" 0 >&2; exit 1'],
          groups: ['noisy'],
        }),
    });
    const s = sandbox;
    const fleet = JSON.parse(fs.readFileSync(fleetFile(s.home), 'utf8'));
    fleet.hosts[7].groups.push('noisy');
    fs.writeFileSync(fleetFile(s.home), JSON.stringify(fleet));
    const before = Object.fromEntries(
      (await serviceOnEveryHost(s, SERVICE)).map((h) => [h.host, linkTarget(h, 'current')]),
    );
    const release = await configMoving(s, ['testwikis']);
    const hosts = Object.keys(before);
    expect(
      (await s.activities.fetchToHosts({ service: SERVICE, release, hosts, by: 'tester', runId: RUN })).every(
        (r) => r.outcome === 'done',
      ),
    ).toBe(true);
    const crashes: Record<string, Crash> = {
      mw1001: 'depooled',
      mw1002: 'switched-before-journal',
      mw1003: 'switched',
      mw1004: 'restarted',
      mw1005: 'checked',
      mw1006: 'no-journal',
    };
    for (const [host, crash] of Object.entries(crashes)) await crashPromote(s, host, release, crash);

    const results = byHost(
      await s.activities.promoteHosts({ service: SERVICE, release, hosts, by: 'tester', runId: RUN }),
    );
    const healthy = hosts.filter((h) => h !== 'mw1008');
    for (const host of healthy) expect(results[host], host).toMatchObject({ outcome: 'done', previous: before[host] });
    const pools = await poolStates(loadInventory(s.config).loadBalancer);
    const onHosts = Object.fromEntries((await serviceOnEveryHost(s, SERVICE)).map((h) => [h.host, h]));
    for (const host of healthy) {
      expect(pools[host], `${host} pooled`).toBe(true);
      expect(onHosts[host].links.current).toBe(`revs/${release.id}`);
      expect(onHosts[host].state).toMatchObject({ current: release.id, runId: RUN, replaced: before[host] });
      expect(onHosts[host].journal).toMatchObject({
        op: 'promote',
        runId: RUN,
        release: release.id,
        replaced: before[host],
        step: 'repooled',
      });
      expect(onHosts[host].pins).not.toContain(release.id);
    }
    // Every host was restarted onto the release: none serves the old version it loaded before the switch.
    expect(await answering(s, healthy, 'testwikis')).toEqual(Object.fromEntries(healthy.map((h) => [h, [NEW]])));

    // The host whose check failed went back, restarted and repooled; its result is short and its log is whole.
    const noisy = results.mw1008;
    expect(noisy).toMatchObject({ outcome: 'failed', code: 'check-failed', previous: before.mw1008 });
    expect(noisy.detail!.length).toBeLessThanOrEqual(300);
    expect(noisy.log).toBe(path.join(s.home, 'logs', RUN, 'mw1008.log'));
    const logged = fs.readFileSync(noisy.log!, 'utf8');
    expect(logged).toMatch(/check "noisy check" failed: exit 1: 0{200}/);
    expect(logged).toContain(`back on ${before.mw1008}`);
    expect(onHosts.mw1008.links.current).toBe(`revs/${before.mw1008}`);
    expect(onHosts.mw1008.journal).toMatchObject({
      op: 'restore',
      runId: RUN,
      release: before.mw1008,
      replaced: release.id,
      step: 'repooled',
    });
    expect(pools.mw1008).toBe(true);
    expect(await answering(s, ['mw1008'], 'testwikis')).toEqual({ mw1008: [OLD] });
    await assertHostsConsistent(s, SERVICE);

    // Once checked and repooled, another run finds every healthy host already there.
    const again = byHost(
      await s.activities.promoteHosts({
        service: SERVICE,
        release,
        hosts: healthy,
        by: 'tester',
        runId: 'another-run',
      }),
    );
    expect(healthy.map((h) => again[h].outcome)).toEqual(healthy.map(() => 'already'));
  });

  it('a host whose state file cannot be written (a full disk) fails its switch, ends back on its link and in the pool', async () => {
    sandbox = await startSandbox({ worker: false });
    const s = sandbox;
    const before = Object.fromEntries(
      (await serviceOnEveryHost(s, SERVICE)).map((h) => [h.host, linkTarget(h, 'current')]),
    );
    const release = await configMoving(s, ['testwikis']);
    expect(
      (await s.activities.fetchToHosts({ service: SERVICE, release, hosts: ['mw1003'], by: 'tester', runId: RUN }))[0]
        .outcome,
    ).toBe('done');
    // Where the state file is written first, a directory: the write fails after the link has moved, as on a full disk.
    const host = loadInventory(s.config).hosts.find((h) => h.name === 'mw1003')!;
    fs.mkdirSync(path.join(host.root, SERVICE, '.state.json.next', 'full'), { recursive: true });

    const [promoted] = await s.activities.promoteHosts({
      service: SERVICE,
      release,
      hosts: ['mw1003'],
      by: 'tester',
      runId: RUN,
    });
    expect(promoted).toMatchObject({ outcome: 'failed', previous: before.mw1003 });
    // The result is bounded; its whole text is in the run's log.
    expect(fs.readFileSync(promoted.log!, 'utf8')).toMatch(
      new RegExp(
        `its link is back on ${before.mw1003} and it never restarted onto ${release.id}, so it serves what it did before and is back in the pool`,
      ),
    );
    const pooled = async () => (await poolStates(loadInventory(s.config).loadBalancer)).mw1003;
    expect(await pooled()).toBe(true);
    expect(await answering(s, ['mw1003'], 'testwikis')).toEqual({ mw1003: [OLD] });

    // The rollout's rollback of this run finds it never switched: it stays pooled on what it served.
    const [rolledBack] = await s.activities.rollbackHosts({
      service: SERVICE,
      release,
      hosts: ['mw1003'],
      by: 'tester',
      runId: RUN,
    });
    expect(rolledBack.outcome).not.toBe('failed');
    expect(await pooled()).toBe(true);
    const [onHost] = (await serviceOnEveryHost(s, SERVICE)).filter((h) => h.host === 'mw1003');
    expect(linkTarget(onHost, 'current')).toBe(before.mw1003);
  });

  it('rolls back only what its run touched, never forward, repools what it depooled, and names hosts it cannot put back', async () => {
    sandbox = await startSandbox({
      worker: false,
      configure: (c) => (c.fleet.ssh = { knownHosts: '/dev/null', connectTimeoutMs: 2000 }),
    });
    const s = sandbox;
    const before = Object.fromEntries(
      (await serviceOnEveryHost(s, SERVICE)).map((h) => [h.host, linkTarget(h, 'current')]),
    );
    const release = await configMoving(s, ['testwikis']);
    const hosts = Object.keys(before);
    await s.activities.fetchToHosts({ service: SERVICE, release, hosts, by: 'tester', runId: RUN });
    const promoted = await s.activities.promoteHosts({
      service: SERVICE,
      release,
      hosts: ['mw1001', 'mw1006'],
      by: 'tester',
      runId: RUN,
    });
    expect(promoted.map((r) => r.outcome)).toEqual(['done', 'done']);
    await crashPromote(s, 'mw1002', release, 'depooled');
    await crashPromote(s, 'mw1003', release, 'switched');
    await crashPromote(s, 'mw1004', release, 'restarted');
    // mw1006 stops answering: its files say it is on the release, and nothing can change that from here.
    const fleet = JSON.parse(fs.readFileSync(fleetFile(s.home), 'utf8'));
    const gone = fleet.hosts.find((h: { name: string }) => h.name === 'mw1006');
    Object.assign(gone, { transport: 'ssh', address: '127.0.0.254', sshPort: 9 });
    fs.writeFileSync(fleetFile(s.home), JSON.stringify(fleet));

    const rollback = () => s.activities.rollbackHosts({ service: SERVICE, release, hosts, by: 'tester', runId: RUN });
    const first = byHost(await rollback());
    const expectOutcomes = (results: Record<string, HostResult>) => {
      for (const host of ['mw1001', 'mw1003', 'mw1004'])
        expect(results[host], host).toMatchObject({ outcome: 'rolled-back', previous: before[host] });
      expect(results.mw1002).toMatchObject({ outcome: 'rolled-back', code: 'never-switched', previous: before.mw1002 });
      for (const host of ['mw1005', 'mw1007', 'mw1008'])
        expect(results[host], host).toMatchObject({ outcome: 'skipped', code: 'not-on-release' });
      expect(results.mw1006).toMatchObject({ outcome: 'failed', code: 'unreachable' });
      expect(results.mw1006.detail).toMatch(
        /^mw1006: ssh connection to 127\.0\.0\.254:9 failed.*; left depooled for a person$/,
      );
      expect(fs.readFileSync(results.mw1006.log!, 'utf8')).toContain('left depooled for a person');
    };
    expectOutcomes(first);

    const check = async () => {
      const pools = await poolStates(loadInventory(s.config).loadBalancer);
      const reachable = hosts.filter((h) => h !== 'mw1006');
      const onHosts = Object.fromEntries((await serviceOnEveryHost(s, SERVICE)).map((h) => [h.host, h]));
      for (const host of reachable) {
        expect(linkTarget(onHosts[host], 'current'), `${host} link`).toBe(before[host]);
        expect(onHosts[host].state.current, `${host} state`).toBe(before[host]);
        expect(pools[host], `${host} pooled`).toBe(true);
        expect(onHosts[host].pins).not.toContain(release.id);
      }
      for (const host of ['mw1001', 'mw1002', 'mw1003', 'mw1004']) {
        expect(onHosts[host].journal, host).toMatchObject({
          op: 'rollback',
          runId: RUN,
          release: before[host],
          replaced: release.id,
          step: 'repooled',
        });
      }
      expect(await answering(s, reachable, 'testwikis')).toEqual(Object.fromEntries(reachable.map((h) => [h, [OLD]])));
      // The host that could not be reached is out of the pool, still on the release, for a person to look at.
      expect(pools.mw1006).toBe(false);
      expect(linkTarget(onHosts.mw1006, 'current')).toBe(release.id);
    };
    await check();
    // A retried rollback changes nothing and reports the same outcomes.
    const retried = byHost(await rollback());
    const outcomes = (results: Record<string, HostResult>) =>
      hosts.map((h) => [h, results[h].outcome, results[h].previous]);
    expect(outcomes(retried)).toEqual(outcomes(first));
    await check();
  });

  it('a rollback waits for a promote still switching a host (its wave died), puts it back, and fences that run', async () => {
    sandbox = await startSandbox({ worker: false, hosts: 3 });
    const s = sandbox;
    const before = Object.fromEntries(
      (await serviceOnEveryHost(s, SERVICE)).map((h) => [h.host, linkTarget(h, 'current')]),
    );
    const release = await configMoving(s, ['testwikis']);
    const hosts = ['mw1001', 'mw1002'];
    const run = { service: SERVICE, release, by: 'tester', runId: RUN, fence: 'run-of-the-dead-wave' };
    await s.activities.fetchToHosts({ ...run, hosts });
    // The dead wave's activity still holds mw1001 and is half way through its switch.
    const mw1001 = loadInventory(s.config).hosts.find((h) => h.name === 'mw1001')!;
    const stale = await lockService(new LocalTransport('mw1001'), 'mw1001', mw1001.root, SERVICE, 'promote', run.fence);
    expect(stale.outcome).toBe('locked');
    // Another promote of the run is already waiting for the host when the rollback starts.
    const racing = s.activities.promoteHosts({ ...run, hosts: ['mw1001'] });
    await new Promise((r) => setTimeout(r, 500));
    let settled = false;
    const rollback = s.activities.rollbackHosts({ ...run, hosts }).finally(() => (settled = true));
    await crashPromote(s, 'mw1001', release, 'switched');
    await new Promise((r) => setTimeout(r, 1500));
    expect(settled, 'the rollback waits for the operation holding the host').toBe(false);
    stale.release();
    // Whichever of the two gets the lock first, the waiting promote lands nothing: the fence went up before it.
    expect((await racing)[0]).toMatchObject({ outcome: 'skipped', code: 'fenced' });
    const rolledBack = byHost(await rollback);
    expect(rolledBack.mw1001).toMatchObject({ outcome: 'rolled-back', previous: before.mw1001 });
    expect(rolledBack.mw1002).toMatchObject({ outcome: 'skipped', code: 'not-on-release' });
    // The dead wave's activity goes on to its next hosts: the run is fenced there, so nothing moves forward.
    const late = byHost(await s.activities.promoteHosts({ ...run, hosts: ['mw1002', 'mw1001'] }));
    for (const host of hosts) expect(late[host], host).toMatchObject({ outcome: 'skipped', code: 'fenced' });
    const links = async () =>
      Object.fromEntries((await serviceOnEveryHost(s, SERVICE)).map((h) => [h.host, linkTarget(h, 'current')]));
    expect(await links()).toEqual(before);
    await assertHostsConsistent(s, SERVICE);
    // Fences are per run: another rollout of the same release goes ahead.
    const next = await s.activities.promoteHosts({ ...run, fence: 'a-later-run', hosts: ['mw1002'] });
    expect(next.map((r) => r.outcome)).toEqual(['done']);
  });

  it('a worker killed mid-step keeps the host locked until that step ends: its retry goes on after it, never beside it', async () => {
    sandbox = await startSandbox({ worker: false, hosts: 2, configure: (c) => slowRestart(c) });
    const s = sandbox;
    const release = await configMoving(s, ['testwikis']);
    const mw1001 = loadInventory(s.config).hosts.find((h) => h.name === 'mw1001')!;
    const run = { service: SERVICE, release, by: 'tester', runId: RUN, fence: 'run-of-the-killed-worker' };
    const hosts = ['mw1001'];
    expect((await s.activities.fetchToHosts({ ...run, hosts }))[0].outcome).toBe('done');
    // The worker is killed while its promote restarts the host; the restart goes on there without it.
    const worker = promoteElsewhere(s, { ...run, hosts });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await restartBegun(mw1001.root, release.id);
    worker.kill('SIGKILL');
    await exited;
    // Temporal retries the activity at once on another worker: it waits for the host until the restart has ended.
    expect(await s.activities.promoteHosts({ ...run, hosts })).toMatchObject([{ host: 'mw1001', outcome: 'done' }]);
    const seen = expectNoOverlap(mw1001.root);
    expect(seen.map((step) => `${step.edge} ${step.release}`)).toEqual(
      ['begin', 'end', 'begin', 'end'].map((edge) => `${edge} ${release.id}`),
    );
    await assertHostsConsistent(s, SERVICE);
  });

  it('prunes down to keep=1 but never a release that state, a link or a running rollout still needs', async () => {
    sandbox = await startSandbox({ worker: false, hosts: 2, configure: (c) => (c.services[SERVICE].keep = 1) });
    const s = sandbox;
    const { stagingDir } = loadInventory(s.config);
    const hosts = ['mw1001', 'mw1002'];
    const bootstrapped = linkTarget((await serviceOnEveryHost(s, SERVICE))[0], 'current')!;
    const stage = async (name: string): Promise<Release> => {
      await s.forge.land({
        repo: SERVICE,
        branch: 'main',
        files: { [`${name}.php`]: `<?php // ${name}\n` },
        subject: name,
        changeId: `I-${name}`,
        author: 'tester',
      });
      return stageFromForge(s.forge, stagingDir, SERVICE, SERVICE, 'refs/heads/main', 'config');
    };
    const deploy = async (release: Release, runId: string) => {
      await s.activities.fetchToHosts({ service: SERVICE, release, hosts, by: 'tester', runId });
      const results = await s.activities.promoteHosts({ service: SERVICE, release, hosts, by: 'tester', runId });
      expect(results.map((r) => r.outcome)).toEqual(['done', 'done']);
    };
    // Oldest first: a release fetched by a rollout long gone, one fetched by a rollout still running, then two deploys.
    const abandoned = await stage('abandoned');
    await s.activities.fetchToHosts({ service: SERVICE, release: abandoned, hosts, by: 'tester', runId: 'gone-run' });
    const waiting = await stage('waiting');
    await s.activities.fetchToHosts({ service: SERVICE, release: waiting, hosts, by: 'tester', runId: 'running-run' });
    const first = await stage('first');
    await deploy(first, 'first-run');
    const second = await stage('second');
    await deploy(second, 'second-run');
    const weekAgo = new Date(Date.now() - 8 * 24 * 3600_000);
    for (const h of await serviceOnEveryHost(s, SERVICE))
      fs.utimesSync(path.join(h.root, SERVICE, 'pins', abandoned.id), weekAgo, weekAgo);

    const pruned = await s.activities.markStable({
      service: SERVICE,
      release: second,
      hosts,
      by: 'tester',
      runId: 'second-run',
    });
    expect(pruned).toBe(2); // the abandoned release, on each of the two hosts
    for (const h of await serviceOnEveryHost(s, SERVICE)) {
      expect(h.state).toMatchObject({
        current: second.id,
        previous: first.id,
        lastStable: second.id,
        replaced: first.id,
      });
      // Kept: the link's, the previous one, the pinned one, and the last stable one before `second` (its journal's
      // state to go back to names it). Only the release whose pin went stale is gone, and its pin with it.
      expect(new Set(h.revs)).toEqual(new Set([second.id, first.id, waiting.id, bootstrapped]));
      expect(fs.readdirSync(path.join(h.root, SERVICE, 'pins'))).toEqual([waiting.id]);
    }
  });

  it('moving hosts back, a host that fails its checks stays on the older release, in the pool, and its rollback moves nobody forward', async () => {
    sandbox = await startSandbox({
      worker: false,
      hosts: 2,
      configure: (c) =>
        c.services[SERVICE].checks.push({
          name: 'breaks on the older release',
          command: ['sh', '-c', 'test ! -e {{root}}/BREAKS'],
          groups: ['fragile'],
        }),
    });
    const s = sandbox;
    const { stagingDir } = loadInventory(s.config);
    const hosts = ['mw1001', 'mw1002'];
    const stage = async (name: string): Promise<Release> => {
      await s.forge.land({
        repo: SERVICE,
        branch: 'main',
        files: { [`${name}.php`]: `<?php // ${name}\n` },
        subject: name,
        changeId: `I-${name}`,
        author: 'tester',
      });
      return stageFromForge(s.forge, stagingDir, SERVICE, SERVICE, 'refs/heads/main', 'config');
    };
    const older = await stage('older');
    const newer = await stage('newer');
    for (const [release, runId] of [
      [older, 'older-run'],
      [newer, 'newer-run'],
    ] as const) {
      await s.activities.fetchToHosts({ service: SERVICE, release, hosts, by: 'tester', runId });
      expect(
        (await s.activities.promoteHosts({ service: SERVICE, release, hosts, by: 'tester', runId })).map(
          (r) => r.outcome,
        ),
      ).toEqual(['done', 'done']);
    }
    const fleet = JSON.parse(fs.readFileSync(fleetFile(s.home), 'utf8'));
    fleet.hosts[1].groups.push('fragile');
    fs.writeFileSync(fleetFile(s.home), JSON.stringify(fleet));
    fs.writeFileSync(path.join(fleet.hosts[1].root, 'BREAKS'), '');

    const back = { service: SERVICE, release: older, hosts, by: 'tester', runId: 'back-run', movingBack: true };
    const moved = byHost(await s.activities.promoteHosts(back));
    expect(moved.mw1001).toMatchObject({ outcome: 'done', previous: newer.id });
    expect(moved.mw1002).toMatchObject({ outcome: 'failed', code: 'check-failed-moving-back' });
    expect(moved.mw1002.detail).toMatch(
      /check "breaks on the older release" failed.*stays on .* \(the older release\), in the pool, marked unhealthy for a person to look at/,
    );
    expect(
      journalFor(
        (await serviceOnEveryHost(s, SERVICE)).find((h) => h.host === 'mw1002')!,
        'current',
      )?.step,
    ).toBe('unhealthy');

    const undone = byHost(await s.activities.rollbackHosts(back));
    expect(undone.mw1001.outcome).toBe('skipped');
    expect(undone.mw1002).toMatchObject({ outcome: 'failed', code: 'check-failed-moving-back' });
    const pools = await poolStates(loadInventory(s.config).loadBalancer);
    const links = Object.fromEntries(
      (await serviceOnEveryHost(s, SERVICE)).map((h) => [h.host, linkTarget(h, 'current')]),
    );
    expect(links).toEqual({ mw1001: older.id, mw1002: older.id });
    // Failing on the last good release is no reason to empty the pool: it stays in, named for a person.
    expect(pools).toMatchObject({ mw1001: true, mw1002: true });
  });
});
