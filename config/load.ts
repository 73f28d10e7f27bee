// Loading signalbox.yml: parse, check against the schema, fill in defaults. Errors name the file, the line, the
// path inside the file and the fix, and nothing else runs until the file is right.
import fs from 'node:fs';
import path from 'node:path';
import Ajv, { type ErrorObject } from 'ajv';
import { Value } from '@sinclair/typebox/value';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import {
  configSchema,
  service,
  signedAuth,
  type AnalysisFile,
  type CheckSpec,
  type ConfigFile,
  type FilledConfig,
  type GerritSpec,
  type GitHubSpec,
  type HostSpec,
  type Judging,
  type ServiceFile,
  type SignedAuthFile,
} from './schema';
import type { Station } from '../workflows/names';
import { groupErrorRates } from '../sandbox/traffic';
import { checkWeekly, checkWindows, type DeployWindows } from '../workflows/windows';
import type { AnalysisSpec as JudgeSpec } from '../workflows/analysis/model';

export const REPO_ROOT = path.resolve(__dirname, '..');
export const DEFAULT_CONFIG_FILE = path.join(REPO_ROOT, 'signalbox.yml');

// The file's shape, its types and its constant defaults are in config/schema.ts. The types below are what loading
// makes of the file where that differs: paths resolved, auth groups expanded, the judging put together.
export type { CheckSpec, GerritSpec, GitHubSpec, HostSpec };

/** A service's analysis: the file's keys, with the judging ones gathered into `judge`. */
export type AnalysisSpec = Omit<AnalysisFile, keyof Judging | 'newErrorMin'> & {
  /** The whole judging, as the analysis run takes it (workflows/analysis/model.ts). */
  judge: Partial<JudgeSpec>;
};

/**
 * The analysis run's settings from the file's flat keys: the judging block, the fixed method's thresholds and the
 * new-signature count, which the canary analysis and the watch spell differently.
 */
export function judgeSpecOf(
  judging: Judging = {},
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
  if (judging.power !== undefined) spec.power = judging.power;
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

export type ServiceSpec = Omit<ServiceFile, 'analysis'> & { analysis?: AnalysisSpec };

/** Open mode (anyone, unverified), or signed actions checked against allowed signers and roles (@groups expanded). */
export type AuthConfig = { mode: 'none' } | ({ mode: 'signed' } & Omit<SignedAuthFile, 'groups'>);

/** Where news goes; `private` is for embargoed news only: never IRC's public channel, Slack or the public lists. */
export type NotifyConfig = Omit<FilledConfig['notify'], 'sal'> & { salFile: string };

type FleetFile = NonNullable<FilledConfig['fleet']>;

export type SignalboxConfig = Omit<FilledConfig, 'auth' | 'fleet' | 'services' | 'train' | 'notify'> & {
  file: string;
  home: string;
  auth: AuthConfig;
  fleet: Omit<FleetFile, 'sandbox'> & {
    sandbox?: Omit<NonNullable<FleetFile['sandbox']>, 'errorRate'> & {
      /** The background share of requests that fail on every version, per wiki group. */
      errorRate: Record<Station, number>;
    };
  };
  services: Record<string, ServiceSpec>;
  train: Omit<FilledConfig['train'], 'watchJudging' | 'windows'> & {
    /** The watch's judging, as the analysis run takes it. */
    watchJudge: Partial<JudgeSpec>;
    windows: DeployWindows;
  };
  notify: NotifyConfig;
};

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
const validate = ajv.compile<ConfigFile>(configSchema);

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

/**
 * Keys signalbox no longer reads, each with what took its place. A file that still sets one is refused rather than
 * quietly run under other rules than its author meant.
 */
const RETIRED_KEYS: { path: string[]; fix: (value: unknown, raw: Record<string, unknown>) => string }[] = [
  {
    // A name check beside the signed roles: under auth: none the name was whatever SIGNALBOX_USER said.
    path: ['train', 'approvers'],
    fix: (value, raw) => {
      const people = Array.isArray(value) ? value.filter((v) => typeof v === 'string') : [];
      const fix = people.length
        ? `move these people (${people.join(', ')}) to auth.roles.approvers and delete train.approvers`
        : 'delete train.approvers (it is empty)';
      const open =
        raw.auth === 'none'
          ? '; under auth: none anyone may approve, so to limit it set auth with allowedSigners and roles'
          : '';
      return `is no longer read: who may approve a station is auth.roles.approvers, checked on the person's verified signature; ${fix}${open}`;
    },
  },
];

function retiredKeys(raw: unknown, lineOf: (p: string[]) => number | undefined): string[] {
  return RETIRED_KEYS.flatMap(({ path: keys, fix }) => {
    let node: unknown = raw;
    for (const key of keys) {
      if (!node || typeof node !== 'object' || !Object.hasOwn(node, key)) return [];
      node = (node as Record<string, unknown>)[key];
    }
    const line = lineOf(keys);
    return [`${line ? `line ${line}, ` : ''}${keys.join('.')}: ${fix(node, raw as Record<string, unknown>)}`];
  });
}

/** Whether an error is the schema's "unknown key" for a retired key, which retiredKeys explains better. */
function isRetiredKey(error: ErrorObject): boolean {
  const key = (error.params as { additionalProperty?: string }).additionalProperty;
  return (
    error.keyword === 'additionalProperties' &&
    RETIRED_KEYS.some(
      ({ path: keys }) => error.instancePath === `/${keys.slice(0, -1).join('/')}` && key === keys.at(-1),
    )
  );
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
  // The line of a key itself: a block value starts on the line after it.
  const keyLineOf = (parts: string[]) => {
    const parent = doc.getIn(parts.slice(0, -1), true);
    const pair = isMap(parent) ? parent.items.find((p) => isScalar(p.key) && p.key.value === parts.at(-1)) : undefined;
    const range = isScalar(pair?.key) ? pair.key.range : undefined;
    return range ? lineCounter.linePos(range[0]).line : lineOf(parts);
  };
  const retired = retiredKeys(raw, keyLineOf);
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
      .filter((e) => !isRetiredKey(e))
      .map((e) => describe(e, lineOf))
      .filter((p) => (seen.has(p) ? false : (seen.add(p), true)));
    throw new ConfigError(absolute, [...retired, ...problems]);
  }
  if (retired.length) throw new ConfigError(absolute, retired);
  return withDefaults(raw, absolute, home);
}

/** Roles with @group names expanded; a group that is missing or empty is an error, as an empty role is. */
function authFrom(auth: ConfigFile['auth'], file: string, home: string): AuthConfig {
  if (auth === 'none') return { mode: 'none' };
  const { allowedSigners, roles, groups = {}, maxAgeSeconds } = Value.Default(signedAuth, auth) as SignedAuthFile;
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
  return {
    mode: 'signed',
    allowedSigners: path.resolve(
      path.dirname(file),
      allowedSigners.replace(/^~(?=\/)/, process.env.HOME ?? '~').replace('{{home}}', home),
    ),
    roles: {
      deployers: [...new Set(expand('deployers', roles.deployers))],
      approvers: [...new Set(expand('approvers', roles.approvers))],
      admins: [...new Set(expand('admins', roles.admins))],
    },
    maxAgeSeconds,
  };
}

/** Value.Default leaves the values of a record alone, so each service is filled here. */
function serviceOf(raw: ConfigFile['services'][string]): ServiceSpec {
  const spec = Value.Default(service, raw) as ServiceFile;
  return { ...spec, analysis: spec.analysis && analysisOf(spec.analysis) };
}

function analysisOf(analysis: AnalysisFile): AnalysisSpec {
  const { source, prometheusUrl, intervalMs, measurements, failureLimit } = analysis;
  const { maxErrorRate, maxRatioToBaseline, minRequests } = analysis;
  const fixed = { maxErrorRate, maxRatioToBaseline, minRequests };
  return {
    source,
    prometheusUrl,
    intervalMs,
    measurements,
    failureLimit,
    ...fixed,
    judge: judgeSpecOf(analysis, fixed, failureLimit, analysis.newErrorMin),
  };
}

/** The file's defaults filled in (the constant ones from the schema), paths resolved, and the cross-checks. */
function withDefaults(raw: ConfigFile, file: string, home: string): SignalboxConfig {
  // No fleet at all is the sandbox on this machine; a fleet written out names one or the other.
  raw.fleet ??= { sandbox: {} };
  if (!raw.fleet.sandbox && !raw.fleet.hosts) {
    throw new ConfigError(file, [
      'fleet: needs either sandbox or hosts (add "sandbox: {}" for the fleet on this machine)',
    ]);
  }
  const filled = Value.Default(configSchema, raw) as FilledConfig & { fleet: FleetFile }; // fleet: written above
  const { auth, temporal, fleet, services, train, notify, ...rest } = filled;
  const { watchJudging, windows, ...trainRest } = train;
  const { timezone, ...stations } = windows;
  const { sal, ...channels } = notify;
  const config: SignalboxConfig = {
    auth: authFrom(auth, file, home),
    file,
    home,
    temporal: {
      address: process.env.TEMPORAL_ADDRESS ?? temporal.address,
      namespace: process.env.TEMPORAL_NAMESPACE ?? temporal.namespace,
      taskQueue: process.env.SIGNALBOX_TASK_QUEUE ?? temporal.taskQueue,
      uiPort: temporal.uiPort,
    },
    fleet: {
      ...fleet,
      sandbox: fleet.sandbox && { ...fleet.sandbox, errorRate: groupErrorRates(fleet.sandbox.errorRate) },
    },
    services: Object.fromEntries(Object.entries(services).map(([name, spec]) => [name, serviceOf(spec)])),
    ...rest,
    train: {
      ...trainRest,
      watchJudge: judgeSpecOf(
        watchJudging,
        {
          maxErrorRate: train.watchMaxErrorRate,
          maxRatioToBaseline: train.watchMaxRatio,
          minRequests: train.watchMinRequests,
        },
        0,
        train.watchNewErrorMin,
      ),
      // Each station is filled from DEFAULT_WINDOWS, so it has its from and to.
      windows: { timezone, stations: stations as DeployWindows['stations'] },
      securityPatches: path.resolve(home, train.securityPatches),
    },
    notify: { salFile: path.resolve(home, sal), ...channels },
  };
  try {
    checkWindows(config.train.windows);
  } catch (err) {
    throw new ConfigError(file, [`train.windows: ${(err as Error).message}`]);
  }
  try {
    if (config.backport.windows) checkWeekly(config.backport.windows);
  } catch (err) {
    throw new ConfigError(file, [`backport.windows: ${(err as Error).message}`]);
  }
  for (const key of ['codeService', 'configService'] as const) {
    if (!config.services[config.train[key]]) {
      throw new ConfigError(file, [
        `train.${key}: names service "${config.train[key]}", which is not under services; add it or fix the name`,
      ]);
    }
  }
  return config;
}
