// Bringing the sandbox fleet up and down: host folders, bare repositories, the first deploy, the server process.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { HostSpec } from '../config/load';
import { cutBranch, LocalGitForge } from '../activities/forge';
import { activateRelease, fetchRelease } from '../activities/host-ops';
import { eachWithLimit } from '../activities/hosts';
import { fleetFile, sandboxDir, type SandboxFleetFile } from '../activities/inventory';
import { stageFromForge, type Release } from '../activities/releases';
import { CODE_REPO, CONFIG_REPO } from '../activities/train';
import { LocalTransport } from '../activities/transport';
import { initialRoadmap, ngircdPath, seedRoadmap } from './records';
import { SANDBOX_START_VERSION, SANDBOX_WIKIS, seedCodeFiles, wikiversionsFor } from './wikis';
import { groupErrorRates } from './traffic';
import { chooseSeed } from './random';
import type { Station } from '../workflows/names';

export const APP_PORT = 8080;

/** Linux routes all of 127.0.0.0/8 to loopback, so each host gets an address; elsewhere each gets a port. */
export function hostAddress(index: number, port = APP_PORT): { address: string; port: number } {
  if (os.platform() !== 'linux') return { address: '127.0.0.1', port: port + 10_000 + index };
  return { address: `127.0.${10 + Math.floor(index / 250)}.${(index % 250) + 1}`, port };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function readFleet(home: string): SandboxFleetFile | null {
  try {
    return JSON.parse(fs.readFileSync(fleetFile(home), 'utf8'));
  } catch {
    return null;
  }
}

/** The fleet's background noise and the seed of its draws: fleet.sandbox's errorRate, bursts and seed. */
export interface SandboxNoise {
  errorRate?: number | Partial<Record<Station, number>>;
  bursts?: boolean;
  /** The seed of the fleet's random draws; absent, $SIGNALBOX_SANDBOX_SEED or a fresh one. */
  seed?: number;
  /** Test servers besides the hosts (mwdebug1001 and on): in group debug, in no load-balancer pool. */
  testServers?: number;
}

/** Creates the fleet's files once; a second call with a fleet present returns it unchanged. */
export async function createFleet(
  home: string,
  hostCount: number,
  trafficPerSecond: number,
  port = APP_PORT,
  noise: SandboxNoise = {},
): Promise<SandboxFleetFile> {
  const existing = readFleet(home);
  if (existing) {
    const appServers = existing.hosts.filter((h) => h.pool !== null).length;
    if (appServers !== hostCount) {
      throw new Error(
        `a sandbox of ${appServers} hosts already exists in ${sandboxDir(home)}; run \`signalbox sandbox down --purge\` first to make one of ${hostCount}`,
      );
    }
    return existing;
  }
  const dir = sandboxDir(home);
  const reposDir = path.join(dir, 'repos');
  const stagingDir = path.join(home, 'staging');
  const forge = new LocalGitForge(reposDir);
  await forge.init(CODE_REPO);
  await forge.init(CONFIG_REPO);
  const author = 'sandbox';
  await forge.land({
    repo: CODE_REPO,
    branch: 'main',
    files: seedCodeFiles(),
    subject: 'Initial import',
    changeId: 'seed-code',
    author,
  });
  await cutBranch(forge, CODE_REPO, SANDBOX_START_VERSION, author);
  await forge.land({
    repo: CONFIG_REPO,
    branch: 'main',
    files: {
      'wikis.json': `${JSON.stringify(SANDBOX_WIKIS, null, 2)}\n`,
      'wikiversions.json': `${JSON.stringify(
        wikiversionsFor(() => SANDBOX_START_VERSION, SANDBOX_WIKIS),
        null,
        2,
      )}\n`,
    },
    subject: 'Initial config',
    changeId: 'seed-config',
    author,
  });
  const code = await stageFromForge(
    forge,
    stagingDir,
    'mediawiki',
    CODE_REPO,
    `refs/heads/wmf/${SANDBOX_START_VERSION}`,
    SANDBOX_START_VERSION,
  );
  const config = await stageFromForge(forge, stagingDir, 'mediawiki-config', CONFIG_REPO, 'refs/heads/main', 'config');

  const hosts: HostSpec[] = Array.from({ length: hostCount }, (_, i) => {
    const name = `mw${1001 + i}`;
    // The first host in every twelve is a canary, as scap's canary lists pick a few per cluster.
    return {
      name,
      ...hostAddress(i, port),
      root: path.join(dir, 'hosts', name),
      groups: i % 12 === 0 ? ['appserver', 'canary'] : ['appserver'],
      transport: 'local',
      pool: 'appservers',
    };
  });
  // Like scap's mwdebug hosts: every sync reaches them, and only people who ask for them get their answers.
  for (let n = 0; n < (noise.testServers ?? 0); n++) {
    const name = `mwdebug${1001 + n}`;
    hosts.push({
      name,
      ...hostAddress(hostCount + n, port),
      root: path.join(dir, 'hosts', name),
      groups: ['debug'],
      transport: 'local',
      pool: null,
    });
  }
  const bootstrap = async (host: HostSpec, release: Release, link: string) => {
    const transport = new LocalTransport(host.name);
    await fetchRelease(
      transport,
      host.name,
      host.root,
      release.service,
      release.id,
      path.join(stagingDir, release.service, release.id),
      release.contentHash,
    );
    const state = {
      current: release.id,
      previous: null,
      lastStable: release.id,
      deployedAt: new Date().toISOString(),
      deployedBy: 'sandbox',
      runId: 'sandbox-bootstrap',
    };
    await activateRelease(transport, host.name, host.root, release.service, release.id, link, state);
  };
  await eachWithLimit(hosts, 16, async (host) => {
    fs.mkdirSync(path.join(host.root, 'logs'), { recursive: true });
    await bootstrap(host, code, `php-${SANDBOX_START_VERSION}`);
    await bootstrap(host, config, 'current');
  });
  const controlUrl = `http://127.0.0.1:${await freePort()}`;
  const records = {
    smtp: `127.0.0.1:${await freePort()}`,
    irc: ngircdPath() ? `127.0.0.1:${await freePort()}` : undefined,
    slackWebhook: `${controlUrl}/slack/services/T0SANDBOX/B0SANDBOX/${crypto.randomBytes(12).toString('hex')}`,
    wikiApi: `${controlUrl}/wiki/api.php`,
    wikiPassword: crypto.randomBytes(12).toString('hex'),
  };
  seedRoadmap(
    dir,
    initialRoadmap([
      { wmf: Number(SANDBOX_START_VERSION.split('wmf.')[1]), date: new Date().toISOString().slice(0, 10), group: '2' },
    ]),
  );
  const fleet: SandboxFleetFile = {
    hosts,
    controlUrl,
    reposDir,
    stagingDir,
    trafficPerSecond,
    records,
    errorRate: groupErrorRates(noise.errorRate),
    bursts: noise.bursts !== false,
    seed: chooseSeed(noise.seed),
  };
  makeDemoPeople(home);
  fs.writeFileSync(fleetFile(home), `${JSON.stringify(fleet, null, 2)}\n`);
  return fleet;
}

const pidFile = (home: string) => path.join(sandboxDir(home), 'server.pid');

/** Two demo people with their own SSH keys, and an allowed_signers file naming them, for trying signed actions. */
export const DEMO_PEOPLE = ['alice', 'bob'] as const;
export const demoKey = (home: string, person: string) => path.join(sandboxDir(home), 'people', person, 'id_ed25519');
export const demoAllowedSigners = (home: string) => path.join(sandboxDir(home), 'allowed_signers');

function makeDemoPeople(home: string): void {
  const lines: string[] = [];
  for (const person of DEMO_PEOPLE) {
    const key = demoKey(home, person);
    fs.mkdirSync(path.dirname(key), { recursive: true });
    if (!fs.existsSync(key))
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${person}@sandbox`, '-f', key]);
    const [type, base64] = fs.readFileSync(`${key}.pub`, 'utf8').trim().split(/\s+/);
    lines.push(`${person} namespaces="signalbox-action" ${type} ${base64}`);
  }
  fs.writeFileSync(demoAllowedSigners(home), `${lines.join('\n')}\n`);
}

export function serverPid(home: string): number | null {
  try {
    const pid = Number(fs.readFileSync(pidFile(home), 'utf8'));
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

export async function waitForHttp(url: string, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
      lastError = `HTTP ${res.status}`;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not answer at ${url} within ${timeoutMs} ms (${lastError})`);
}

/** Starts the fleet's server in the background, so it outlives the command that started it. */
export async function startFleetServer(home: string, entry: string[]): Promise<number> {
  const fleet = readFleet(home);
  if (!fleet) throw new Error(`no sandbox in ${sandboxDir(home)}`);
  const running = serverPid(home);
  if (running) return running;
  const log = fs.openSync(path.join(sandboxDir(home), 'server.log'), 'a');
  const child = spawn(process.execPath, [...entry, 'sandbox', 'serve'], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, SIGNALBOX_HOME: home },
  });
  child.unref();
  fs.writeFileSync(pidFile(home), String(child.pid));
  await waitForHttp(`${fleet.controlUrl}/healthz`, 30_000, 'the sandbox server');
  return child.pid!;
}

export async function stopFleetServer(home: string): Promise<boolean> {
  const pid = serverPid(home);
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && serverPid(home); i++) await new Promise((r) => setTimeout(r, 100));
  fs.rmSync(pidFile(home), { force: true });
  return true;
}
