// Benchmark: the rollout engine on a large sandbox fleet, against a plain parallel loop doing the same host work
// without Temporal, in the same process. Also: a rollback of every host, and a canary with 5% injected errors.
//
//   npm run bench -- [--hosts 1000]
//
// It starts its own Temporal dev server and fleet in a temporary folder and removes them when done.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { parse, stringify } from 'yaml';
import { DEFAULT_CONFIG_FILE, loadConfig, type SignalboxConfig } from '../../config/load';
import { createActivities } from '../../activities';
import { loadInventory } from '../../activities/inventory';
import type { Release } from '../../activities/releases';
import type { HostResult, RolloutStatus } from '../../workflows/definitions';
import { chunk, planRollout, type Strategy } from '../../workflows/plan';
import { createFleet, freePort, startFleetServer, stopFleetServer } from '../../sandbox/fleet';
import { faultsFile } from '../../sandbox/server';
import { createWorker } from '../../workers/worker';
import { CLI_ENTRY, startRollout } from '../../cli/client';
import { startDevServer, stopDevServer } from '../temporal-runtime';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const HOSTS = arg('hosts', 1000);
// No canary wave, so no analysis wait: the overhead runs compare host work and orchestration only.
export const STRATEGY: Strategy = { canary: null, batch: '10%', maxFail: '0', fetchConcurrency: 80 };
const CANARY: Strategy = { ...STRATEGY, canary: '10%' };
export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export interface BenchEnv {
  home: string;
  config: SignalboxConfig;
  client: Client;
  activities: ReturnType<typeof createActivities>;
  stop(): Promise<void>;
}

/** A dev server, a fleet (its server in its own process, as in production), and a worker, all temporary. */
export async function benchEnv(
  hosts: number,
  configure: (raw: any) => void = () => undefined,
  afterFleet?: (home: string) => Promise<(raw: any) => void>,
): Promise<BenchEnv> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-bench-'));
  const address = `127.0.0.1:${await freePort()}`;
  await startDevServer({ home, address, namespace: 'default', uiPort: 0, headless: true, say: () => undefined });
  const raw = parse(fs.readFileSync(DEFAULT_CONFIG_FILE, 'utf8'));
  raw.temporal = { ...raw.temporal, address };
  // Enough traffic that a 10% canary sees more than minRequests in one 3 s measurement.
  raw.fleet.sandbox = { hosts, trafficPerSecond: 400 };
  raw.services['mediawiki-config'].analysis = {
    ...raw.services['mediawiki-config'].analysis,
    intervalMs: 3000,
    measurements: 1,
    minRequests: 50,
    power: 0, // the bench times the engine; one 3 s canary sample cannot vouch for a release
  };
  configure(raw);
  const file = path.join(home, 'signalbox.yml');
  fs.writeFileSync(file, stringify(raw));
  process.env.SIGNALBOX_HOME = home;
  process.env.SIGNALBOX_CONFIG = file;
  let config = loadConfig(file, home);
  const started = Date.now();
  await createFleet(home, hosts, config.fleet.sandbox!.trafficPerSecond, await freePort());
  if (afterFleet) {
    (await afterFleet(home))(raw);
    fs.writeFileSync(file, stringify(raw));
    config = loadConfig(file, home);
  }
  await startFleetServer(home, CLI_ENTRY);
  console.log(`fleet of ${hosts} hosts created and serving in ${seconds(Date.now() - started)}`);
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const worker = await createWorker(config);
  const running = worker.run();
  return {
    home,
    config,
    client,
    activities: createActivities(config),
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
      await stopFleetServer(home);
      await stopDevServer(home);
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

export async function configRelease(
  env: BenchEnv,
  versions: Record<string, string>,
  changeId: string,
): Promise<Release> {
  return (
    await env.activities.landWikiversions({ versions: versions as any, subject: changeId, changeId, by: 'bench' })
  ).release;
}

export async function historyEvents(
  client: Client,
  workflowId: string,
  children: string[],
): Promise<{ parent: number; largestChild: number }> {
  const count = async (id: string) => (await client.workflow.getHandle(id).fetchHistory()).events?.length ?? 0;
  const childCounts = await Promise.all(children.map(count));
  return { parent: await count(workflowId), largestChild: Math.max(0, ...childCounts) };
}

export const childIds = (id: string, status: RolloutStatus) =>
  status.waves.map((w) => `${id}-${w.name.replace(/\s+/g, '-')}`);

/** The same host work as the engine, in plain parallel loops: fetch wide, then each wave, then mark stable. */
export async function plainLoop(env: BenchEnv, service: string, release: Release): Promise<HostResult[]> {
  const a = env.activities;
  const { current, canaryHosts } = await a.currentReleases({ service, release, selector: {} });
  const plan = planRollout(current, release.id, { ...STRATEGY, canaryHosts });
  const pending = plan.waves.flatMap((w) => w.hosts);
  const base = { service, release, by: 'bench', runId: 'plain-loop' };
  let t = Date.now();
  const phase = (name: string) => {
    console.log(`    plain loop ${name}: ${seconds(Date.now() - t)}`);
    t = Date.now();
  };
  phase('read state');
  for (const hosts of chunk(pending, 250))
    await a.fetchToHosts({ ...base, hosts, concurrency: STRATEGY.fetchConcurrency });
  phase('fetch');
  const results: HostResult[] = [];
  for (const wave of plan.waves) {
    const parts = await Promise.all(
      chunk(wave.hosts, 25).map((hosts) => a.promoteHosts({ ...base, hosts, concurrency: hosts.length })),
    );
    results.push(...parts.flat());
  }
  phase('promote');
  await Promise.all(chunk(Object.keys(current), 250).map((hosts) => a.markStable({ ...base, hosts })));
  phase('mark stable');
  return results;
}

async function main() {
  const env = await benchEnv(HOSTS, (raw) => {
    // The rollback run fails on one host of the last batch, chosen by a marker file.
    raw.services['mediawiki-config'].checks.push({ name: 'marker', command: ['test', '!', '-e', '{{root}}/FAIL'] });
  });
  const figures = new Proxy<Record<string, string>>(
    {},
    {
      set(target, key, value) {
        console.log(`  ${String(key)}: ${value}`);
        target[key as string] = value;
        return true;
      },
    },
  );
  try {
    const OLD = '1.41.0-wmf.25';
    const NEW = '1.41.0-wmf.26';
    const BAD = '1.41.0-wmf.27';
    const versions = (n: number, v: string) =>
      Object.fromEntries(['testwikis', 'group0', 'group1', 'group2'].map((g, i) => [g, i < n ? v : OLD]));

    let t = Date.now();
    const code = await env.activities.stageCode({ version: NEW, by: 'bench' });
    const stage = await startRollout(
      env.client,
      env.config,
      { service: 'mediawiki', release: code, selector: {}, strategy: STRATEGY, by: 'bench' },
      'bench-stage',
    );
    await stage.result();
    figures['stage code on every host (Temporal)'] = seconds(Date.now() - t);

    // Overhead: the same work, plain loop first, then through Temporal.
    const a = await configRelease(env, versions(1, NEW), 'bench-a');
    t = Date.now();
    const plain = await plainLoop(env, 'mediawiki-config', a);
    const plainMs = Date.now() - t;
    if (plain.some((r) => r.outcome !== 'done'))
      throw new Error(
        `plain loop had failures: ${JSON.stringify(plain.filter((r) => r.outcome !== 'done').slice(0, 3))}`,
      );
    const b = await configRelease(env, versions(2, NEW), 'bench-b');
    t = Date.now();
    const handle = await startRollout(
      env.client,
      env.config,
      { service: 'mediawiki-config', release: b, selector: {}, strategy: STRATEGY, by: 'bench' },
      'bench-b',
    );
    const status: RolloutStatus = await handle.result();
    const temporalMs = Date.now() - t;
    const events = await historyEvents(env.client, 'bench-b', childIds('bench-b', status));
    figures[`rollout to ${HOSTS} hosts, plain loop`] = seconds(plainMs);
    figures[`rollout to ${HOSTS} hosts, Temporal`] = seconds(temporalMs);
    figures['orchestration overhead (Temporal / plain)'] = `${(temporalMs / plainMs).toFixed(2)}x`;
    figures['largest history (events): parent / largest wave'] = `${events.parent} / ${events.largestChild}`;

    // Rollback of every host: the last batch's last host fails, and max-fail 0 sends all hosts back.
    const inventory = loadInventory(env.config);
    const victim = [...inventory.hosts].sort((x, y) => x.name.localeCompare(y.name)).pop()!;
    fs.writeFileSync(path.join(victim.root, 'FAIL'), '');
    const c = await configRelease(env, versions(3, NEW), 'bench-c');
    const failing = await startRollout(
      env.client,
      env.config,
      { service: 'mediawiki-config', release: c, selector: {}, strategy: STRATEGY, by: 'bench' },
      'bench-c',
    );
    await failing.result().catch(() => undefined);
    fs.rmSync(path.join(victim.root, 'FAIL'));
    const history = (await failing.fetchHistory()).events ?? [];
    const eventTime = (e: (typeof history)[number]) =>
      Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6);
    const firstRollback = history.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'rollbackHosts',
    );
    const closed = history[history.length - 1];
    const hostsBack = (await env.activities.currentReleases({ service: 'mediawiki-config', release: c, selector: {} }))
      .current;
    const stillOn = Object.values(hostsBack).filter((r) => r === c.id).length;
    figures[`rollback of ${HOSTS - 1} switched hosts (first rollback task to workflow closed)`] =
      `${seconds(eventTime(closed) - eventTime(firstRollback!))}, ${stillOn} hosts left on the release`;

    // A canary with 5% errors on every wiki: time from the first switch to the rollback, and hosts exposed.
    const bad = await env.activities.stageCode({ version: BAD, by: 'bench' });
    await (
      await startRollout(
        env.client,
        env.config,
        { service: 'mediawiki', release: bad, selector: {}, strategy: STRATEGY, by: 'bench' },
        'bench-stage-bad',
      )
    ).result();
    const everyGroup = { errorRate: 0.05 };
    fs.writeFileSync(
      faultsFile(env.home),
      JSON.stringify({
        [BAD]: { groups: { testwikis: everyGroup, group0: everyGroup, group1: everyGroup, group2: everyGroup } },
      }),
    );
    const d = await configRelease(env, versions(4, BAD), 'bench-d');
    const canary = await startRollout(
      env.client,
      env.config,
      { service: 'mediawiki-config', release: d, selector: {}, strategy: CANARY, by: 'bench' },
      'bench-d',
    );
    const outcome = await canary.result().then(
      () => 'completed: NOT caught',
      (err) => `rolled back (${err.cause?.message?.slice(0, 110)})`,
    );
    const canaryHistory = (await canary.fetchHistory()).events ?? [];
    const canaryWave = (await env.client.workflow.getHandle('bench-d-canary').fetchHistory()).events ?? [];
    const firstSwitch = canaryWave.find((e) => e.activityTaskStartedEventAttributes);
    const states = await env.activities.describeHosts();
    const exposed = states.filter((h) => {
      const s = h.services['mediawiki-config'];
      return 'state' in s && (s.state.current === d.id || s.state.previous === d.id);
    }).length;
    figures['5% error canary'] = outcome;
    figures['5% error canary: first switch to rollback complete'] = seconds(
      eventTime(canaryHistory[canaryHistory.length - 1]) - eventTime(firstSwitch!),
    );
    figures['5% error canary: hosts that ever served it'] =
      `${exposed} of ${HOSTS} (${((100 * exposed) / HOSTS).toFixed(1)}%)`;
    figures['peak memory of this process (RSS)'] = `${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`;
  } finally {
    await env.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
