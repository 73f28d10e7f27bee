// The world one fault-injection trial runs in: a Temporal server (its own, which it may SIGKILL and restart on the
// same SQLite file, or a shared one with a namespace of the trial's own), a fresh sandbox fleet served from this
// process, workers in processes of their own (so they can be SIGKILLed), the real CLI, and a seeded PRNG.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import { DEFAULT_CONFIG_FILE, loadConfig, REPO_ROOT, type SignalboxConfig } from '../../config/load';
import { createActivities } from '../../activities';
import { LocalGitForge } from '../../activities/forge';
import { fleetFile, loadInventory, type SandboxFleetFile } from '../../activities/inventory';
import { createFleet, freePort } from '../../sandbox/fleet';
import { faultsFile, serveFleet } from '../../sandbox/server';
import { devServerPid, startDevServer, stopDevServer } from '../temporal-runtime';

// ---- seeded randomness -----------------------------------------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
export class Prng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  /**
   * An independent stream per purpose, so that how many kills happened to fit in a run (timing) does not shift
   * the choices drawn for anything else: the same seed injects the same faults at the same moments.
   */
  stream(purpose: string): Prng {
    let h = this.seed ^ 0x9e3779b9;
    for (const c of purpose) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
    return new Prng(h);
  }
}

/** Trial i of a run seeded S: trial 0 is S itself, so `--seed <printed seed> --trials 1` replays any trial. */
export function trialSeed(runSeed: number, index: number): number {
  if (index === 0) return runSeed >>> 0;
  return new Prng(runSeed).stream(`trial-${index}`).int(1, 2 ** 31 - 1);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- worker processes ------------------------------------------------------------------------------------------

/** Workers in processes of their own, as in production: killed with SIGKILL, replaced by a fresh one. */
export class WorkerProcesses {
  private current?: ChildProcess;
  private readonly all: ChildProcess[] = [];
  starts = 0;
  kills = 0;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly logFile: string,
  ) {}

  start(): void {
    const log = fs.openSync(this.logFile, 'a');
    fs.writeSync(log, `\n--- worker start #${++this.starts} at ${new Date().toISOString()}\n`);
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'signalbox.js'), 'worker'], {
      env: this.env,
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    this.current = child;
    this.all.push(child);
  }

  alive(): boolean {
    return !!this.current && this.current.exitCode === null && this.current.signalCode === null;
  }

  kill(): number | undefined {
    const pid = this.current?.pid;
    if (this.alive()) {
      this.current!.kill('SIGKILL');
      this.kills++;
    }
    this.current = undefined;
    return pid;
  }

  /** Starts a worker unless one runs; returns whether it had to (a worker that exited by itself is a finding). */
  ensureRunning(): boolean {
    if (this.alive()) return false;
    this.start();
    return true;
  }

  /** SIGTERM (the graceful stop), then SIGKILL whatever is left after the grace time. */
  async stopAll(): Promise<void> {
    const running = this.all.filter((c) => c.exitCode === null && c.signalCode === null);
    for (const child of running) child.kill('SIGTERM');
    const deadline = Date.now() + 15_000;
    while (running.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(100);
    for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.current = undefined;
  }
}

// ---- the trial's world -----------------------------------------------------------------------------------------

export interface TemporalTarget {
  address: string;
  namespace: string;
}

export interface WorldOptions {
  /** An empty folder for the state, the fleet and the server's SQLite file; the caller removes it. */
  home: string;
  hosts: number;
  /** An existing server and a namespace nothing else uses; without it, the world starts a dev server of its own. */
  temporal?: TemporalTarget;
  /** Prebuilt workflow bundle for worker processes (bundling at every worker start would dominate the trial). */
  workflowBundle: string;
  taskQueue: string;
  /** The seed of the sandbox's traffic, errors and latencies (the trial's own, so a seed repeats a trial). */
  seed?: number;
  /** The signalbox.yml text the trial starts from (a run reads it once); the repository's default otherwise. */
  baseConfig?: string;
  /** Changes to the parsed default signalbox.yml before it is written. */
  configure?: (raw: any) => void;
  /** Runs after the fleet's files exist and before the fleet serves (the disk-full host is made here). */
  beforeServe?: (world: Pick<World, 'home' | 'fleet'>) => Promise<void>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface World {
  home: string;
  config: SignalboxConfig;
  fleet: SandboxFleetFile;
  client: Client;
  connection: Connection;
  namespace: string;
  taskQueue: string;
  activities: ReturnType<typeof createActivities>;
  forge: LocalGitForge;
  workers: WorkerProcesses;
  /** Environment for the CLI and worker processes: the same sandbox, server, namespace and task queue. */
  env: NodeJS.ProcessEnv;
  /** Present when the world owns its Temporal server. */
  server?: { killAndRestart(): Promise<number> };
  cli(args: string[], timeoutMs?: number): Promise<CliResult>;
  /** Writes faults.json atomically (the sandbox server re-reads it within 200 ms). */
  clearFaults(): void;
  /** Rewrites fleet.json atomically: workers read it at every activity, so a change takes effect at once. */
  editFleet(change: (fleet: SandboxFleetFile) => void): void;
  stop(): Promise<void>;
}

export async function startWorld(options: WorldOptions): Promise<World> {
  const home = options.home;
  const cleanups: (() => Promise<void> | void)[] = [];
  const cliChildren = new Set<ChildProcess>();
  try {
    let address: string;
    let namespace: string;
    let server: World['server'];
    if (options.temporal) {
      ({ address, namespace } = options.temporal);
    } else {
      const serverHome = path.join(home, 'temporal');
      address = `127.0.0.1:${await freePort()}`;
      namespace = 'default';
      const dev = { home: serverHome, address, namespace, uiPort: 0, headless: true, say: () => undefined };
      await startDevServer(dev);
      cleanups.push(() => stopDevServer(serverHome).then(() => undefined));
      server = {
        async killAndRestart() {
          const before = devServerPid(serverHome);
          if (before) process.kill(before, 'SIGKILL');
          for (let i = 0; i < 100 && devServerPid(serverHome) !== null; i++) await sleep(50);
          const started = Date.now();
          await startDevServer(dev);
          return Date.now() - started;
        },
      };
    }

    const raw = parse(options.baseConfig ?? fs.readFileSync(DEFAULT_CONFIG_FILE, 'utf8'));
    raw.temporal = { ...raw.temporal, address, namespace, taskQueue: options.taskQueue };
    raw.fleet.sandbox = { hosts: options.hosts, trafficPerSecond: 200 };
    // An SSH host needs known_hosts; the down-host fault turns a host into an unreachable SSH host for a while.
    raw.fleet.ssh = { knownHosts: '/dev/null', connectTimeoutMs: 2000 };
    // The test suite's fast settings: one 1 s canary measurement, quick verification, a short watch.
    raw.services['mediawiki-config'].analysis = {
      ...raw.services['mediawiki-config'].analysis,
      intervalMs: 1000,
      measurements: 1,
      minRequests: 3,
      power: 0, // the trials measure failure handling; a 1 s canary cannot vouch for a release
    };
    // A restart and a check that take half a second each, as real ones do, widen the window in which a kill lands
    // between depool and repool, forward and in a rollback (which restarts but runs no checks).
    const restart: string[] = raw.services['mediawiki-config'].restart;
    raw.services['mediawiki-config'].restart = ['sh', '-c', 'sleep 0.5 && exec "$@"', 'slow-restart', ...restart];
    raw.services['mediawiki-config'].checks.push({ name: 'settle', command: ['sleep', '0.5'], timeoutMs: 5000 });
    raw.train = { ...raw.train, verifyEveryMs: 200, verifyTimeoutMs: 10_000, watchMs: 300, watchMinRequests: 0 };
    options.configure?.(raw);
    const configFile = path.join(home, 'signalbox.yml');
    fs.writeFileSync(configFile, stringify(raw));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SIGNALBOX_HOME: home,
      SIGNALBOX_CONFIG: configFile,
      SIGNALBOX_USER: 'chaos',
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: namespace,
      SIGNALBOX_TASK_QUEUE: options.taskQueue,
      SIGNALBOX_WORKFLOW_BUNDLE: options.workflowBundle,
    };
    // loadConfig lets the environment override the file; this process's own environment must not leak in.
    const saved = {
      a: process.env.TEMPORAL_ADDRESS,
      n: process.env.TEMPORAL_NAMESPACE,
      q: process.env.SIGNALBOX_TASK_QUEUE,
    };
    delete process.env.TEMPORAL_ADDRESS;
    delete process.env.TEMPORAL_NAMESPACE;
    delete process.env.SIGNALBOX_TASK_QUEUE;
    const config = loadConfig(configFile, home);
    Object.assign(
      process.env,
      Object.fromEntries(
        Object.entries({
          TEMPORAL_ADDRESS: saved.a,
          TEMPORAL_NAMESPACE: saved.n,
          SIGNALBOX_TASK_QUEUE: saved.q,
        }).filter(([, v]) => v !== undefined),
      ),
    );

    const fleet = await createFleet(home, options.hosts, 200, await freePort(), { seed: options.seed });
    await options.beforeServe?.({ home, fleet });
    const stopFleet = await serveFleet(home);
    cleanups.push(stopFleet);
    const connection = await Connection.connect({ address, connectTimeout: 10_000 });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace });
    const workers = new WorkerProcesses(env, path.join(home, 'worker.log'));
    cleanups.push(() => workers.stopAll());

    const world: World = {
      home,
      config,
      fleet,
      client,
      connection,
      namespace,
      taskQueue: options.taskQueue,
      activities: createActivities(config),
      forge: new LocalGitForge(loadInventory(config).reposDir),
      workers,
      env,
      server,
      cli(args, timeoutMs = 300_000) {
        const started = Date.now();
        return new Promise((resolve, reject) => {
          const child = execFile(
            process.execPath,
            [path.join(REPO_ROOT, 'scripts', 'signalbox.js'), ...args],
            { env, encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' },
            (err, stdout, stderr) => {
              cliChildren.delete(child);
              if (err && typeof err.code !== 'number' && !err.killed) return reject(err);
              const code = err ? (typeof err.code === 'number' ? err.code : 124) : 0;
              resolve({
                code,
                stdout,
                stderr: stderr
                  .split('\n')
                  .filter((l) => !l.includes('nodedir'))
                  .join('\n')
                  .trim(),
                ms: Date.now() - started,
              });
            },
          );
          cliChildren.add(child);
        });
      },
      clearFaults() {
        const file = faultsFile(home);
        fs.writeFileSync(`${file}.next`, '{}');
        fs.renameSync(`${file}.next`, file);
      },
      editFleet(change) {
        const file = fleetFile(home);
        const current: SandboxFleetFile = JSON.parse(fs.readFileSync(file, 'utf8'));
        change(current);
        fs.writeFileSync(`${file}.next`, JSON.stringify(current, null, 2));
        fs.renameSync(`${file}.next`, file);
      },
      async stop() {
        for (const child of cliChildren) child.kill('SIGKILL');
        // Workers first (they touch hosts), then the fleet, the connection and the server.
        for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
      },
    };
    return world;
  } catch (err) {
    for (const child of cliChildren) child.kill('SIGKILL');
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
    throw err;
  }
}
