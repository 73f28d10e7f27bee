// A sandbox of its own for each test: a state folder, a config file, a fleet on free ports, a task queue, and
// (unless the test runs its own) a worker, all against the run's one real Temporal dev server.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, type WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, Runtime, type Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { parse, stringify } from 'yaml';
import { DEFAULT_CONFIG_FILE, loadConfig, REPO_ROOT, type SignalboxConfig } from '../config/load';
import { createActivities } from '../activities';
import { LocalGitForge } from '../activities/forge';
import { httpGet } from '../activities/checks';
import { readService } from '../activities/host-ops';
import { loadInventory } from '../activities/inventory';
import { LocalTransport } from '../activities/transport';
import { createFleet, demoKey, freePort } from '../sandbox/fleet';
import type { Release } from '../activities/releases';
import { applyFastSettings } from './fast-settings';
import { startRollout } from '../cli/client';
import { signStatement } from '../cli/sign';
import type { Action, RolloutStatus } from '../workflows/definitions';
import type { Strategy } from '../workflows/plan';
import { expect } from 'vitest';
import { serveFleet } from '../sandbox/server';
import { activitiesInFlight, createWorker, describeInFlight } from '../workers/worker';

let runtimeInstalled = false;
let counter = 0;

export const OLD = '1.41.0-wmf.25';
export const NEW = '1.41.0-wmf.26';
export const STRATEGY: Strategy = { canary: '1', batch: '50%', maxFail: '0', fetchConcurrency: 80 };

export interface Sandbox {
  home: string;
  configFile: string;
  config: SignalboxConfig;
  client: Client;
  activities: ReturnType<typeof createActivities>;
  forge: LocalGitForge;
  env: NodeJS.ProcessEnv;
  /** Rewrites signalbox.yml and reloads it (before the worker starts). */
  reconfigure(change: (raw: any) => void): void;
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  stop(): Promise<void>;
}

export interface SandboxOptions {
  hosts?: number;
  worker?: boolean;
  trafficPerSecond?: number;
  /** Changes to the parsed default signalbox.yml before it is written. */
  configure?: (config: any) => void;
  /** A Temporal server of the test's own, instead of the run's shared one. */
  temporalAddress?: string;
}

/** Takes the next unused namespace of the run; mkdir is atomic, so test files never share one. */
export function claimNamespace(): string {
  const claims = path.join(inject('temporalHome'), 'namespace-claims');
  fs.mkdirSync(claims, { recursive: true });
  for (const namespace of inject('namespaces')) {
    try {
      fs.mkdirSync(path.join(claims, namespace));
      return namespace;
    } catch {
      // taken
    }
  }
  throw new Error('every test namespace is taken; raise the count in test/global-setup.ts');
}

/** Quiets the SDK's logs once per test file; must run before anything creates the runtime. */
export function installRuntime(): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger('WARN') });
  runtimeInstalled = true;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  installRuntime();
  process.env.SIGNALBOX_WORKFLOW_BUNDLE = inject('workflowBundle');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-test-'));
  const taskQueue = `test-${path.basename(home)}`;
  const namespace = options.temporalAddress ? 'default' : claimNamespace();
  const raw = parse(fs.readFileSync(DEFAULT_CONFIG_FILE, 'utf8'));
  raw.temporal = {
    ...raw.temporal,
    address: options.temporalAddress ?? inject('temporalAddress'),
    taskQueue,
    namespace,
  };
  raw.fleet.sandbox = { hosts: options.hosts ?? 8, trafficPerSecond: options.trafficPerSecond ?? 120 };
  applyFastSettings(raw);
  options.configure?.(raw);
  const configFile = path.join(home, 'signalbox.yml');
  fs.writeFileSync(configFile, stringify(raw));
  const config = loadConfig(configFile, home);
  // Tests that go through the CLI or a worker process get the same sandbox from the environment.
  const env = {
    ...process.env,
    SIGNALBOX_HOME: home,
    SIGNALBOX_CONFIG: configFile,
    TEMPORAL_ADDRESS: config.temporal.address,
    TEMPORAL_NAMESPACE: namespace,
    SIGNALBOX_TASK_QUEUE: taskQueue,
  };
  const sandboxSpec = config.fleet.sandbox!;
  await createFleet(home, sandboxSpec.hosts, sandboxSpec.trafficPerSecond, await freePort(), sandboxSpec);
  const stopFleet = await serveFleet(home);
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  const sandbox: Sandbox = {
    home,
    configFile,
    config,
    client,
    activities: createActivities(config),
    forge: new LocalGitForge(loadInventory(config).reposDir),
    env,
    reconfigure(change) {
      const rawNow = parse(fs.readFileSync(configFile, 'utf8'));
      change(rawNow);
      fs.writeFileSync(configFile, stringify(rawNow));
      sandbox.config = loadConfig(configFile, home);
      sandbox.activities = createActivities(sandbox.config);
    },
    async startWorker() {
      worker = await createWorker(sandbox.config);
      running = worker.run();
    },
    async stopWorker() {
      if (worker && worker.getState() === 'RUNNING') worker.shutdown();
      const stopping = worker;
      // A worker that does not stop is waiting on an activity that ignores cancellation: name it.
      const slow = setInterval(() => {
        if (stopping)
          console.error(
            `worker still stopping, waiting on: ${describeInFlight(activitiesInFlight(stopping)) || 'no activity'}`,
          );
      }, 20_000);
      try {
        await running;
      } finally {
        clearInterval(slow);
      }
      worker = undefined;
    },
    async stop() {
      await sandbox.stopWorker();
      await connection.close();
      await stopFleet();
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
  if (options.worker !== false) await sandbox.startWorker();
  return sandbox;
}

/**
 * Runs the real CLI in a child process, as an operator would. Asynchronous on purpose: a blocking spawn would
 * freeze this process's event loop, and with it the in-process worker the CLI is talking to.
 */
/** Signed auth for the sandbox's demo people (their keys are in sandbox/people/); the roles as given. */
export const signedAuth =
  (roles = { deployers: ['alice', 'bob'], approvers: ['alice'], admins: ['alice'] }) =>
  (c: any) => {
    c.auth = { allowedSigners: 'sandbox/allowed_signers', roles };
  };

/** A signed request as the CLI makes it, with knobs to make it wrong in each way a test needs. */
export async function signedRequest(
  key: string,
  principal: string,
  action: Action,
  workflowId: string,
  target?: string,
  at = new Date(),
) {
  const statement = {
    action,
    workflowId,
    target,
    principal,
    nonce: randomBytes(18).toString('base64url'),
    at: at.toISOString(),
  };
  return { by: principal, signed: await signStatement(statement, key) };
}

/** The environment in which the CLI signs as one of the sandbox's demo people. */
export const signingAs = (sandbox: Sandbox, person: string): NodeJS.ProcessEnv => ({
  ...sandbox.env,
  SIGNALBOX_USER: person,
  SIGNALBOX_SIGNING_KEY: demoKey(sandbox.home, person),
});

export function cli(sandbox: Sandbox, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(REPO_ROOT, 'scripts', 'signalbox.js'), ...args],
      { env: sandbox.env, encoding: 'utf8', timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({
          code: err ? (err.code as number) : 0,
          stdout,
          stderr: stderr
            .split('\n')
            .filter((l) => !l.includes('nodedir'))
            .join('\n')
            .trim(),
        });
      },
    );
  });
}

/** A worker in its own process, so a test can SIGKILL it. */
export function workerProcess(sandbox: Sandbox): ChildProcess {
  const log = fs.openSync(path.join(sandbox.home, 'worker.log'), 'a');
  return spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'signalbox.js'), 'worker'], {
    env: sandbox.env,
    stdio: ['ignore', log, log],
  });
}

/** The message a workflow's update validator refused with. */
export async function refusal(pending: Promise<unknown>): Promise<string> {
  try {
    await pending;
  } catch (err) {
    return (err as { cause?: Error }).cause?.message ?? (err as Error).message;
  }
  throw new Error('the update was accepted, but a refusal was expected');
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false>,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`,
  );
}

/** Every host's view of one service, read with the same scripts the engine uses. */
export async function serviceOnEveryHost(sandbox: Sandbox, service: string) {
  const { hosts } = loadInventory(sandbox.config);
  return Promise.all(
    hosts.map(async (h) => ({
      host: h.name,
      root: h.root,
      ...(await readService(new LocalTransport(h.name), h.name, h.root, service)),
    })),
  );
}

/** Asserts nothing is half-done on any host: no partial fetches, no dangling next-links, state agrees with links. */
export async function assertHostsConsistent(sandbox: Sandbox, service: string, link = 'current'): Promise<void> {
  for (const h of await serviceOnEveryHost(sandbox, service)) {
    const dir = path.join(h.root, service);
    const leftovers = fs
      .readdirSync(dir)
      .filter((f) => f.startsWith('.'))
      .concat(fs.readdirSync(path.join(dir, 'revs')).filter((f) => f.startsWith('.')));
    if (leftovers.length) throw new Error(`${h.host}: half-done files in ${dir}: ${leftovers.join(', ')}`);
    if (h.links[link] !== `revs/${h.state.current}`)
      throw new Error(`${h.host}: ${link} -> ${h.links[link]} but state.json says current ${h.state.current}`);
  }
}

/** What each wiki answers on each host, straight from the app servers. */
/**
 * The version a host serves a wiki, from siteinfo. The sandbox fails a few requests of every version (its
 * background error rate), so an error page is asked again; a wrong version is never.
 */
export async function askVersion(host: { address: string; port?: number }, domain: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const res = await httpGet(
      `http://${host.address}:${host.port}/w/api.php?action=query&meta=siteinfo&format=json`,
      domain,
      5000,
    );
    if (res.status < 500 || attempt === 5)
      return JSON.parse(res.body).query.general.generator.replace('MediaWiki ', '');
  }
}

export async function liveVersions(sandbox: Sandbox): Promise<Map<string, Set<string>>> {
  const { hosts } = loadInventory(sandbox.config);
  const wikis: Record<string, { domain: string }> = JSON.parse(
    await sandbox.forge.readFile('mediawiki-config', 'refs/heads/main', 'wikis.json'),
  );
  const byWiki = new Map<string, Set<string>>();
  for (const host of hosts) {
    for (const [db, w] of Object.entries(wikis)) {
      byWiki.set(db, (byWiki.get(db) ?? new Set()).add(await askVersion(host, w.domain)));
    }
  }
  return byWiki;
}

/** Puts the new code on every host (not yet served), then lands a config change moving `groups` onto it. */
export async function configMoving(s: Sandbox, groups: string[]): Promise<Release> {
  const code = await s.activities.stageCode({ version: NEW, by: 'test' });
  const hosts = (await serviceOnEveryHost(s, 'mediawiki')).map((h) => h.host);
  const fetched = await s.activities.fetchToHosts({
    service: 'mediawiki',
    release: code,
    hosts,
    by: 'test',
    runId: 'setup',
  });
  expect(fetched.filter((r) => r.outcome !== 'done' && r.host !== 'mw-gone')).toEqual([]);
  const promoted = await s.activities.promoteHosts({
    service: 'mediawiki',
    release: code,
    hosts,
    by: 'test',
    runId: 'setup',
  });
  expect(promoted.filter((r) => !['done', 'already'].includes(r.outcome) && r.host !== 'mw-gone')).toEqual([]);
  const versions = Object.fromEntries(
    ['testwikis', 'group0', 'group1', 'group2'].map((g) => [g, groups.includes(g) ? NEW : OLD]),
  ) as any;
  return (
    await s.activities.landWikiversions({
      versions,
      subject: `test: ${groups.join(',')} to ${NEW}`,
      changeId: `test-${++counter}-${Date.now()}`,
      by: 'test',
    })
  ).release;
}

export async function rollout(
  s: Sandbox,
  release: Release,
  strategy: Strategy = STRATEGY,
  extra: { pauseAfterCanary?: boolean; id?: string; service?: string } = {},
) {
  return startRollout(
    s.client,
    s.config,
    {
      service: extra.service ?? 'mediawiki-config',
      release,
      selector: {},
      strategy,
      by: 'tester',
      pauseAfterCanary: extra.pauseAfterCanary,
    },
    extra.id ?? `rollout-${++counter}`,
  );
}

export async function configLinks(s: Sandbox): Promise<Record<string, string | undefined>> {
  return Object.fromEntries(
    (await serviceOnEveryHost(s, 'mediawiki-config')).map((h) => [h.host, h.links.current?.replace('revs/', '')]),
  );
}

export function failureOf(err: unknown): { type?: string; message: string; details?: RolloutStatus } {
  const cause = (err as WorkflowFailedError).cause as any;
  return { type: cause?.type, message: cause?.message ?? String(err), details: cause?.details?.[0] };
}
