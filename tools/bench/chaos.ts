// Fault injection (issue 10, "never make it worse"): each trial runs one deploy on a fresh sandbox fleet with a
// worker in its own process, injects faults at seeded random moments (SIGKILLed workers, a SIGKILLed Temporal
// server, a slow old version, an unreachable host, a full disk, a racing deploy), lets the workflow come to rest,
// and then checks on the real parts that the fleet ended on a checked release.
//
//   npm run chaos -- --trials 50 [--seed S] [--hosts N] [--kinds a,b] [--keep] [--rest-timeout SECONDS]
//
// The seed fixes which faults are injected and when; the machine's timing still varies, so a replay
// (`--seed <trial seed> --trials 1 --kinds <kind>`) injects the same faults at the same moments, not the same race.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { DEFAULT_CONFIG_FILE, loadConfig, type HostSpec } from '../../config/load';
import type { Release } from '../../activities/releases';
import {
  rolloutStatusQuery,
  trainStatusQuery,
  type RolloutStatus,
  type TrainState,
  type TrainStatus,
} from '../../workflows/definitions';
import { STATIONS, trainWorkflowId, type Station } from '../../workflows/names';
import { freePort } from '../../sandbox/fleet';
import { startRollout } from '../../cli/client';
import { Prng, sleep, startWorld, trialSeed, type TemporalTarget, type World } from './harness';
import {
  CODE_SERVICE,
  CONFIG_SERVICE,
  configVersions,
  hostMoves,
  inspectHosts,
  interleavings,
  LinkWatcher,
  movedTwice,
  type LinkChange,
  newerThan,
  rolloutRollbackStart,
  servingExpected,
  trainStationMoves,
  trialExecutions,
  wrongDirection,
  type Violation,
} from './invariants';

export const OLD = '1.41.0-wmf.25';
export const NEW = '1.41.0-wmf.26';
const TRAIN_ID = trainWorkflowId(NEW);
/** The CLI's per-service rollout ids: a rollout started here takes the same lock an operator's deploy would. */
const deployId = (service: string) => `deploy-${service}`;

export const KINDS = [
  'worker-kill-train',
  'worker-kill-rollout',
  'worker-kill-rollback',
  'watch-rollback',
  'rollback-slow-old',
  'server-kill',
  'deploy-race',
  'disk-full',
] as const;
export type Kind = (typeof KINDS)[number];

/** Train states in which a train waits for a person or has ended: nothing moves until someone acts. */
const TRAIN_AT_REST: TrainState[] = ['complete', 'blocked', 'rolled-back', 'aborted'];

// ---- trials ----------------------------------------------------------------------------------------------------

export interface TrialOptions {
  kind: Kind;
  seed: number;
  hosts?: number;
  /** A shared server and a namespace of this trial's own; without it the trial starts its own dev server. */
  temporal?: TemporalTarget;
  workflowBundle: string;
  /** The signalbox.yml text to start from; the repository's default when absent. */
  baseConfig?: string;
  /** How long faults go on at most. */
  faultWindowMs?: number;
  /** How long the workflow may take to come to rest once faults stop. */
  restTimeoutMs?: number;
  maxKills?: number;
  /** Keep the trial's folder (state, fleet, worker log, SQLite) always, or only when it did not converge. */
  keep?: 'always' | 'failed' | 'never';
  /** Progress lines (faults injected, states reached); the trial also writes them to <home>/chaos.log. */
  log?: (line: string) => void;
}

export interface TrialResult {
  kind: Kind;
  seed: number;
  converged: boolean;
  skipped?: string;
  seconds: number;
  /** How each watched workflow ended, such as "train complete" or "rollout rolled-back". */
  outcomes: string[];
  violations: Violation[];
  depooled: number;
  unchecked: number;
  wrongDirection: number;
  workerKills: number;
  serverKills: number;
  /** False while hosts keep no journal of their steps: "checked" is then approximated from links and answers. */
  journal: boolean;
  notes: string[];
  home?: string;
  error?: string;
}

interface Subject {
  type: 'train' | 'rollout';
  id: string;
  /** Outcomes that keep the promise for this scenario; crash-only faults must not change the outcome. */
  expect: string[];
  /** Config rollouts: the release deployed, and what hosts ran before (where a rollback must land). */
  release?: string;
  before?: string;
}

interface Plan {
  subjects: Subject[];
  /** Whose final state says what every wiki must serve (the train, when a deploy raced it). */
  servingFrom?: string;
  /** Ends faults that must not outlast the fault window (an unreachable host comes back). */
  endFaults?: () => Promise<void> | void;
  /** Waited for with the rest (a CLI command still running, such as `train rollback`). */
  pending?: Promise<unknown>[];
  /** Why the scenario could not inject all its faults. */
  stopped?: string;
}

interface Rest {
  atRest: boolean;
  state: string;
  closed?: string;
  train?: TrainStatus;
  rollout?: RolloutStatus;
}

class Trial {
  readonly notes: string[] = [];
  readonly observed = new Map<string, Rest>();
  serverKills = 0;
  private observing = true;
  private readonly subjects: Subject[] = [];
  private observer?: Promise<void>;

  constructor(
    readonly world: World,
    readonly rng: Prng,
    readonly options: Required<Pick<TrialOptions, 'faultWindowMs' | 'maxKills'>> & TrialOptions,
    readonly logFile: string,
    readonly initialConfig: string,
    private readonly links: LinkWatcher,
  ) {}

  /** Every config link change seen on any host since the trial began. */
  linkChanges(): LinkChange[] {
    return this.links.changes;
  }

  get hosts(): HostSpec[] {
    return this.world.fleet.hosts;
  }

  get stagingDir(): string {
    return this.world.fleet.stagingDir;
  }

  note(line: string): void {
    const stamped = `${new Date().toISOString().slice(11, 23)} ${line}`;
    fs.appendFileSync(this.logFile, `${stamped}\n`);
    this.options.log?.(stamped);
  }

  /** Remembered for the report; printed with the trial's line. */
  finding(line: string): void {
    this.notes.push(line);
    this.note(line);
  }

  async restOf(subject: Subject): Promise<Rest> {
    const { client, connection } = this.world;
    const handle = client.workflow.getHandle(subject.id);
    const described = await connection.withDeadline(Date.now() + 3000, () => handle.describe()).catch(() => null);
    if (!described) return { atRest: false, state: 'unreachable' };
    const closed = described.status.name === 'RUNNING' ? undefined : described.status.name;
    if (subject.type === 'train') {
      const train = await connection
        .withDeadline(Date.now() + 2000, () => handle.query(trainStatusQuery))
        .catch(() => undefined);
      if (closed) return { atRest: true, state: train ? `${closed} (state ${train.state})` : closed, closed, train };
      return { atRest: !!train && TRAIN_AT_REST.includes(train.state), state: train?.state ?? 'no answer', train };
    }
    const rollout = await connection
      .withDeadline(Date.now() + 2000, () => handle.query(rolloutStatusQuery))
      .catch(() => undefined);
    return { atRest: !!closed, state: closed ?? rollout?.phase ?? 'no answer', closed, rollout };
  }

  /** Polls every watched workflow in the background; faults wait on what it sees, not on queries of their own. */
  watch(subject: Subject): void {
    if (this.subjects.some((s) => s.id === subject.id)) return;
    this.subjects.push(subject);
    this.observer ??= (async () => {
      while (this.observing) {
        for (const s of [...this.subjects]) {
          const rest = await this.restOf(s);
          const before = this.observed.get(s.id);
          if (rest.state !== 'no answer' && rest.state !== 'unreachable') {
            if (before?.state !== rest.state) {
              this.note(
                `${s.id}: ${rest.state}${rest.train ? ` (station ${STATIONS[rest.train.station] ?? 'start'})` : ''}`,
              );
            }
            this.observed.set(s.id, rest);
          }
        }
        await sleep(150);
      }
    })();
  }

  async stopWatching(): Promise<void> {
    this.observing = false;
    await this.observer;
  }

  atRest(id: string): boolean {
    return this.observed.get(id)?.atRest ?? false;
  }

  train(): TrainStatus | undefined {
    return this.observed.get(TRAIN_ID)?.train;
  }

  /** Whether the train is moving `station` forward now (its last move event names it; the stage is 'deploying' too). */
  moving(station: number): boolean {
    const train = this.train();
    if (train?.state !== 'deploying') return false;
    const last = [...train.events].reverse().find((e) => /^(move|roll back) /.test(e.what));
    return !!last?.what.startsWith(`move ${STATIONS[station]} to `);
  }

  /** Waits until `done` holds for what the observer last saw, or throws naming what it waited for. */
  async until(what: string, done: () => boolean, timeoutMs = 240_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const seen = () =>
      [...this.observed]
        .map(([id, r]) => `${id} ${r.state}${r.train?.blocker ? ` (${r.train.blocker.slice(0, 300)})` : ''}`)
        .join(', ') || 'nothing';
    while (!done()) {
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last seen: ${seen()}`);
      // Nothing will move any more: waiting longer would only hide what happened.
      if (this.subjects.length && this.subjects.every((s) => this.atRest(s.id)))
        throw new Error(`came to rest before ${what}: ${seen()}`);
      await sleep(100);
    }
  }

  watched(): Subject[] {
    return [...this.subjects];
  }

  /**
   * SIGKILLs the worker after `first` ms, then every 3-15 s (seeded), starting a new one each time, until `stop`
   * holds, the kill budget is spent or the fault window closes.
   */
  async killWorkers(stop: () => boolean, first?: number): Promise<number> {
    const rng = this.rng.stream('worker-kills');
    const deadline = Date.now() + this.options.faultWindowMs;
    let kills = 0;
    while (kills < this.options.maxKills && Date.now() < deadline) {
      const wait = kills === 0 && first !== undefined ? first : rng.int(3000, 15_000);
      const at = Date.now() + wait;
      while (Date.now() < at && !stop()) await sleep(50);
      if (stop()) break;
      const pid = this.world.workers.kill();
      kills++;
      this.note(`SIGKILL worker ${pid} (kill ${kills}, after ${(wait / 1000).toFixed(1)} s)`);
      this.world.workers.start();
    }
    return kills;
  }

  async cli(args: string[], timeoutMs?: number) {
    const result = await this.world.cli(args, timeoutMs);
    this.note(
      `signalbox ${args.join(' ')} -> exit ${result.code} in ${(result.ms / 1000).toFixed(1)} s${result.code ? `: ${result.stderr.split('\n').slice(-2).join(' ').slice(0, 300)}` : ''}`,
    );
    return result;
  }

  async mustCli(args: string[], timeoutMs?: number) {
    const result = await this.cli(args, timeoutMs);
    if (result.code !== 0)
      throw new Error(`signalbox ${args.join(' ')} failed (exit ${result.code}): ${result.stderr || result.stdout}`);
    return result;
  }

  /** The new code on every host, linked but not served: what a train's stage does, done before the faults. */
  async stageCodeEverywhere(): Promise<Release> {
    const a = this.world.activities;
    const code = await a.stageCode({ version: NEW, by: 'chaos' });
    const hosts = this.hosts.map((h) => h.name);
    const request = { service: CODE_SERVICE, release: code, hosts, by: 'chaos', runId: 'chaos-setup' };
    const fetched = await a.fetchToHosts(request);
    const promoted = await a.promoteHosts(request);
    const failed = [...fetched, ...promoted].filter((r) => r.outcome === 'failed');
    if (failed.length)
      throw new Error(
        `staging the new code failed before any fault: ${failed.map((f) => `${f.host}: ${f.detail}`).join('; ')}`,
      );
    return code;
  }

  /** Lands a wikiversions change putting `stations` on the new version, as a config release. */
  async configMoving(stations: readonly Station[]): Promise<Release> {
    const versions = Object.fromEntries(STATIONS.map((s) => [s, stations.includes(s) ? NEW : OLD])) as Record<
      Station,
      string
    >;
    const change = await this.world.activities.landWikiversions({
      versions,
      subject: `chaos: ${stations.join(', ')} to ${NEW}`,
      changeId: `chaos-${this.options.seed}-${stations.join('-')}`,
      by: 'chaos',
    });
    return change.release;
  }

  async startConfigRollout(release: Release, strategy: { canary: string | null; batch: string }): Promise<Subject> {
    const id = deployId(CONFIG_SERVICE);
    await startRollout(
      this.world.client,
      this.world.config,
      {
        service: CONFIG_SERVICE,
        release,
        selector: {},
        strategy: { ...this.world.config.rollout, ...strategy, maxFail: '0' },
        by: 'chaos',
      },
      id,
    );
    this.note(`started ${id}: ${release.id}, canary ${strategy.canary}, batch ${strategy.batch}`);
    return { type: 'rollout', id, expect: [], release: release.id, before: this.initialConfig };
  }
}

interface Scenario {
  /** Why the kind cannot run here, if it cannot. */
  unavailable?: (options: TrialOptions) => string | undefined;
  configure?: (raw: any) => void;
  run(t: Trial): Promise<Plan>;
}

const trainSubject = (expect: string[]): Subject => ({ type: 'train', id: TRAIN_ID, expect });

const SCENARIOS: Record<Kind, Scenario> = {
  'worker-kill-train': {
    async run(t) {
      await t.mustCli(['train', 'start', NEW, '--auto-approve']);
      const train = trainSubject(['complete']);
      t.watch(train);
      await t.killWorkers(() => t.atRest(train.id));
      return { subjects: [train] };
    },
  },

  'worker-kill-rollout': {
    async run(t) {
      const rng = t.rng.stream('scenario');
      await t.stageCodeEverywhere();
      const release = await t.configMoving(STATIONS.slice(0, rng.int(1, 4)));
      const rollout = await t.startConfigRollout(release, {
        canary: rng.pick(['1', '10%', '20%']),
        batch: rng.pick(['2', '25%']),
      });
      rollout.expect = ['done'];
      t.watch(rollout);
      // A rollout of ten hosts takes seconds, so the first kill comes early enough to land inside it.
      await t.killWorkers(() => t.atRest(rollout.id), rng.int(1000, 8000));
      return { subjects: [rollout] };
    },
  },

  'worker-kill-rollback': {
    async run(t) {
      const rng = t.rng.stream('scenario');
      await t.stageCodeEverywhere();
      // group2 carries most traffic: canaries serving it with half the requests failing cannot pass analysis.
      await t.mustCli(['sandbox', 'fault', NEW, '--group', 'group2', '--error-rate', '0.5']);
      const release = await t.configMoving(STATIONS);
      const rollout = await t.startConfigRollout(release, { canary: rng.pick(['30%', '40%', '50%']), batch: '25%' });
      rollout.expect = ['rolled-back'];
      t.watch(rollout);
      // Either right as the rollback starts, or around the analysis verdict that triggers it.
      const trigger = rng.pick(['rolling-back', 'analysis'] as const);
      const delay = trigger === 'rolling-back' ? rng.int(0, 150) : rng.int(600, 1400);
      await t.until(
        `the rollout's ${trigger} phase`,
        () => t.observed.get(rollout.id)?.state === trigger || t.atRest(rollout.id),
        120_000,
      );
      if (!t.atRest(rollout.id)) await t.killWorkers(() => t.atRest(rollout.id), delay);
      else t.finding(`the rollout closed before its ${trigger} phase was seen; no kill landed in it`);
      return { subjects: [rollout] };
    },
  },

  'watch-rollback': {
    // Long enough that group1's watch sees the fault injected once it is live, and breaches.
    configure: (raw) => (raw.train = { ...raw.train, watchMs: 15_000, watchIntervalMs: 2000, watchMinRequests: 20 }),
    async run(t) {
      const rng = t.rng.stream('scenario');
      await t.mustCli(['train', 'start', NEW, '--auto-approve']);
      const train = trainSubject(['blocked']);
      t.watch(train);
      const group1 = STATIONS.indexOf('group1');
      await t.until(
        'group1 live and watched',
        () => (t.train()?.station ?? -1) >= group1 && t.train()?.state === 'watching',
      );
      await t.mustCli(['sandbox', 'fault', NEW, '--group', 'group1', '--error-rate', '0.3']);
      await t.until(
        'the error watch to start the rollback',
        () => t.train()?.state === 'rolling-back' || t.atRest(train.id),
        120_000,
      );
      await t.killWorkers(() => t.atRest(train.id), rng.int(0, 2000));
      return { subjects: [train] };
    },
  },

  'rollback-slow-old': {
    async run(t) {
      const rng = t.rng.stream('scenario');
      await t.mustCli(['train', 'start', NEW]);
      const train = trainSubject(['rolled-back', 'blocked']);
      t.watch(train);
      const reach = rng.int(1, 2);
      for (let station = 0; station <= reach; station++) {
        await t.until(
          `approval of ${STATIONS[station]}`,
          () => t.train()?.state === 'awaiting-approval' && t.train()?.nextStation === STATIONS[station],
        );
        await t.mustCli(['train', 'approve', NEW, '--station', STATIONS[station]]);
      }
      await t.until(
        `${STATIONS[reach]} live`,
        () => t.train()?.station === reach && t.train()?.state === 'awaiting-approval',
      );
      const mode = rng.pick(['slow', 'down', 'both'] as const);
      const latencyMs = rng.int(2000, 7000);
      const victim = rng.pick(t.hosts);
      const downMs = rng.int(3000, 15_000);
      if (mode !== 'down') {
        for (const group of STATIONS)
          await t.mustCli([
            'sandbox',
            'fault',
            OLD,
            '--group',
            group,
            '--error-rate',
            '0',
            '--latency-ms',
            String(latencyMs),
          ]);
      }
      let endFaults: Plan['endFaults'];
      let down: Promise<void> | undefined;
      if (mode !== 'slow') {
        // Unreachable: its commands go to an SSH port nothing listens on, as a host whose sshd is gone.
        const deadPort = await freePort();
        const original = t.hosts.find((h) => h.name === victim.name)!;
        t.world.editFleet((fleet) =>
          Object.assign(
            fleet.hosts.find((h) => h.name === victim.name)!,
            { transport: 'ssh', sshPort: deadPort },
          ),
        );
        t.note(`${victim.name} unreachable for ${downMs} ms`);
        let back = false;
        endFaults = () => {
          if (back) return;
          back = true;
          t.world.editFleet((fleet) =>
            Object.assign(
              fleet.hosts.find((h) => h.name === victim.name)!,
              { transport: original.transport, sshPort: original.sshPort },
            ),
          );
          t.note(`${victim.name} reachable again`);
        };
        down = sleep(downMs).then(endFaults);
      }
      t.note(
        `rollback with ${mode === 'down' ? '' : `the old version answering in ${latencyMs} ms`}${mode === 'both' ? ' and ' : ''}${mode === 'slow' ? '' : `${victim.name} unreachable`}`,
      );
      const rollback = t.cli(['train', 'rollback', NEW, '--reason', `chaos ${mode}`], 600_000).then((r) => {
        if (r.code !== 0) t.finding(`train rollback exited ${r.code}: ${r.stderr.slice(-300)}`);
      });
      await down;
      return { subjects: [train], endFaults, pending: [rollback] };
    },
  },

  'server-kill': {
    unavailable: (o) =>
      o.temporal ? 'needs a Temporal server of its own to kill (a shared server was given)' : undefined,
    async run(t) {
      const rng = t.rng.stream('scenario');
      await t.mustCli(['train', 'start', NEW, '--auto-approve']);
      const train = trainSubject(['complete']);
      t.watch(train);
      const kills = rng.int(1, 2);
      const stations = Array.from({ length: kills }, () => rng.int(0, 3)).sort();
      for (const station of stations) {
        const delay = rng.int(0, 3000);
        await t.until(
          `the move of ${STATIONS[station]}`,
          () => t.moving(station) || (t.train()?.station ?? -1) >= station || t.atRest(train.id),
        );
        if ((t.train()?.station ?? -1) >= station) {
          t.note(`${STATIONS[station]} moved before it was seen moving; no server kill for it`);
          continue;
        }
        if (t.atRest(train.id)) break;
        await sleep(delay);
        const restartMs = await t.world.server!.killAndRestart();
        t.serverKills++;
        t.note(
          `SIGKILLed the Temporal server ${delay} ms into the move of ${STATIONS[station]}; back in ${(restartMs / 1000).toFixed(1)} s`,
        );
      }
      return { subjects: [train] };
    },
  },

  'deploy-race': {
    async run(t) {
      const rng = t.rng.stream('scenario');
      await t.mustCli(['train', 'start', NEW, '--auto-approve']);
      const train = trainSubject(['complete']);
      t.watch(train);
      const station = rng.int(0, 2);
      await t.until(`the move of ${STATIONS[station]}`, () => t.moving(station) || t.atRest(train.id));
      if (t.atRest(train.id))
        t.finding(
          `the train came to rest (${t.train()?.state}) before ${STATIONS[station]} moved; the deploy races nothing`,
        );
      await sleep(rng.int(0, 2000));
      // An unrelated config change, deployed by hand while the train moves a station.
      await t.world.forge.land({
        repo: CONFIG_SERVICE,
        branch: 'main',
        files: { 'ChaosNote.php': `<?php // chaos ${t.options.seed}\n` },
        subject: 'chaos: unrelated config change',
        changeId: `chaos-${t.options.seed}-race`,
        author: 'chaos',
      });
      const deploy = await t.cli(['deploy', 'main', '--service', CONFIG_SERVICE, '--yes'], 600_000);
      const subjects = [train];
      const started = await t.world.client.workflow
        .getHandle(deployId(CONFIG_SERVICE))
        .describe()
        .then(
          () => true,
          () => false,
        );
      if (deploy.code === 2 && !started)
        t.finding(`the racing deploy was refused before it started: ${deploy.stderr.split('\n').pop()}`);
      else if (started) subjects.push({ type: 'rollout', id: deployId(CONFIG_SERVICE), expect: ['done', 'refused'] });
      else t.finding(`the racing deploy failed without a workflow (exit ${deploy.code}): ${deploy.stderr.slice(-300)}`);
      return { subjects, servingFrom: train.id };
    },
  },

  'disk-full': {
    unavailable: () => (process.getuid?.() === 0 ? undefined : 'needs root to mount a small tmpfs as a host root'),
    async run(t) {
      const rng = t.rng.stream('scenario');
      const variant = rng.pick(['code-deploy', 'config-rollout'] as const);
      const slackKiB = rng.pick([0, 8, 16, 24, 32, 48]);
      const victim = rng.pick(t.hosts);
      const code =
        variant === 'config-rollout'
          ? await t.stageCodeEverywhere()
          : await t.world.activities.stageCode({ version: NEW, by: 'chaos' });
      await fillDisk(t, victim, slackKiB);
      if (variant === 'code-deploy') {
        const deploy = await t.cli(['deploy', NEW, '--yes'], 600_000);
        const id = deployId(CODE_SERVICE);
        const started = await t.world.client.workflow
          .getHandle(id)
          .describe()
          .then(
            () => true,
            () => false,
          );
        if (!started)
          throw new Error(`the code deploy did not start (exit ${deploy.code}): ${deploy.stderr.slice(-300)}`);
        t.note(`code deploy of ${code.id} with ${victim.name} full (${slackKiB} KiB free)`);
        return {
          subjects: [{ type: 'rollout', id, expect: ['aborted', 'rolled-back', 'done'], before: t.initialConfig }],
        };
      }
      const release = await t.configMoving(STATIONS.slice(0, rng.int(1, 4)));
      const rollout = await t.startConfigRollout(release, { canary: '10%', batch: '25%' });
      rollout.expect = ['aborted', 'rolled-back', 'done'];
      t.note(`config rollout with ${victim.name} full (${slackKiB} KiB free)`);
      return { subjects: [rollout] };
    },
  },
};

/** Hosts whose root is a tmpfs; unmounted when the trial ends. */
const mounted = new Map<Trial, string[]>();

/** Moves a host's root onto a tmpfs just big enough for what it holds plus `slackKiB`, so the next fetch runs out. */
async function fillDisk(t: Trial, host: HostSpec, slackKiB: number): Promise<void> {
  const root = host.root;
  const aside = `${root}.before-tmpfs`;
  fs.renameSync(root, aside);
  fs.mkdirSync(root);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=755', 'tmpfs', root]);
  mounted.set(t, [...(mounted.get(t) ?? []), root]);
  execFileSync('cp', ['-a', `${aside}/.`, `${root}/`]);
  fs.rmSync(aside, { recursive: true, force: true });
  const usedKiB = Number(
    execFileSync('df', ['--output=used', '-k', root], { encoding: 'utf8' }).trim().split('\n').pop(),
  );
  execFileSync('mount', ['-o', `remount,size=${usedKiB + slackKiB}k`, root]);
  t.note(`${host.name}: root is a tmpfs of ${usedKiB + slackKiB} KiB (${usedKiB} used)`);
}

/** A kept trial keeps a copy of the tmpfs host, since its files vanish with the mount. */
function unmount(root: string, keepCopy: boolean): void {
  if (keepCopy) {
    fs.mkdirSync(`${root}.tmpfs-copy`, { recursive: true });
    execFileSync('cp', ['-a', `${root}/.`, `${root}.tmpfs-copy/`], { stdio: 'ignore' });
  }
  try {
    execFileSync('umount', [root], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', root], { stdio: 'ignore' });
  }
}

// ---- judging a trial -------------------------------------------------------------------------------------------

async function outcomeOf(t: Trial, subject: Subject, rest: Rest): Promise<string> {
  if (subject.type === 'train' && rest.train?.blocker)
    t.finding(`${subject.id} ${rest.train.state}: ${rest.train.blocker.slice(0, 600)}`);
  if (subject.type === 'train')
    return rest.closed
      ? rest.closed === 'COMPLETED' && rest.train
        ? rest.train.state
        : rest.closed
      : (rest.train?.state ?? rest.state);
  if (!rest.closed) return rest.state;
  if (rest.closed !== 'FAILED') {
    const result: RolloutStatus | undefined =
      rest.closed === 'COMPLETED'
        ? await t.world.client.workflow
            .getHandle(subject.id)
            .result()
            .catch(() => undefined)
        : undefined;
    return result?.phase ?? rest.closed;
  }
  const failure = await t.world.client.workflow
    .getHandle(subject.id)
    .result()
    .then(
      () => undefined,
      (err) => err,
    );
  const cause = (failure as WorkflowFailedError)?.cause as
    { type?: string; message?: string; cause?: { type?: string; message?: string } } | undefined;
  const type = cause?.type ?? cause?.cause?.type;
  t.finding(
    `${subject.id} FAILED: ${(cause?.message ?? String(failure)).slice(0, 300)}${cause?.cause?.message ? ` (${cause.cause.message.slice(0, 200)})` : ''}`,
  );
  if (type === 'RolloutRolledBack') return 'rolled-back';
  if (type === 'RolloutFailed') return 'aborted';
  if (type === 'LeaseTaken' || type === 'DependencyNotLive' || cause?.cause?.type === 'LeaseTaken') return 'refused';
  return `FAILED${type ? ` (${type})` : ''}`;
}

async function judge(
  t: Trial,
  plan: Plan,
  rests: Map<string, Rest>,
): Promise<{ violations: Violation[]; report: Awaited<ReturnType<typeof inspectHosts>>; outcomes: string[] }> {
  const violations: Violation[] = [];
  const outcomes: string[] = [];
  const staging = t.stagingDir;
  const executions = await trialExecutions(t.world.client, t.world.taskQueue);
  const report = await inspectHosts(t.hosts, t.world.fleet.controlUrl);
  violations.push(...report.violations);

  const releases = new Set(report.configReleases.values());
  if (releases.size > 1) {
    const byRelease = new Map<string | null, string[]>();
    for (const [host, r] of report.configReleases) byRelease.set(r, [...(byRelease.get(r) ?? []), host]);
    violations.push({
      kind: 'config-split',
      detail: `hosts on ${releases.size} config releases: ${[...byRelease].map(([r, h]) => `${r} (${h.length}: ${h.slice(0, 4).join(', ')})`).join('; ')}`,
    });
  }
  violations.push(...interleavings(executions));
  if (plan.stopped) violations.push({ kind: 'outcome', detail: `the scenario could not go on: ${plan.stopped}` });

  for (const subject of plan.subjects) {
    const rest = rests.get(subject.id)!;
    const outcome = await outcomeOf(t, subject, rest);
    outcomes.push(`${subject.type} ${outcome}`);
    if (!rest.atRest) {
      // A train that does not come to rest is usually waiting on a child rollout: say what that one waits for.
      const children = executions.filter(
        (x) =>
          x.info.type === 'rolloutWorkflow' &&
          x.info.status.name === 'RUNNING' &&
          x.info.workflowId.startsWith(`${subject.id}-`),
      );
      const waiting = await Promise.all(
        children.map(async (x) => {
          const status = await t.world.client.workflow
            .getHandle(x.info.workflowId)
            .query(rolloutStatusQuery)
            .catch(() => undefined);
          return `${x.info.workflowId} ${status ? `${status.phase}${status.pauseReason ? `: ${status.pauseReason}` : ''}` : 'running'}`;
        }),
      );
      violations.push({
        kind: 'not-at-rest',
        detail: `${subject.id} still ${rest.state}${rest.rollout?.pauseReason ? ` (${rest.rollout.pauseReason})` : ''}${rest.train?.blocker ? ` (${rest.train.blocker})` : ''}${waiting.length ? `; waiting on ${waiting.join('; ')}` : ''}`,
      });
    } else if (subject.expect.length && !subject.expect.includes(outcome))
      violations.push({
        kind: 'outcome',
        detail: `${subject.id} ended ${outcome}${rest.train?.blocker ? ` (${rest.train.blocker.slice(0, 200)})` : ''}; expected ${subject.expect.join(' or ')}`,
      });

    // What every wiki must serve now, from the workflow's own final word.
    let expected: Record<string, string> | undefined;
    if (subject.type === 'train' && rest.train && (!rest.closed || rest.closed === 'COMPLETED')) {
      const groups = Object.fromEntries(
        Object.entries(
          JSON.parse(
            fs.readFileSync(path.join(staging, CONFIG_SERVICE, t.initialConfig, 'wikis.json'), 'utf8'),
          ) as Record<string, { group: Station }>,
        ).map(([db, w]) => [db, w.group]),
      );
      expected = Object.fromEntries(Object.entries(groups).map(([db, g]) => [db, rest.train!.versions[g]]));
    } else if (subject.type === 'rollout' && rest.closed) {
      expected = configVersions(
        staging,
        outcome === 'done' && subject.release ? subject.release : (subject.before ?? t.initialConfig),
      );
    }
    if (expected && (!plan.servingFrom || plan.servingFrom === subject.id))
      violations.push(...servingExpected(report, expected));

    let rollbackStart: number | null = null;
    let target: Record<string, string> | undefined;
    if (subject.type === 'train') {
      const moves = trainStationMoves(executions, subject.id, staging, t.initialConfig, NEW);
      const counts = new Map<string, number>();
      for (const m of moves)
        counts.set(`${m.station} ${m.direction}`, (counts.get(`${m.station} ${m.direction}`) ?? 0) + 1);
      violations.push(...movedTwice(counts, (key) => `station ${key.replace(' ', ' moved ')}`));
      const back = moves.find((m) => m.direction === 'back');
      if (back) {
        rollbackStart = back.at;
        const child = executions.find((x) => x.info.workflowId === back.child);
        target = configVersions(staging, child!.input.release.id);
      }
      t.note(
        `station moves: ${moves.map((m) => `${m.station} ${m.direction} (${m.child.replace(`${subject.id}-`, '')})`).join(', ') || 'none'}`,
      );
    } else {
      rollbackStart = rolloutRollbackStart(executions, subject.id);
      if (rollbackStart) target = configVersions(staging, subject.before ?? t.initialConfig);
      if (subject.release)
        violations.push(
          ...movedTwice(hostMoves(t.linkChanges(), staging, NEW), (key) => `host ${key.replace(' ', ' moved ')}`),
        );
    }
    if (rollbackStart && target) {
      violations.push(...newerThan(report, target));
      violations.push(...wrongDirection(t.linkChanges(), rollbackStart, staging, NEW));
    }
    // A FAILED workflow is not a promise kept by itself; what it left behind decides (split and depooled above).
  }
  return { violations, report, outcomes };
}

export async function runTrial(options: TrialOptions): Promise<TrialResult> {
  const started = Date.now();
  const scenario = SCENARIOS[options.kind];
  const base = {
    kind: options.kind,
    seed: options.seed,
    outcomes: [],
    violations: [],
    depooled: 0,
    unchecked: 0,
    wrongDirection: 0,
    workerKills: 0,
    serverKills: 0,
    journal: false,
    notes: [],
  };
  const unavailable = scenario.unavailable?.(options);
  if (unavailable) return { ...base, converged: true, skipped: unavailable, seconds: 0 };

  const rng = new Prng(options.seed);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `signalbox-chaos-${options.kind}-`));
  const logFile = path.join(home, 'chaos.log');
  const filled = {
    faultWindowMs: 150_000,
    maxKills: 12,
    restTimeoutMs: 240_000,
    hosts: 10,
    keep: 'failed' as const,
    ...options,
  };
  let world: World | undefined;
  let trial: Trial | undefined;
  let watcher: LinkWatcher | undefined;
  let result: TrialResult;
  try {
    world = await startWorld({
      home,
      hosts: filled.hosts,
      temporal: options.temporal,
      workflowBundle: options.workflowBundle,
      baseConfig: options.baseConfig,
      taskQueue: `chaos-${options.kind}-${options.seed}`,
      seed: options.seed,
      configure: scenario.configure,
    });
    world.workers.start();
    watcher = new LinkWatcher(world.fleet.hosts);
    watcher.start();
    const initialConfig = fs
      .readlinkSync(path.join(world.fleet.hosts[0].root, CONFIG_SERVICE, 'current'))
      .replace(/^revs\//, '');
    trial = new Trial(world, rng, filled, logFile, initialConfig, watcher);
    trial.note(
      `trial ${options.kind} seed ${options.seed}: ${filled.hosts} hosts, Temporal ${options.temporal ? `${options.temporal.address} namespace ${options.temporal.namespace}` : 'of its own'}, folder ${home}`,
    );

    // A scenario that cannot go on (the train came to rest early, say) still leaves a fleet to judge.
    const plan: Plan = await scenario.run(trial).catch((err: Error) => {
      if (!trial!.watched().length) throw err;
      return { subjects: trial!.watched(), stopped: err.message };
    });
    for (const s of plan.subjects) trial.watch(s);
    // Faults stop first; then a worker must run, and the workflows get a bounded time to come to rest.
    await plan.endFaults?.();
    if (world.workers.ensureRunning()) trial.note('no worker was running after the faults; started one');
    const deadline = Date.now() + filled.restTimeoutMs;
    while (Date.now() < deadline && !plan.subjects.every((s) => trial!.atRest(s.id))) {
      if (world.workers.ensureRunning()) trial.finding('the worker exited by itself after the faults; started another');
      await sleep(250);
    }
    await Promise.race([Promise.all(plan.pending ?? []), sleep(Math.max(0, deadline - Date.now()))]);
    await trial.stopWatching();
    const rests = new Map<string, Rest>();
    for (const s of plan.subjects) rests.set(s.id, await trial.restOf(s));
    // What a bad release does is no longer the question: only what is deployed where.
    world.clearFaults();
    await sleep(400);
    watcher.stop();
    const { violations, report, outcomes } = await judge(trial, plan, rests);
    result = {
      ...base,
      converged: violations.length === 0,
      seconds: (Date.now() - started) / 1000,
      outcomes,
      violations,
      depooled: report.depooled.length,
      unchecked: report.unchecked.length,
      wrongDirection: violations.filter((v) => v.kind === 'wrong-direction').length,
      workerKills: world.workers.kills,
      serverKills: trial.serverKills,
      journal: report.journal,
      notes: trial.notes,
    };
  } catch (err) {
    trial?.note(`harness error: ${(err as Error).stack}`);
    result = {
      ...base,
      converged: false,
      seconds: (Date.now() - started) / 1000,
      workerKills: world?.workers.kills ?? 0,
      serverKills: trial?.serverKills ?? 0,
      notes: trial?.notes ?? [],
      error: (err as Error).message,
    };
  } finally {
    watcher?.stop();
    await trial?.stopWatching().catch(() => undefined);
    if (world && options.temporal) {
      // A shared server outlives the trial: nothing of the trial may keep running on it.
      for await (const wf of world.client.workflow.list({
        query: `TaskQueue = '${world.taskQueue}' AND ExecutionStatus = 'Running'`,
      })) {
        await world.client.workflow
          .getHandle(wf.workflowId, wf.runId)
          .terminate('chaos trial over')
          .catch(() => undefined);
      }
    }
    await world?.stop();
  }
  const keep = filled.keep === 'always' || (filled.keep === 'failed' && !result.converged);
  for (const root of (trial && mounted.get(trial)) ?? []) unmount(root, keep);
  if (trial) mounted.delete(trial);
  if (keep) result.home = home;
  else fs.rmSync(home, { recursive: true, force: true });
  return result;
}

// ---- the command -----------------------------------------------------------------------------------------------

interface Args {
  trials: number;
  seed: number;
  hosts: number;
  kinds: Kind[];
  keep: 'always' | 'failed';
  restTimeoutMs: number;
}

/** Bad input stops here with a message, before any server or fleet is started. */
export function parseArgs(argv: string[]): Args {
  const args: Args = {
    trials: 8,
    seed: Math.floor(Math.random() * 2 ** 31),
    hosts: 10,
    kinds: [...KINDS],
    keep: 'failed',
    restTimeoutMs: 240_000,
  };
  const integer = (flag: string, value: string | undefined, min: number, max: number) => {
    if (value === undefined || !/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
      throw new Error(`${flag} takes a whole number from ${min} to ${max}, not ${JSON.stringify(value ?? '')}`);
    return Number(value);
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--trials') {
      args.trials = integer(flag, value, 1, 10_000);
      i++;
    } else if (flag === '--seed') {
      args.seed = integer(flag, value, 0, 2 ** 32 - 1);
      i++;
    } else if (flag === '--hosts') {
      args.hosts = integer(flag, value, 2, 250);
      i++;
    } else if (flag === '--rest-timeout') {
      args.restTimeoutMs = integer(flag, value, 10, 3600) * 1000;
      i++;
    } else if (flag === '--keep') args.keep = 'always';
    else if (flag === '--kinds') {
      const kinds = (value ?? '')
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean);
      const unknown = kinds.filter((k) => !(KINDS as readonly string[]).includes(k));
      if (!kinds.length || unknown.length)
        throw new Error(
          `--kinds takes a comma-separated list of ${KINDS.join(', ')}; unknown: ${unknown.join(', ') || '(empty)'}`,
        );
      args.kinds = kinds as Kind[];
      i++;
    } else
      throw new Error(
        `unknown argument ${JSON.stringify(flag)}; usage: npm run chaos -- --trials N [--seed S] [--hosts N] [--kinds ${KINDS.join(',')}] [--keep] [--rest-timeout SECONDS]`,
      );
  }
  return args;
}

function trialLine(index: number, total: number, r: TrialResult): string {
  const head = `${String(index + 1).padStart(String(total).length)}/${total} ${r.kind.padEnd(20)} seed ${String(r.seed).padEnd(10)}`;
  if (r.skipped) return `${head} skipped: ${r.skipped}`;
  const verdict = r.converged
    ? 'converged'
    : `NOT converged${r.error ? ` (harness error: ${r.error.replace(/\s*\n\s*/g, ' ').slice(0, 400)})` : `: ${[...new Set(r.violations.map((v) => v.kind))].join(', ')}`}`;
  const faults = [r.workerKills && `${r.workerKills} worker kills`, r.serverKills && `${r.serverKills} server kills`]
    .filter(Boolean)
    .join(', ');
  return `${head} ${verdict}  ${r.seconds.toFixed(1)} s  [${r.outcomes.join('; ') || 'no outcome'}${faults ? `; ${faults}` : ''}]`;
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`chaos: ${(err as Error).message}`);
    process.exit(2);
  }
  // Read once, and checked before anything starts: a signalbox.yml edited mid-run must not fail later trials.
  const baseConfig = fs.readFileSync(DEFAULT_CONFIG_FILE, 'utf8');
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-chaos-config-'));
  try {
    fs.writeFileSync(path.join(probe, 'signalbox.yml'), baseConfig);
    loadConfig(path.join(probe, 'signalbox.yml'), probe);
  } catch (err) {
    console.error(
      `chaos: the default ${DEFAULT_CONFIG_FILE} does not load, so no trial could start: ${(err as Error).message}`,
    );
    process.exit(2);
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
  console.log(`chaos: ${args.trials} trials, seed ${args.seed}, ${args.hosts} hosts, kinds ${args.kinds.join(', ')}`);
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const { WORKFLOWS_PATH } = await import('../../workers/worker');
  const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error };
  const bundle = path.join(os.tmpdir(), `signalbox-chaos-bundle-${process.pid}.js`);
  fs.writeFileSync(bundle, (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quiet })).code);
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.log(
      '\nchaos: interrupted; the running trial finishes and cleans up (Ctrl-C again to quit at once, leaving its processes)',
    );
  });
  const results: TrialResult[] = [];
  try {
    for (let i = 0; i < args.trials && !interrupted; i++) {
      const kind = args.kinds[i % args.kinds.length];
      const seed = trialSeed(args.seed, i);
      const r = await runTrial({
        kind,
        seed,
        hosts: args.hosts,
        workflowBundle: bundle,
        baseConfig,
        keep: args.keep,
        restTimeoutMs: args.restTimeoutMs,
      });
      results.push(r);
      console.log(trialLine(i, args.trials, r));
      for (const v of r.violations) console.log(`      ${v.kind}${v.host ? ` ${v.host}` : ''}: ${v.detail}`);
      for (const n of r.notes) console.log(`      note: ${n}`);
      if (!r.converged)
        console.log(
          `      replay: npm run chaos -- --seed ${r.seed} --trials 1 --kinds ${r.kind} --hosts ${args.hosts}${r.home ? `   (kept: ${r.home})` : ''}`,
        );
    }
  } finally {
    fs.rmSync(bundle, { force: true });
  }
  const ran = results.filter((r) => !r.skipped);
  const sum = (f: (r: TrialResult) => number) => ran.reduce((n, r) => n + f(r), 0);
  const byKind = new Map<string, number>();
  for (const v of ran.flatMap((r) => r.violations)) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
  const skipped = results.filter((r) => r.skipped);
  console.log('');
  console.log(
    `converged ${ran.filter((r) => r.converged).length}/${ran.length}${skipped.length ? ` (${skipped.length} skipped: ${[...new Set(skipped.map((r) => `${r.kind}: ${r.skipped}`))].join('; ')})` : ''}`,
  );
  console.log(`hosts left depooled: ${sum((r) => r.depooled)}`);
  const approximate = ran.some((r) => !r.error && !r.journal);
  console.log(
    `hosts on an unchecked release: ${sum((r) => r.unchecked)}${approximate ? ' (approximate: this engine keeps no host journal, so "checked" means link = state.json and the app answers what its link says)' : ''}`,
  );
  console.log(`wrong-direction deploys: ${sum((r) => r.wrongDirection)}`);
  if (byKind.size) console.log(`violations: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (ran.some((r) => r.error)) console.log(`harness errors: ${ran.filter((r) => r.error).length}`);
  process.exit(ran.every((r) => r.converged) ? 0 : 1);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
