// Loading signalbox.yml: parse, check against the schema, fill in defaults. Errors name the file, the line, the
// path inside the file and the fix, and nothing else runs until the file is right.
import fs from 'node:fs';
import path from 'node:path';
import type { GerritSpec } from '../activities/gerrit';
import Ajv, { type ErrorObject } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { configSchema } from './schema';
import { DEFAULT_STRATEGY, type Strategy } from '../workflows/plan';
import { TASK_QUEUE } from '../workflows/definitions';
import { STATIONS, type Station } from '../workflows/names';
import { groupErrorRates } from '../sandbox/traffic';
import { checkWindows, DEFAULT_WINDOWS, type DeployWindows } from '../workflows/windows';
import type { AnalysisSpec as JudgeSpec } from '../workflows/analysis/model';

export const REPO_ROOT = path.resolve(__dirname, '..');
export const DEFAULT_CONFIG_FILE = path.join(REPO_ROOT, 'signalbox.yml');

export interface CheckSpec {
  name?: string;
  timeoutMs?: number;
  attempts?: number;
  intervalMs?: number;
  groups?: string[];
  tcp?: { port: number | string };
  http?: { url: string; hostHeader?: string; status?: number; body?: string };
  command?: string[];
  logScan?: { file: string; pattern: string; ignore?: string[] };
}

export interface AnalysisSpec {
  source: 'prometheus' | 'scrape';
  prometheusUrl?: string;
  intervalMs: number;
  measurements: number;
  failureLimit: number;
  maxErrorRate: number;
  maxRatioToBaseline: number;
  minRequests: number;
  /** The whole judging, as the analysis run takes it (workflows/analysis/model.ts). */
  judge: Partial<JudgeSpec>;
}

/**
 * The analysis run's settings from the file's flat keys: the judging block, the fixed method's thresholds and the
 * new-signature count, which the canary analysis and the watch spell differently.
 */
export function judgeSpecOf(
  judging: any = {},
  fixed: JudgeSpec['fixed'],
  failureLimit: number,
  newErrorMin: number,
): Partial<JudgeSpec> {
  const spec: Partial<JudgeSpec> = {
    fixed,
    minRequests: fixed.minRequests,
    failureLimit,
    newSignatures: { minCount: newErrorMin },
  };
  if (judging.method) spec.judge = judging.method;
  if (judging.alpha !== undefined) spec.alpha = judging.alpha;
  if (judging.minEffect !== undefined) spec.minEffect = { points: judging.minEffect };
  if (judging.ceiling !== undefined) spec.maxErrorRate = judging.ceiling;
  if (judging.inconclusiveLimit !== undefined) spec.inconclusiveLimit = judging.inconclusiveLimit;
  if (judging.consecutiveErrorLimit !== undefined) spec.consecutiveErrorLimit = judging.consecutiveErrorLimit;
  if (judging.latency) spec.latency = judging.latency;
  if (judging.trafficFloor)
    spec.trafficFloor = {
      minShareOfBaseline: judging.trafficFloor.share,
      intervals: judging.trafficFloor.intervals ?? 3,
    };
  return spec;
}

export interface ServiceSpec {
  link: string;
  restart?: string[];
  /** Run on the deploy server in the staged tree, before hashing: what runs on hosts is what was built. */
  build?: string[];
  keep: number;
  checks: CheckSpec[];
  analysis?: AnalysisSpec;
}

export interface HostSpec {
  name: string;
  address: string;
  port?: number;
  root: string;
  groups: string[];
  transport: 'local' | 'ssh';
  sshPort?: number;
  pool?: string;
}

/** Open mode (anyone, unverified), or signed actions checked against allowed signers and roles. */
export type AuthConfig =
  | { mode: 'none' }
  | {
      mode: 'signed';
      allowedSigners: string;
      roles: Record<'deployers' | 'approvers' | 'admins', string[]>;
      maxAgeSeconds: number;
    };

export interface SignalboxConfig {
  file: string;
  home: string;
  auth: AuthConfig;
  temporal: { address: string; namespace: string; taskQueue: string; uiPort: number };
  fleet: {
    sandbox?: {
      hosts: number;
      trafficPerSecond: number;
      /** The background share of requests that fail on every version, per wiki group. */
      errorRate: Record<Station, number>;
      /** Now and then the background error rate rises 5x fleet-wide for a few seconds. */
      bursts: boolean;
    };
    hosts?: HostSpec[];
    rsyncSource?: string;
    ssh: {
      user?: string;
      privateKey?: string;
      knownHosts?: string;
      connectTimeoutMs: number;
      commandTimeoutMs: number;
    };
    loadBalancer?: string;
  };
  services: Record<string, ServiceSpec>;
  rollout: Strategy & { canaryGroup?: string };
  train: {
    autoApprove: boolean;
    approvers: string[];
    verifyEveryMs: number;
    verifyTimeoutMs: number;
    watchMs: number;
    watchIntervalMs: number;
    watchMaxErrorRate: number;
    watchMaxRatio: number;
    watchMinRequests: number;
    watchNewErrorMin: number;
    /** The watch's judging, as the analysis run takes it. */
    watchJudge: Partial<JudgeSpec>;
    codeService: string;
    configService: string;
    gate: 'approval' | 'window';
    windows: DeployWindows;
    securityPatches: string;
    blockers?: { pollMs: number; github: { repository: string; apiUrl: string; tokenEnv: string } };
  };
  notify: NotifyConfig;
  roadmap?: { api: string; page: string; user?: string; passwordEnv?: string };
  /** Where the code and config repositories live; absent means the local git forge of the state folder. */
  forge?: { github?: GitHubSpec; gerrit?: GerritSpec };
}

export type { GerritSpec };

export interface GitHubSpec {
  /** The organisation or user that owns every repository the train uses. */
  owner: string;
  apiUrl: string;
  tokenEnv: string;
}

export interface NotifyConfig {
  salFile: string;
  irc?: { server: string; channel: string; nick: string };
  slack?: { webhookUrl: string };
  email?: { smtp: string; from: string; to: string[] };
  /** Embargoed news only: never IRC's public channel, Slack or the public lists. */
  private?: { email?: string[]; ircChannel?: string };
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file} is not valid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Where signalbox keeps its state: the Temporal database, tools, the sandbox fleet. */
export function signalboxHome(): string {
  return path.resolve(process.env.SIGNALBOX_HOME ?? path.join(REPO_ROOT, '.signalbox'));
}

// verbose: errors carry the value they refuse, so a message can show it.
const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
const validate = ajv.compile(configSchema);

function schemaAt(schemaPath: string): { description?: string } {
  let node: any = configSchema;
  for (const part of schemaPath.replace(/^#\//, '').split('/').slice(0, -1)) {
    if (node === undefined) break;
    node = node[decodeURIComponent(part)];
  }
  return node ?? {};
}

function describe(error: ErrorObject, lineOf: (p: (string | number)[]) => number | undefined): string {
  const parts = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
  const where = parts.length ? parts.join('.') : '(top level)';
  const line = lineOf(parts);
  const fix = schemaAt(error.schemaPath).description;
  let what = error.message ?? 'is not valid';
  if (error.keyword === 'additionalProperties')
    what = `has an unknown key "${(error.params as any).additionalProperty}"; remove it or check its spelling`;
  if (error.keyword === 'enum') what = `must be one of ${(error.params as any).allowedValues.join(', ')}`;
  if (error.keyword === 'anyOf') what = `${JSON.stringify(error.data)} is none of the forms allowed`;
  if (error.keyword === 'required') {
    const missing = (error.params as any).missingProperty;
    const wanted = schemaAt(
      `${error.schemaPath.replace(/\/required$/, '')}/properties/${missing}/description`,
    ).description;
    return `${line ? `line ${line}, ` : ''}${where}: "${missing}" is missing${wanted ? ` (expected ${wanted})` : ''}`;
  }
  // The regex says nothing to a reader when the description says what fits; the value refused says more.
  if (error.keyword === 'pattern' && fix) what = `${JSON.stringify(error.data)} is not allowed`;
  if (['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'].includes(error.keyword))
    what = `is ${JSON.stringify(error.data)}, ${what}`;
  return `${line ? `line ${line}, ` : ''}${where}: ${what}${fix && error.keyword !== 'additionalProperties' ? ` (expected ${fix})` : ''}`;
}

export function loadConfig(
  file = process.env.SIGNALBOX_CONFIG ?? DEFAULT_CONFIG_FILE,
  home = signalboxHome(),
): SignalboxConfig {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError(absolute, [
      `cannot be read (${(err as Error).message}); pass --config with the path of a signalbox.yml`,
    ]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  if (doc.errors.length) {
    throw new ConfigError(
      absolute,
      doc.errors.map(
        (e) => `line ${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}; fix the YAML syntax there`,
      ),
    );
  }
  const raw = doc.toJS() ?? {};
  const lineOf = (parts: (string | number)[]) => {
    for (let n = parts.length; n >= 0; n--) {
      const node = doc.getIn(parts.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) return lineCounter.linePos(node.range[0]).line;
    }
    return undefined;
  };
  if (!validate(raw)) {
    const seen = new Set<string>();
    const errors = validate.errors ?? [];
    // Each anyOf branch reports its own type mismatch ("must be null"): noise. A value of the type one branch takes
    // is explained by that branch's error; any other value by the anyOf error and its description.
    const explainedAt = (e: ErrorObject) =>
      errors.some((o) => o !== e && o.instancePath === e.instancePath && !['type', 'anyOf'].includes(o.keyword));
    const problems = errors
      .filter(
        (e) =>
          e.keyword !== 'oneOf' ||
          !errors.some((o) => o !== e && o.instancePath.startsWith(e.instancePath) && o.keyword !== 'required'),
      )
      // A value that is an object was not meant to be the constant of another form (auth: none).
      .filter((e) => !(e.keyword === 'const' && typeof e.data === 'object' && e.data !== null))
      .filter(
        (e) =>
          !(e.keyword === 'type' && e.schemaPath.includes('/anyOf/')) && !(e.keyword === 'anyOf' && explainedAt(e)),
      )
      .map((e) => describe(e, lineOf))
      .filter((p) => (seen.has(p) ? false : (seen.add(p), true)));
    throw new ConfigError(absolute, problems);
  }
  return withDefaults(raw, absolute, home);
}

/** Roles with @group names expanded; a group that is missing or empty is an error, as an empty role is. */
function authFrom(raw: any, file: string, home: string): AuthConfig {
  if (raw === 'none') return { mode: 'none' };
  const groups: Record<string, string[]> = raw.groups ?? {};
  const expand = (role: string, names: string[]) =>
    names.flatMap((name) => {
      if (!name.startsWith('@')) return [name];
      const members = groups[name.slice(1)];
      if (!members?.length)
        throw new ConfigError(file, [
          `auth.roles.${role}: ${name} is not a group under auth.groups (groups: ${Object.keys(groups).join(', ') || 'none'})`,
        ]);
      return members.filter((m) => !m.startsWith('@'));
    });
  const roles = Object.fromEntries(
    (['deployers', 'approvers', 'admins'] as const).map((role) => [role, [...new Set(expand(role, raw.roles[role]))]]),
  ) as Extract<AuthConfig, { mode: 'signed' }>['roles'];
  const allowedSigners = path.resolve(
    path.dirname(file),
    raw.allowedSigners.replace(/^~(?=\/)/, process.env.HOME ?? '~').replace('{{home}}', home),
  );
  return { mode: 'signed', allowedSigners, roles, maxAgeSeconds: raw.maxAgeSeconds ?? 300 };
}

function analysisOf(raw: any): AnalysisSpec {
  const fixed = {
    maxErrorRate: raw.maxErrorRate ?? 0.01,
    maxRatioToBaseline: raw.maxRatioToBaseline ?? 10,
    minRequests: raw.minRequests ?? 20,
  };
  const failureLimit = raw.failureLimit ?? 0;
  return {
    source: raw.source ?? 'scrape',
    prometheusUrl: raw.prometheusUrl,
    intervalMs: raw.intervalMs ?? 5000,
    measurements: raw.measurements ?? 3,
    failureLimit,
    ...fixed,
    judge: judgeSpecOf(raw, fixed, failureLimit, raw.newErrorMin ?? 5),
  };
}

function withDefaults(raw: any, file: string, home: string): SignalboxConfig {
  const services: Record<string, ServiceSpec> = {};
  for (const [name, spec] of Object.entries<any>(raw.services)) {
    services[name] = {
      link: spec.link,
      restart: spec.restart,
      build: spec.build,
      keep: spec.keep ?? 5,
      checks: spec.checks ?? [],
      analysis: spec.analysis && analysisOf(spec.analysis),
    };
  }
  const train = raw.train ?? {};
  const fleet = raw.fleet ?? { sandbox: {} };
  if (!fleet.sandbox && !fleet.hosts) {
    throw new ConfigError(file, [
      'fleet: needs either sandbox or hosts (add "sandbox: {}" for the fleet on this machine)',
    ]);
  }
  const config: SignalboxConfig = {
    auth: { mode: 'none' },
    file,
    home,
    temporal: {
      address: process.env.TEMPORAL_ADDRESS ?? raw.temporal?.address ?? '127.0.0.1:7233',
      namespace: process.env.TEMPORAL_NAMESPACE ?? raw.temporal?.namespace ?? 'default',
      taskQueue: process.env.SIGNALBOX_TASK_QUEUE ?? raw.temporal?.taskQueue ?? TASK_QUEUE,
      uiPort: raw.temporal?.uiPort ?? 8233,
    },
    fleet: {
      sandbox: fleet.sandbox && {
        hosts: fleet.sandbox.hosts ?? 12,
        trafficPerSecond: fleet.sandbox.trafficPerSecond ?? 40,
        errorRate: groupErrorRates(fleet.sandbox.errorRate),
        bursts: fleet.sandbox.bursts ?? true,
      },
      hosts: fleet.hosts?.map((h: any) => ({ transport: 'ssh', ...h })),
      rsyncSource: fleet.rsyncSource,
      ssh: { connectTimeoutMs: 10_000, commandTimeoutMs: 120_000, ...(fleet.ssh ?? {}) },
      loadBalancer: fleet.loadBalancer,
    },
    services,
    rollout: { ...DEFAULT_STRATEGY, ...(raw.rollout ?? {}) },
    train: {
      autoApprove: train.autoApprove ?? false,
      approvers: train.approvers ?? [],
      verifyEveryMs: train.verifyEveryMs ?? 1000,
      verifyTimeoutMs: train.verifyTimeoutMs ?? 10_000,
      watchMs: train.watchMs ?? 3_600_000,
      watchIntervalMs: train.watchIntervalMs ?? 60_000,
      watchMaxErrorRate: train.watchMaxErrorRate ?? 0.01,
      watchMaxRatio: train.watchMaxRatio ?? 5,
      watchMinRequests: train.watchMinRequests ?? 50,
      watchNewErrorMin: train.watchNewErrorMin ?? 5,
      watchJudge: judgeSpecOf(
        train.watchJudging,
        {
          maxErrorRate: train.watchMaxErrorRate ?? 0.01,
          maxRatioToBaseline: train.watchMaxRatio ?? 5,
          minRequests: train.watchMinRequests ?? 50,
        },
        0,
        train.watchNewErrorMin ?? 5,
      ),
      codeService: train.codeService ?? 'mediawiki',
      configService: train.configService ?? 'mediawiki-config',
      gate: train.gate ?? 'approval',
      windows: {
        timezone: train.windows?.timezone ?? 'UTC',
        stations: Object.fromEntries(
          STATIONS.map((s) => [s, { ...DEFAULT_WINDOWS[s], ...(train.windows?.[s] ?? {}) }]),
        ) as DeployWindows['stations'],
      },
      securityPatches: path.resolve(home, train.securityPatches ?? 'patches'),
      blockers: train.blockers && {
        pollMs: train.blockers.pollMs ?? 300_000,
        github: { apiUrl: 'https://api.github.com', tokenEnv: 'GITHUB_TOKEN', ...train.blockers.github },
      },
    },
    notify: {
      salFile: path.resolve(home, raw.notify?.sal ?? 'sal.log'),
      irc: raw.notify?.irc && { nick: 'signalbox', ...raw.notify.irc },
      slack: raw.notify?.slack,
      email: raw.notify?.email,
      private: raw.notify?.private,
    },
    roadmap: raw.roadmap,
    forge: raw.forge && {
      github: raw.forge.github && { apiUrl: 'https://api.github.com', tokenEnv: 'GITHUB_TOKEN', ...raw.forge.github },
      gerrit: raw.forge.gerrit && {
        user: 'signalbox',
        passwordEnv: 'GERRIT_HTTP_PASSWORD',
        mergeTimeoutMs: 600_000,
        ...raw.forge.gerrit,
      },
    },
  };
  config.auth = authFrom(raw.auth, file, home);
  try {
    checkWindows(config.train.windows);
  } catch (err) {
    throw new ConfigError(file, [`train.windows: ${(err as Error).message}`]);
  }
  for (const key of ['codeService', 'configService'] as const) {
    if (!services[config.train[key]]) {
      throw new ConfigError(file, [
        `train.${key}: names service "${config.train[key]}", which is not under services; add it or fix the name`,
      ]);
    }
  }
  return config;
}
