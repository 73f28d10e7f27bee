// End-to-end trials of the canary analysis (issue 12): how often each judge rolls back a healthy release, how many
// faulty releases it catches, how fast, and how much of the fleet and its traffic a release reached first.
//
//   npm run trials -- --healthy 20 --faulty 20 [--seed S] [--json FILE] [--keep]
//
// How: one world for the whole run (one Temporal dev server, a worker process, a 20-host sandbox fleet with
// production-like traffic at 400 requests/s: background errors, noisy hosts, bursts). Each trial stages a new
// MediaWiki version, lands a config release moving every wiki group onto it, and deploys it with the real rollout
// workflow: one canary host picked by a seeded PRNG (so some trials get a noisy one), the canary analysis on
// workflow timers (sequential judge, ten 3-second samples), then the other 19 hosts at once. A faulty trial writes
// its fault for the new version into the sandbox's faults.json before the deploy starts.
//
// Sequential judge: the verdict the workflow itself reached (a rollback for a failed analysis, a finished deploy
// for a pass, a pause for an inconclusive one, which this harness then rolls back).
// Fixed judge: the same recorded samples judged again by `replay(..., ['method=fixed'])` (cli/analysis-replay.ts),
// so both judges see exactly the same traffic. When the sequential judge rolled back early, there are no later
// samples: a fixed judge that had not decided by then is "undecided", counted apart.
// Exposure: every host's /metrics (mediawiki_requests_total by version) read before the deploy and every second
// until it came to rest: hosts that ever served the new version, and its share of all requests in that time.
// After each trial the fleet goes back to the base config release, checked, so every trial starts alike.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { Release } from '../../activities/releases';
import { sumCounter } from '../../activities/metrics';
import type { Fault, FaultFile } from '../../sandbox/server';
import { faultsFile } from '../../sandbox/server';
import { BACKGROUND_SIGNATURES, noisyHosts } from '../../sandbox/traffic';
import { SANDBOX_START_VERSION } from '../../sandbox/wikis';
import { fleetFile } from '../../activities/inventory';
import { rollbackRollout, rolloutStatusQuery, type RolloutStatus } from '../../workflows/definitions';
import { describe, type AnalysisStatus, type AnalysisView, type Evidence } from '../../workflows/analysis/index';
import { STATIONS, type Station } from '../../workflows/names';
import { recordedRuns, replay } from '../../cli/analysis-replay';
import { startRollout } from '../../cli/client';
import { CODE_SERVICE, CONFIG_SERVICE } from './invariants';
import { Prng, sleep, startWorld, type World } from './harness';

const HOSTS = 20;
const TRAFFIC_PER_SECOND = 400;
const BASE_VERSION = SANDBOX_START_VERSION;
const FIRST_TRIAL_WMF = 30;
const BY = 'trials';

/** The canary analysis as the trials run it (signalbox.yml keys); the rest are the defaults. */
const ANALYSIS = {
  source: 'scrape',
  method: 'sequential',
  // A minute of canary: at 30 s (10 samples) a +2 point fault on ~600 canary requests was caught in 0 of 2 trials.
  intervalMs: 3000,
  measurements: 20,
  minRequests: 50,
  latency: { maxP99Ratio: 3 },
  // The fixed judge's per-interval thresholds (replayed only).
  maxErrorRate: 0.01,
  maxRatioToBaseline: 5,
  failureLimit: 0,
};
/**
 * The fixed judge's least canary requests per interval. signalbox.yml has one minRequests key for both the
 * sequential judge's whole window and the fixed judge's every interval, so the replayed spec is given this one.
 */
const FIXED_MIN_REQUESTS_PER_INTERVAL = 20;

const FAULT_KINDS = ['error+2pt', 'latency', 'crash-loop', 'ramp', 'one-wiki'] as const;
type FaultKind = (typeof FAULT_KINDS)[number];
type TrialKind = 'healthy' | FaultKind;

const everyGroup = (fault: Fault['groups'][Station]): Fault['groups'] =>
  Object.fromEntries(STATIONS.map((s) => [s, fault]));

/**
 * A rate fault logs a message every version already shows (a background one), so only the error-rate tests can
 * catch it. A bug on one wiki logs a new message, as a real one does; it is the release's own, since the hosts'
 * counters live as long as the fleet and a message shared by all trials would be known after the first.
 */
function faultOf(kind: FaultKind, version: string): Fault {
  const newError = `Error: Call to undefined method SkinTemplate::getTabs() in MediaWiki ${version}`;
  const knownError = BACKGROUND_SIGNATURES[0];
  switch (kind) {
    case 'error+2pt':
      return { groups: everyGroup({ errorRate: 0.02 }), signature: knownError };
    case 'latency':
      return { groups: everyGroup({ errorRate: 0, latencyMs: 300 }) };
    case 'crash-loop':
      return { groups: {}, crashLoop: true };
    case 'ramp':
      // The canary window is a minute, so a 2-minute ramp (not 30) is what it can see rising.
      return { groups: everyGroup({ errorRate: 0.1, rampMinutes: 2 }), signature: knownError };
    case 'one-wiki':
      return { groups: { group2: { errorRate: 0.1, wikis: ['enwiki'] } }, signature: newError };
  }
}

// ---- one trial's records -----------------------------------------------------------------------------------------

type VerdictKind = 'fail' | 'pass' | 'inconclusive' | 'undecided' | 'deploy-failed' | 'no-samples' | 'error';

interface Verdict {
  verdict: VerdictKind;
  /** Sample index it decided at (a fail's crossedAt, else judgedThrough); null without samples. */
  samples: number | null;
  /** The test that failed the run. */
  test?: string;
  summary: string;
}

interface TrialRecord {
  index: number;
  kind: TrialKind;
  version: string;
  canary: string;
  canaryNoisy: boolean;
  workflowId: string;
  /** How the rollout ended: done, rolled-back (with its message), timed-out... */
  outcome: string;
  sequential: Verdict;
  fixed: Verdict;
  hostsExposed: number;
  hosts: number;
  requestsExposed: number;
  requestsAll: number;
  seconds: number;
  notes: string[];
  error?: string;
}

const shareOf = (r: TrialRecord) => (r.requestsAll > 0 ? r.requestsExposed / r.requestsAll : 0);
const deciding = (evidence: Evidence[]) => evidence.find((e) => e.crossedAt !== undefined);

function verdictOfStatus(
  status: Pick<AnalysisStatus, 'phase' | 'evidence' | 'judgedThrough'> & { summary?: string },
  summary: string,
): Verdict {
  const decided = deciding(status.evidence);
  if (status.phase === 'fail')
    return { verdict: 'fail', samples: decided?.crossedAt ?? status.judgedThrough, test: decided?.test, summary };
  return {
    verdict: status.phase === 'running' ? 'undecided' : status.phase,
    samples: Math.max(0, status.judgedThrough),
    summary,
  };
}

// ---- exposure: who served the new version, and how much ----------------------------------------------------------

type VersionCounts = Record<string, number> & { total: number };

/** Every host's requests by version, read every second; a host that does not answer keeps its last reading. */
class ExposureMeter {
  private readonly before = new Map<string, VersionCounts>();
  private readonly latest = new Map<string, VersionCounts>();
  private running = false;
  private loop?: Promise<void>;

  constructor(private readonly hosts: World['fleet']['hosts']) {}

  private async readAll(into: Map<string, VersionCounts>): Promise<string[]> {
    const missing: string[] = [];
    await Promise.all(
      this.hosts.map(async (h) => {
        const text = await fetch(`http://${h.address}:${h.port}/metrics`, { signal: AbortSignal.timeout(2000) })
          .then((r) => (r.ok ? r.text() : undefined))
          .catch(() => undefined);
        if (text === undefined) missing.push(h.name);
        else into.set(h.name, sumCounter(text, 'mediawiki_requests_total', 'version'));
      }),
    );
    return missing;
  }

  /** The starting reading: every host must answer, or the trial would count its whole history as exposure. */
  async start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const missing = await this.readAll(this.before);
      if (!missing.length) break;
      if (attempt >= 20) throw new Error(`hosts not answering /metrics before the deploy: ${missing.join(', ')}`);
      await sleep(250);
    }
    for (const [host, counts] of this.before) this.latest.set(host, counts);
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.readAll(this.latest);
        await sleep(1000);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.readAll(this.latest);
  }

  exposure(version: string): { hostsExposed: number; requestsExposed: number; requestsAll: number } {
    let hostsExposed = 0;
    let requestsExposed = 0;
    let requestsAll = 0;
    for (const [host, after] of this.latest) {
      const before = this.before.get(host)!;
      const served = (after[version] ?? 0) - (before[version] ?? 0);
      if ((after[version] ?? 0) > 0) hostsExposed++;
      requestsExposed += Math.max(0, served);
      requestsAll += Math.max(0, after.total - before.total);
    }
    return { hostsExposed, requestsExposed, requestsAll };
  }
}

// ---- deploying and waiting -----------------------------------------------------------------------------------------

interface RolloutEnd {
  outcome: string;
  message: string;
  status?: RolloutStatus;
  /** The analysis as it stood when the rollout paused as inconclusive (this harness then rolled it back). */
  inconclusive?: AnalysisView;
}

/** Waits for a rollout to close; an inconclusive canary analysis is rolled back so the run goes on. */
async function awaitRollout(world: World, workflowId: string, timeoutMs: number): Promise<RolloutEnd> {
  const handle = world.client.workflow.getHandle(workflowId);
  const deadline = Date.now() + timeoutMs;
  let last: RolloutStatus | undefined;
  let inconclusive: AnalysisView | undefined;
  for (;;) {
    const described = await handle.describe().catch(() => undefined);
    if (described && described.status.name !== 'RUNNING') break;
    const status = await handle.query(rolloutStatusQuery).catch(() => undefined);
    if (status) last = status;
    if (status?.paused && status.pauseReason?.startsWith('canary analysis inconclusive') && !inconclusive) {
      inconclusive = status.analysis;
      await handle.executeUpdate(rollbackRollout, {
        args: [{ by: BY, reason: 'canary analysis inconclusive: the trial harness rolls it back' }],
      });
    }
    if (Date.now() > deadline) {
      await handle.terminate('trial timed out').catch(() => undefined);
      return {
        outcome: 'timed-out',
        message: `still ${last?.phase ?? 'running'}${last?.pauseReason ? ` (${last.pauseReason})` : ''} after ${timeoutMs / 1000} s`,
        status: last,
        inconclusive,
      };
    }
    await sleep(500);
  }
  try {
    const status = await handle.result();
    return { outcome: status.phase, message: status.phase, status, inconclusive };
  } catch (err) {
    const cause = (err as WorkflowFailedError).cause as
      { type?: string; message?: string; details?: unknown[] } | undefined;
    const status = (cause?.details?.[0] as RolloutStatus | undefined) ?? last;
    const outcome =
      cause?.type === 'RolloutRolledBack'
        ? 'rolled-back'
        : cause?.type === 'RolloutFailed'
          ? 'aborted'
          : `failed${cause?.type ? ` (${cause.type})` : ''}`;
    return { outcome, message: cause?.message ?? String(err), status, inconclusive };
  }
}

function configLink(host: World['fleet']['hosts'][number]): string | null {
  try {
    return fs.readlinkSync(path.join(host.root, CONFIG_SERVICE, 'current')).replace(/^revs\//, '');
  } catch {
    return null;
  }
}

async function hostsUp(world: World): Promise<{ host: string; up: boolean; pooled: boolean; error?: string }[]> {
  const res = await fetch(`${world.fleet.controlUrl}/hosts`, { signal: AbortSignal.timeout(5000) });
  return (await res.json()) as { host: string; up: boolean; pooled: boolean; error?: string }[];
}

function writeFaults(world: World, faults: FaultFile): void {
  const file = faultsFile(world.home);
  fs.writeFileSync(`${file}.next`, JSON.stringify(faults, null, 2));
  fs.renameSync(`${file}.next`, file);
}

/** The base config release on every host, each up and pooled; a deploy of it first if any host is elsewhere. */
async function restoreBase(world: World, base: Release, label: string): Promise<string | undefined> {
  let note: string | undefined;
  const elsewhere = world.fleet.hosts.filter((h) => configLink(h) !== base.id);
  if (elsewhere.length) {
    const id = `trials-restore-${label}`;
    await startRollout(
      world.client,
      world.config,
      {
        service: CONFIG_SERVICE,
        release: base,
        selector: {},
        strategy: { ...world.config.rollout, canary: null, batch: '100%', maxFail: '0' },
        by: BY,
      },
      id,
    );
    const end = await awaitRollout(world, id, 180_000);
    if (end.outcome !== 'done')
      throw new Error(`putting the fleet back on ${base.id} ended ${end.outcome}: ${end.message}`);
    note = `restored ${elsewhere.length} hosts to the base release`;
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    const off = world.fleet.hosts.filter((h) => configLink(h) !== base.id).map((h) => h.name);
    const down = (await hostsUp(world).catch(() => [])).filter((h) => !h.up || !h.pooled);
    if (!off.length && !down.length) return note;
    if (Date.now() > deadline) {
      throw new Error(
        `the fleet is not back on the base release: ${[off.length && `not on ${base.id}: ${off.join(', ')}`, down.length && `down or depooled: ${down.map((h) => `${h.host}${h.error ? ` (${h.error})` : ''}`).join(', ')}`].filter(Boolean).join('; ')}`,
      );
    }
    await sleep(500);
  }
}

// ---- one trial -----------------------------------------------------------------------------------------------------

interface PlannedTrial {
  index: number;
  kind: TrialKind;
  version: string;
  canary: string;
}

async function runTrial(
  world: World,
  base: Release,
  trial: PlannedTrial,
  noisy: Set<string>,
  runSeed: number,
): Promise<TrialRecord> {
  const started = Date.now();
  const a = world.activities;
  const notes: string[] = [];
  const workflowId = `trial-${trial.index + 1}-${trial.version}`;
  const record: TrialRecord = {
    index: trial.index,
    kind: trial.kind,
    version: trial.version,
    canary: trial.canary,
    canaryNoisy: noisy.has(trial.canary),
    workflowId,
    outcome: 'not started',
    sequential: { verdict: 'error', samples: null, summary: '' },
    fixed: { verdict: 'no-samples', samples: null, summary: '' },
    hostsExposed: 0,
    hosts: world.fleet.hosts.length,
    requestsExposed: 0,
    requestsAll: 0,
    seconds: 0,
    notes,
  };
  let meter: ExposureMeter | undefined;
  try {
    writeFaults(world, trial.kind === 'healthy' ? {} : { [trial.version]: faultOf(trial.kind, trial.version) });
    // The sandbox re-reads faults.json every 200 ms: the fault is on before any host could serve the version.
    await sleep(500);

    // The new code on every host, linked but not served, as a train's stage leaves it.
    const code = await a.stageCode({ version: trial.version, by: BY });
    const hosts = world.fleet.hosts.map((h) => h.name);
    const request = { service: CODE_SERVICE, release: code, hosts, by: BY, runId: `trials-stage-${trial.index + 1}` };
    const staged = [...(await a.fetchToHosts(request)), ...(await a.promoteHosts(request))].filter(
      (r) => r.outcome === 'failed',
    );
    if (staged.length)
      throw new Error(`staging ${trial.version} failed: ${staged.map((r) => `${r.host}: ${r.detail}`).join('; ')}`);
    const versions = Object.fromEntries(STATIONS.map((s) => [s, trial.version])) as Record<Station, string>;
    const change = await a.landWikiversions({
      versions,
      subject: `trials: every group to ${trial.version}`,
      changeId: `trials-${runSeed}-${trial.index + 1}`,
      by: BY,
    });

    meter = new ExposureMeter(world.fleet.hosts);
    await meter.start();
    const strategy = { ...world.config.rollout, canary: '1', canaryHosts: [trial.canary], batch: '100%', maxFail: '0' };
    await startRollout(
      world.client,
      world.config,
      { service: CONFIG_SERVICE, release: change.release, selector: {}, strategy, by: BY },
      workflowId,
    );
    const end = await awaitRollout(world, workflowId, 300_000);
    await meter.stop();
    Object.assign(record, meter.exposure(trial.version));
    meter = undefined;
    record.outcome =
      end.outcome === 'rolled-back'
        ? `rolled-back: ${end.message.split(';')[0]}`
        : end.outcome === 'done'
          ? 'done'
          : `${end.outcome}: ${end.message}`;

    // The sequential judge, as the workflow decided.
    const analysis = end.inconclusive ?? end.status?.analysis;
    if (end.inconclusive)
      record.sequential = verdictOfStatus({ ...end.inconclusive, phase: 'inconclusive' }, end.inconclusive.summary);
    else if (analysis && (analysis.phase === 'pass' || analysis.phase === 'fail')) {
      record.sequential = verdictOfStatus(analysis, analysis.summary);
      // A pass whose later batch failed its checks still let the release through the analysis.
      if (analysis.phase === 'pass' && end.outcome !== 'done')
        notes.push(`the analysis passed, then the deploy ended ${record.outcome}`);
    } else if (end.outcome === 'rolled-back' || end.outcome === 'aborted')
      record.sequential = {
        verdict: 'deploy-failed',
        samples: analysis ? Math.max(0, analysis.judgedThrough) : null,
        summary: end.message,
      };
    else record.sequential = { verdict: 'error', samples: null, summary: `${end.outcome}: ${end.message}` };

    // The fixed judge on the very samples the workflow took.
    const { events } = await world.client.workflow.getHandle(workflowId).fetchHistory();
    const runs = recordedRuns(events ?? []).map((run) => ({
      ...run,
      spec: { ...run.spec, fixed: { ...run.spec.fixed!, minRequests: FIXED_MIN_REQUESTS_PER_INTERVAL } },
    }));
    if (runs.length) {
      const [replayed] = replay(runs, ['method=fixed']);
      record.fixed = verdictOfStatus(replayed.whatIf, describe(replayed.whatIf));
      // Replayed with its own settings, the recorded run must decide as the workflow did.
      const asRecorded = replayed.recorded.phase;
      const asRun = record.sequential.verdict;
      if (['fail', 'pass', 'inconclusive'].includes(asRun) && asRecorded !== asRun)
        notes.push(`replay of the recorded samples says ${asRecorded}, the workflow ${asRun}`);
    } else
      record.fixed = { verdict: 'no-samples', samples: null, summary: 'no canary analysis samples in the history' };
  } catch (err) {
    record.error = (err as Error).message;
    await meter?.stop().catch(() => undefined);
  }
  world.clearFaults();
  try {
    const restored = await restoreBase(world, base, String(trial.index + 1));
    if (restored) notes.push(restored);
  } catch (err) {
    record.error = [record.error, (err as Error).message].filter(Boolean).join('; ');
    throw Object.assign(new Error(`trial ${trial.index + 1}: ${(err as Error).message}`), { record });
  } finally {
    record.seconds = (Date.now() - started) / 1000;
  }
  return record;
}

// ---- reporting ---------------------------------------------------------------------------------------------------

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const median = (xs: number[]) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
/** The fixed judge's per-interval error threshold is evidence test 'fixed': shown as what it checks. */
const testName = (test: string) => (test === 'fixed' ? 'error-threshold' : test);
const verdictText = (v: Verdict) =>
  `${v.verdict}${v.samples !== null && v.verdict !== 'no-samples' ? `@${v.samples}` : ''}${v.test ? ` ${testName(v.test)}` : ''}`;

function trialLine(r: TrialRecord, total: number): string {
  const n = `${String(r.index + 1).padStart(String(total).length)}/${total}`;
  const canary = `${r.canary}${r.canaryNoisy ? ' (noisy)' : ''}`;
  const head = `${n} ${r.kind.padEnd(10)} ${r.version.padEnd(14)} canary ${canary.padEnd(15)}`;
  const verdicts = `sequential ${verdictText(r.sequential).padEnd(24)} fixed ${verdictText(r.fixed).padEnd(24)}`;
  const exposure = `hosts ${r.hostsExposed}/${r.hosts}, requests ${pct(shareOf(r))}`;
  return `${head} ${verdicts} ${exposure}  ${r.seconds.toFixed(1)} s${r.error ? `  ERROR: ${r.error}` : ''}`;
}

type JudgeName = 'sequential' | 'fixed';

/** Whether the judge stopped this release at the canary (fixed: inferred, as it judged the canary's samples). */
function caughtEarly(r: TrialRecord, judge: JudgeName): boolean {
  if (r[judge].verdict !== 'fail') return false;
  // The fixed judge never ran for real: a fail on the canary's samples means only the canary served it.
  return judge === 'fixed' ? 1 / r.hosts < 0.1 : r.hostsExposed / r.hosts < 0.1;
}

function summary(records: TrialRecord[]): string[] {
  const lines: string[] = [];
  const judges: JudgeName[] = ['sequential', 'fixed'];
  const healthy = records.filter((r) => r.kind === 'healthy');
  const faulty = records.filter((r) => r.kind !== 'healthy');
  const col = (text: string) => text.padEnd(38);
  lines.push(`${''.padEnd(28)}${col('sequential (as the workflow decided)')}fixed (replayed on the same samples)`);
  const cell = (judge: JudgeName, rs: TrialRecord[], label: 'false rollbacks' | 'caught') => {
    const failed = rs.filter((r) => r[judge].verdict === 'fail');
    const inconclusive = rs.filter((r) => r[judge].verdict === 'inconclusive').length;
    const undecided = rs.filter((r) => r[judge].verdict === 'undecided').length;
    const other = rs.filter((r) => !['fail', 'pass', 'inconclusive', 'undecided'].includes(r[judge].verdict)).length;
    const extra = [
      inconclusive && `${inconclusive} inconcl.`,
      undecided && `${undecided} undecided`,
      other && `${other} other`,
    ]
      .filter(Boolean)
      .join(', ');
    const speed =
      label === 'caught' && failed.length ? `, median ${median(failed.map((r) => r[judge].samples ?? 0))} samples` : '';
    return `${label === 'caught' ? 'caught ' : ''}${failed.length}/${rs.length}${speed}${extra ? ` (${extra})` : ''}`;
  };
  if (healthy.length)
    lines.push(
      `${'healthy: false rollbacks'.padEnd(28)}${judges.map((j, i) => (i ? cell(j, healthy, 'false rollbacks') : col(cell(j, healthy, 'false rollbacks')))).join('')}`,
    );
  for (const kind of FAULT_KINDS) {
    const rs = faulty.filter((r) => r.kind === kind);
    if (!rs.length) continue;
    lines.push(
      `${kind.padEnd(28)}${judges.map((j, i) => (i ? cell(j, rs, 'caught') : col(cell(j, rs, 'caught')))).join('')}`,
    );
  }
  if (faulty.length) {
    const early = (j: JudgeName) => `${faulty.filter((r) => caughtEarly(r, j)).length}/${faulty.length}`;
    lines.push(
      `${'faults caught before 10%'.padEnd(28)}${col(early('sequential'))}${early('fixed')}  (of hosts served them; fixed: a fail on the canary's samples = 1 host)`,
    );
    const byDeploy = faulty.filter((r) => r.sequential.verdict === 'deploy-failed').length;
    if (byDeploy)
      lines.push(
        `  ${byDeploy} faulty deploys were rolled back before the analysis decided (the canary failed its checks)`,
      );
  }
  lines.push('');
  for (const [label, rs] of [
    ['faulty', faulty],
    ['healthy', healthy],
  ] as const) {
    if (!rs.length) continue;
    const shares = rs.map(shareOf);
    lines.push(
      `requests served by the new version (${label}, as run): max ${pct(Math.max(...shares))}, median ${pct(median(shares))} of all requests while the deploy ran; hosts exposed: max ${Math.max(...rs.map((r) => r.hostsExposed))}/${rs[0].hosts}`,
    );
  }
  const errors = records.filter((r) => r.error).length;
  if (errors) lines.push(`harness errors: ${errors} trials (see their lines)`);
  const odd = records.flatMap((r) =>
    r.notes.filter((n) => n.startsWith('replay')).map((n) => `trial ${r.index + 1}: ${n}`),
  );
  if (odd.length) lines.push(...odd);
  return lines;
}

// ---- the command -------------------------------------------------------------------------------------------------

interface Args {
  healthy: number;
  faulty: number;
  seed: number;
  keep: boolean;
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { healthy: 20, faulty: 20, seed: Math.floor(Math.random() * 2 ** 31), keep: false };
  const whole = (flag: string, value: string | undefined, max: number) => {
    if (value === undefined || !/^\d+$/.test(value) || Number(value) > max)
      throw new Error(`${flag} takes a whole number from 0 to ${max}, not ${JSON.stringify(value ?? '')}`);
    return Number(value);
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--healthy') {
      args.healthy = whole(flag, value, 500);
      i++;
    } else if (flag === '--faulty') {
      args.faulty = whole(flag, value, 500);
      i++;
    } else if (flag === '--seed') {
      args.seed = whole(flag, value, 2 ** 32 - 1);
      i++;
    } else if (flag === '--json') {
      if (!value) throw new Error('--json takes a file name');
      args.json = value;
      i++;
    } else if (flag === '--keep') args.keep = true;
    else
      throw new Error(
        `unknown argument ${JSON.stringify(flag)}; usage: npm run trials -- [--healthy N] [--faulty N] [--seed S] [--json FILE] [--keep]`,
      );
  }
  if (args.healthy + args.faulty === 0) throw new Error('nothing to run: --healthy and --faulty are both 0');
  if (args.healthy + args.faulty > 9999 - FIRST_TRIAL_WMF) throw new Error('too many trials for wmf version numbers');
  return args;
}

/** Healthy and faulty trials in a seeded order, so slow drifts of the machine fall on both alike. */
function planTrials(args: Args, hosts: string[]): PlannedTrial[] {
  const rng = new Prng(args.seed);
  const kinds: TrialKind[] = [
    ...Array<TrialKind>(args.healthy).fill('healthy'),
    ...Array.from({ length: args.faulty }, (_, i) => FAULT_KINDS[i % FAULT_KINDS.length]),
  ];
  const order = rng.stream('order');
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = order.int(0, i);
    [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
  }
  const canaries = rng.stream('canaries');
  const [major] = BASE_VERSION.split('-wmf.');
  return kinds.map((kind, index) => ({
    index,
    kind,
    version: `${major}-wmf.${FIRST_TRIAL_WMF + index}`,
    canary: canaries.pick(hosts),
  }));
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`trials: ${(err as Error).message}`);
    process.exit(2);
  }
  const runStarted = Date.now();
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const { WORKFLOWS_PATH } = await import('../../workers/worker');
  const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error };
  const bundle = path.join(os.tmpdir(), `signalbox-trials-bundle-${process.pid}.js`);
  fs.writeFileSync(bundle, (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quiet })).code);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-trials-'));
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.log(
      '\ntrials: interrupted; the running trial finishes and the run reports what it has (Ctrl-C again to quit at once)',
    );
  });

  let world: World | undefined;
  const records: TrialRecord[] = [];
  let fatal: string | undefined;
  try {
    world = await startWorld({
      home,
      hosts: HOSTS,
      workflowBundle: bundle,
      taskQueue: `trials-${args.seed}`,
      seed: args.seed,
      configure: (raw) => {
        raw.fleet.sandbox = { ...raw.fleet.sandbox, hosts: HOSTS, trafficPerSecond: TRAFFIC_PER_SECOND };
        raw.services[CONFIG_SERVICE].analysis = { ...ANALYSIS };
      },
      // The harness creates the fleet at its own rate; the traffic the app servers see comes from fleet.json.
      beforeServe: async ({ home: worldHome, fleet }) => {
        fleet.trafficPerSecond = TRAFFIC_PER_SECOND;
        fs.writeFileSync(fleetFile(worldHome), `${JSON.stringify(fleet, null, 2)}\n`);
      },
    });
    world.workers.start();
    const hostNames = world.fleet.hosts.map((h) => h.name);
    const noisy = noisyHosts(hostNames);
    const trials = planTrials(args, hostNames);

    // The base release, staged again from its content: the same id the fleet was bootstrapped with.
    const baseVersions = Object.fromEntries(STATIONS.map((s) => [s, BASE_VERSION])) as Record<Station, string>;
    const base = (
      await world.activities.landWikiversions({
        versions: baseVersions,
        subject: `trials: every group on ${BASE_VERSION}`,
        changeId: 'trials-base',
        by: BY,
      })
    ).release;
    const onHosts = new Set(world.fleet.hosts.map(configLink));
    if (onHosts.size !== 1 || !onHosts.has(base.id))
      throw new Error(`the fleet is not on one base release ${base.id}: ${[...onHosts].join(', ')}`);

    console.log(
      `trials: ${args.healthy} healthy, ${args.faulty} faulty, seed ${args.seed}; ${HOSTS} hosts (noisy: ${[...noisy].join(', ')}), ${TRAFFIC_PER_SECOND} requests/s; folder ${home}`,
    );
    console.log(
      `sequential: ${JSON.stringify({ method: ANALYSIS.method, intervalMs: ANALYSIS.intervalMs, measurements: ANALYSIS.measurements, minRequests: ANALYSIS.minRequests, latency: ANALYSIS.latency })} over the defaults`,
    );
    console.log(
      `fixed (replayed): maxErrorRate ${ANALYSIS.maxErrorRate}, maxRatioToBaseline ${ANALYSIS.maxRatioToBaseline}, minRequests ${FIXED_MIN_REQUESTS_PER_INTERVAL} per interval, failureLimit ${ANALYSIS.failureLimit}`,
    );
    console.log(
      'faults: error+2pt (+2% errors), latency (+300 ms), crash-loop, ramp (to 10% over 2 minutes: the canary window is a minute, so the ramp is 2 minutes, not 30), one-wiki (10% on enwiki)',
    );
    console.log(
      'verdicts: fail@N = failed at sample N (N x 3 s after the first reading); undecided = the fixed judge had not decided when the sequential judge rolled back',
    );
    console.log('');
    for (const trial of trials) {
      if (interrupted) break;
      try {
        const record = await runTrial(world, base, trial, noisy, args.seed);
        records.push(record);
        console.log(trialLine(record, trials.length));
        for (const note of record.notes.filter((n) => !n.startsWith('restored'))) console.log(`      note: ${note}`);
        if (record.sequential.verdict !== 'pass' || record.fixed.verdict !== 'pass') {
          console.log(`      sequential: ${record.sequential.summary}`);
          if (record.fixed.verdict !== 'pass') console.log(`      fixed: ${record.fixed.summary}`);
        }
      } catch (err) {
        // The fleet could not be put back: later trials would not start alike.
        const record = (err as { record?: TrialRecord }).record;
        if (record) {
          records.push(record);
          console.log(trialLine(record, trials.length));
        }
        fatal = (err as Error).message;
        break;
      }
    }
  } catch (err) {
    fatal = (err as Error).stack ?? String(err);
  } finally {
    await world?.stop();
    fs.rmSync(bundle, { force: true });
  }

  console.log('');
  if (records.length) for (const line of summary(records)) console.log(line);
  const seconds = (Date.now() - runStarted) / 1000;
  const trialSeconds = records.map((r) => r.seconds);
  console.log(
    `${records.length} trials in ${(seconds / 60).toFixed(1)} minutes; per trial median ${median(trialSeconds).toFixed(1)} s, max ${Math.max(0, ...trialSeconds).toFixed(1)} s`,
  );
  if (args.json) {
    fs.writeFileSync(
      args.json,
      `${JSON.stringify({ seed: args.seed, hosts: HOSTS, trafficPerSecond: TRAFFIC_PER_SECOND, analysis: ANALYSIS, fixedMinRequestsPerInterval: FIXED_MIN_REQUESTS_PER_INTERVAL, trials: records }, null, 2)}\n`,
    );
    console.log(`records written to ${args.json}`);
  }
  if (args.keep || fatal) console.log(`folder kept: ${home} (worker log: ${path.join(home, 'worker.log')})`);
  else fs.rmSync(home, { recursive: true, force: true });
  if (fatal) {
    console.error(`trials: stopped: ${fatal}`);
    process.exit(1);
  }
  process.exit(0);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
