// Validation of every name that reaches a host, a path or a workflow id. Deterministic and dependency-free so
// the CLI, the workflows and the activities all apply the same rule before touching anything.

export const STATIONS = ['testwikis', 'group0', 'group1', 'group2'] as const;
export type Station = (typeof STATIONS)[number];

// MediaWiki train branches: 1.41.0-wmf.26
const VERSION_PATTERN = /^\d{1,3}\.\d{1,3}\.\d{1,3}-wmf\.\d{1,4}$/;
// A release id is a name plus a content hash: 1.41.0-wmf.26-3fa9c2e1b4d0, config-0a1b2c3d4e5f
const RELEASE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,80}-[0-9a-f]{12}$/;
const HOST_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;
const SERVICE_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;

export class InvalidNameError extends Error {
  constructor(kind: string, value: unknown, rule: string) {
    super(`invalid ${kind} ${JSON.stringify(value)}: ${rule}`);
    this.name = 'InvalidNameError';
  }
}

export function checkVersion(version: unknown): string {
  if (typeof version !== 'string' || !VERSION_PATTERN.test(version)) {
    throw new InvalidNameError('version', version, 'expected a MediaWiki train version such as 1.41.0-wmf.26');
  }
  return version;
}

export function isVersion(version: unknown): version is string {
  return typeof version === 'string' && VERSION_PATTERN.test(version);
}

/** Orders train versions numerically: 1.41.0-wmf.9 before 1.41.0-wmf.26 before 1.42.0-wmf.1. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string) => v.split(/[.-]wmf\.|\./).map(Number);
  const [pa, pb] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++)
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

export function checkReleaseId(id: unknown): string {
  if (typeof id !== 'string' || !RELEASE_ID_PATTERN.test(id)) {
    throw new InvalidNameError(
      'release',
      id,
      'expected <name>-<12 hex digits of content hash>, such as 1.41.0-wmf.26-3fa9c2e1b4d0',
    );
  }
  return id;
}

export function checkHostName(name: unknown): string {
  if (typeof name !== 'string' || !HOST_NAME_PATTERN.test(name)) {
    throw new InvalidNameError('host', name, 'expected letters, digits, dots and dashes');
  }
  return name;
}

export function checkServiceName(name: unknown): string {
  if (typeof name !== 'string' || !SERVICE_PATTERN.test(name)) {
    throw new InvalidNameError('service', name, 'expected lower-case letters, digits and dashes');
  }
  return name;
}

export function checkStation(station: unknown): Station {
  if (typeof station !== 'string' || !(STATIONS as readonly string[]).includes(station)) {
    throw new InvalidNameError('station', station, `expected one of ${STATIONS.join(', ')}`);
  }
  return station as Station;
}

export function releaseIdFor(name: string, contentHash: string): string {
  return checkReleaseId(`${name}-${contentHash.slice(0, 12)}`);
}

export function trainWorkflowId(version: string): string {
  return `train-${checkVersion(version)}`;
}

/** "10%" of 40 hosts is 4; "3" is 3 hosts. Never rounds a positive share down to zero hosts. */
export function parseAmount(spec: string | number, total: number, what: string): number {
  const expected = 'expected a whole count such as 5, or a percentage from 0% to 100% such as 10%';
  const text = String(spec).trim();
  if (text === '') throw new InvalidNameError(what, spec, `it is empty; ${expected}`);
  if (text.startsWith('-')) throw new InvalidNameError(what, spec, `an amount cannot be negative; ${expected}`);
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent) {
    const share = Number(percent[1]);
    if (share > 100) throw new InvalidNameError(what, spec, 'a percentage must be between 0% and 100%');
    return share === 0 ? 0 : Math.max(1, Math.ceil((share / 100) * total));
  }
  if (/^\d+$/.test(text)) return Number(text);
  throw new InvalidNameError(what, spec, expected);
}

/** The version after the one group2 runs: 1.41.0-wmf.26 -> 1.41.0-wmf.27. */
export function nextVersion(current: string): string {
  const match = /^(.*-wmf\.)(\d+)$/.exec(checkVersion(current));
  return `${match![1]}${Number(match![2]) + 1}`;
}
