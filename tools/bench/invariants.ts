// What "never make it worse" means, checked on the real parts after a trial: the load balancer's pools, each host's
// files, what each app server answers, the journal of host steps, and the workflow histories in Temporal.
import fs from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { HostSpec } from '../../config/load';
import { httpGet } from '../../activities/checks';
import { readService } from '../../activities/host-ops';
import { eachWithLimit } from '../../activities/hosts';
import { poolStates } from '../../activities/loadbalancer';
import { LocalTransport } from '../../activities/transport';
import { STATIONS, compareVersions, type Station } from '../../workflows/names';

export type ViolationKind =
  | 'depooled'
  | 'half-done'
  | 'state-disagrees'
  | 'unchecked'
  | 'serves-other-than-link'
  | 'serving-unexpected'
  | 'newer-after-rollback'
  | 'wrong-direction'
  | 'moved-twice'
  | 'interleaved'
  | 'config-split'
  | 'outcome'
  | 'not-at-rest';

export interface Violation {
  kind: ViolationKind;
  host?: string;
  detail: string;
}

export const CONFIG_SERVICE = 'mediawiki-config';
export const CODE_SERVICE = 'mediawiki';

const eventMs = (e: temporal.api.history.v1.IHistoryEvent) =>
  Number(String(e.eventTime?.seconds ?? 0)) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
const versionOfRelease = (id: string) => id.replace(/-[0-9a-f]{12}$/, '');

// ---- releases ----------------------------------------------------------------------------------------------------

/** db -> version a config release puts it on, read from the staged tree that hosts fetch. */
export function configVersions(stagingDir: string, releaseId: string): Record<string, string> {
  const wikiversions: Record<string, string> = JSON.parse(
    fs.readFileSync(path.join(stagingDir, CONFIG_SERVICE, releaseId, 'wikiversions.json'), 'utf8'),
  );
  return Object.fromEntries(Object.entries(wikiversions).map(([db, dir]) => [db, dir.replace(/^php-/, '')]));
}

export function wikiGroups(stagingDir: string, releaseId: string): Record<string, Station> {
  const wikis: Record<string, { group: Station }> = JSON.parse(
    fs.readFileSync(path.join(stagingDir, CONFIG_SERVICE, releaseId, 'wikis.json'), 'utf8'),
  );
  return Object.fromEntries(Object.entries(wikis).map(([db, w]) => [db, w.group]));
}

/** How many wikis a config release puts on `version`: a move that raises it is a move forward. */
export function newness(stagingDir: string, releaseId: string | null, version: string): number {
  if (!releaseId) return 0;
  return Object.values(configVersions(stagingDir, releaseId)).filter((v) => v === version).length;
}

// ---- host links over time ----------------------------------------------------------------------------------------

export interface LinkChange {
  host: string;
  from: string | null;
  to: string | null;
  /** The change happened after the previous look and before this one. */
  notBefore: number;
  seenAt: number;
}

/**
 * Reads every host's config link every few hundred milliseconds, so a host switched forward after a rollback began
 * is seen even when it is switched back before the end. A flip shorter than the interval can be missed; the host
 * journal, once hosts keep one, is the complete record.
 */
export class LinkWatcher {
  readonly changes: LinkChange[] = [];
  private last = new Map<string, string | null>();
  private lastLook = Date.now();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly hosts: HostSpec[],
    private readonly everyMs = 200,
  ) {
    for (const h of hosts) this.last.set(h.name, this.read(h));
  }

  private read(host: HostSpec): string | null {
    try {
      return fs.readlinkSync(path.join(host.root, CONFIG_SERVICE, 'current')).replace(/^revs\//, '');
    } catch {
      return null;
    }
  }

  look(): void {
    const now = Date.now();
    for (const h of this.hosts) {
      const target = this.read(h);
      const before = this.last.get(h.name) ?? null;
      if (target !== before) {
        this.changes.push({ host: h.name, from: before, to: target, notBefore: this.lastLook, seenAt: now });
        this.last.set(h.name, target);
      }
    }
    this.lastLook = now;
  }

  start(): void {
    this.timer = setInterval(() => this.look(), this.everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.look();
  }
}

// ---- workflow histories ----------------------------------------------------------------------------------------

export interface Execution {
  info: WorkflowExecutionInfo;
  input: any;
  events: temporal.api.history.v1.IHistoryEvent[];
}

/** Every workflow the trial started on its task queue, oldest first, with its input and history. */
export async function trialExecutions(client: Client, taskQueue: string): Promise<Execution[]> {
  const infos: WorkflowExecutionInfo[] = [];
  for await (const info of client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) infos.push(info);
  infos.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  return Promise.all(
    infos.map(async (info) => {
      const events = (await client.workflow.getHandle(info.workflowId, info.runId).fetchHistory()).events ?? [];
      const payload = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      return { info, input: payload ? defaultPayloadConverter.fromPayload(payload as any) : undefined, events };
    }),
  );
}

const HOST_WORK = new Set(['promoteHosts', 'rollbackHosts']);

/** [first scheduled, last closed] of each switching activity (promote, roll back) in a history. */
function hostWorkIntervals(events: temporal.api.history.v1.IHistoryEvent[], now: number): [number, number][] {
  const scheduled = new Map<string, number>();
  const intervals: [number, number][] = [];
  for (const e of events) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name && HOST_WORK.has(name)) scheduled.set(String(e.eventId), eventMs(e));
    const closed =
      e.activityTaskCompletedEventAttributes ??
      e.activityTaskFailedEventAttributes ??
      e.activityTaskTimedOutEventAttributes ??
      e.activityTaskCanceledEventAttributes;
    const id =
      closed?.scheduledEventId !== undefined && closed?.scheduledEventId !== null
        ? String(closed.scheduledEventId)
        : undefined;
    if (id && scheduled.has(id)) {
      intervals.push([scheduled.get(id)!, eventMs(e)]);
      scheduled.delete(id);
    }
  }
  for (const start of scheduled.values()) intervals.push([start, now]);
  return intervals;
}

/** Two rollouts of one service switching hosts at the same time: the one-change-at-a-time rule broken. */
export function interleavings(executions: Execution[]): Violation[] {
  const now = Date.now();
  const rollouts = new Map<string, { id: string; service: string; intervals: [number, number][] }>();
  const keyOf = (id: string, runId: string | null | undefined) => `${id}/${runId ?? ''}`;
  for (const x of executions) {
    if (x.info.type === 'rolloutWorkflow')
      rollouts.set(keyOf(x.info.workflowId, x.info.runId), {
        id: x.info.workflowId,
        service: x.input?.service,
        intervals: [],
      });
  }
  for (const x of executions) {
    if (x.info.type !== 'rolloutWorkflow' && x.info.type !== 'rolloutWaveWorkflow') continue;
    const key =
      x.info.type === 'rolloutWorkflow'
        ? keyOf(x.info.workflowId, x.info.runId)
        : x.info.parentExecution
          ? keyOf(x.info.parentExecution.workflowId ?? '', x.info.parentExecution.runId)
          : undefined;
    const rollout = key ? rollouts.get(key) : undefined;
    rollout?.intervals.push(...hostWorkIntervals(x.events, now));
  }
  const list = [...rollouts.values()].filter((r) => r.intervals.length);
  const found: Violation[] = [];
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      const [a, b] = [list[i], list[j]];
      if (a.service !== b.service) continue;
      const overlap = a.intervals.flatMap((x) =>
        b.intervals.filter((y) => x[0] < y[1] && y[0] < x[1]).map((y) => [Math.max(x[0], y[0]), Math.min(x[1], y[1])]),
      );
      if (overlap.length) {
        const [from, to] = overlap[0];
        found.push({
          kind: 'interleaved',
          detail: `${a.id} and ${b.id} switched ${a.service} hosts at the same time (${new Date(from).toISOString().slice(11, 23)}-${new Date(to).toISOString().slice(11, 23)})`,
        });
      }
    }
  }
  return found;
}

export interface StationMove {
  child: string;
  at: number;
  station: Station;
  direction: 'forward' | 'back';
}

/**
 * The station moves a train made: each config child (train-<v>-config-<n>...) deploys a wikiversions
 * release; a station whose version differs from the previous child's is a move, forward when it goes to `version`.
 */
export function trainStationMoves(
  executions: Execution[],
  trainId: string,
  stagingDir: string,
  initialRelease: string,
  version: string,
): StationMove[] {
  const prefix = `${trainId}-config-`;
  const children = executions.filter((x) => x.info.type === 'rolloutWorkflow' && x.info.workflowId.startsWith(prefix));
  const groups = wikiGroups(stagingDir, initialRelease);
  const stationVersions = (release: string) => {
    const versions = configVersions(stagingDir, release);
    return Object.fromEntries(
      STATIONS.map((s) => [s, Object.entries(versions).find(([db]) => groups[db] === s)?.[1]]),
    ) as Record<Station, string>;
  };
  let previous = stationVersions(initialRelease);
  const moves: StationMove[] = [];
  for (const child of children) {
    const now = stationVersions(child.input.release.id);
    for (const station of STATIONS) {
      if (now[station] !== previous[station])
        moves.push({
          child: child.info.workflowId,
          at: child.info.startTime.getTime(),
          station,
          direction: now[station] === version ? 'forward' : 'back',
        });
    }
    previous = now;
  }
  return moves;
}

/** When the first rollback of a rollout began: its first rollbackHosts activity. */
export function rolloutRollbackStart(executions: Execution[], workflowId: string): number | null {
  for (const x of executions.filter((e) => e.info.workflowId === workflowId && e.info.type === 'rolloutWorkflow')) {
    const first = x.events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'rollbackHosts');
    if (first) return eventMs(first);
  }
  return null;
}

// ---- hosts ---------------------------------------------------------------------------------------------------------

export interface JournalEntry {
  runId?: string;
  link?: string;
  release?: string | null;
  replaced?: string | null;
  step?: string;
}

/**
 * The host's journal of the last step for a service (<root>/<service>/journal.json, one JSON line; see
 * activities/host-ops.ts). Read leniently (one entry, or a list whose last entry counts) for hosts written by an
 * older engine.
 */
export function readJournal(root: string, service: string): JournalEntry | null | 'unreadable' {
  const file = path.join(root, service, 'journal.json');
  if (!fs.existsSync(file)) return null;
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    const list = Array.isArray(parsed) ? parsed : Array.isArray(parsed?.entries) ? parsed.entries : [parsed];
    return list[list.length - 1] ?? null;
  } catch {
    return 'unreadable';
  }
}

export interface HostsReport {
  violations: Violation[];
  depooled: string[];
  unchecked: string[];
  /** db -> host -> version the app server answers (null when it did not answer). */
  live: Map<string, Map<string, string | null>>;
  configReleases: Map<string, string | null>;
  /** Whether the engine keeps host journals (its reader returns one, or a host has one); else "checked" is approximated. */
  journal: boolean;
}

/** Reads each host's files and asks its app server every wiki's version. */
export async function inspectHosts(hosts: HostSpec[], loadBalancer: string): Promise<HostsReport> {
  const violations: Violation[] = [];
  const pools = await poolStates(loadBalancer);
  const depooled = hosts.filter((h) => pools[h.name] === false).map((h) => h.name);
  for (const host of depooled)
    violations.push({ kind: 'depooled', host, detail: 'left depooled at the load balancer' });
  const unchecked = new Set<string>();
  const live = new Map<string, Map<string, string | null>>();
  const configReleases = new Map<string, string | null>();
  let journal = false;

  await eachWithLimit(hosts, 4, async (host) => {
    const transport = new LocalTransport(host.name);
    for (const service of [CONFIG_SERVICE, CODE_SERVICE]) {
      const dir = path.join(host.root, service);
      const dotFiles = (d: string) => (fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.startsWith('.')) : []);
      const leftovers = [...dotFiles(dir), ...dotFiles(path.join(dir, 'revs')).map((f) => `revs/${f}`)];
      if (leftovers.length)
        violations.push({ kind: 'half-done', host: host.name, detail: `${service}: ${leftovers.join(', ')}` });
      const onHost = await readService(transport, host.name, host.root, service).catch((err: Error) => err);
      if (onHost instanceof Error) {
        violations.push({ kind: 'state-disagrees', host: host.name, detail: `${service}: ${onHost.message}` });
        unchecked.add(host.name);
        continue;
      }
      const current = onHost.state.current;
      const link = service === CONFIG_SERVICE ? 'current' : current ? `php-${versionOfRelease(current)}` : undefined;
      if (service === CONFIG_SERVICE)
        configReleases.set(host.name, onHost.links.current?.replace(/^revs\//, '') ?? null);
      if (link && onHost.links[link] !== `revs/${current}`) {
        violations.push({
          kind: 'state-disagrees',
          host: host.name,
          detail: `${service}: ${link} -> ${onHost.links[link] ?? '(none)'} but state.json says current ${current}`,
        });
        unchecked.add(host.name);
      }
      // host-ops' own reader when it returns the journal; the file itself otherwise.
      const fromReader = (onHost as { journal?: JournalEntry | null }).journal;
      const entry = fromReader !== undefined ? fromReader : readJournal(host.root, service);
      if (entry !== null || 'journal' in onHost) journal = true;
      const bootstrapped = onHost.state.runId === 'sandbox-bootstrap';
      if (entry === 'unreadable') {
        violations.push({ kind: 'unchecked', host: host.name, detail: `${service}: journal.json is not valid JSON` });
        unchecked.add(host.name);
      } else if (entry && !bootstrapped) {
        // The last operation must have finished (repooled: checked, or restored, and serving again) and left its
        // link where it says; a rollback that removed a link that did not exist before says release null.
        const linked = entry.link ? (onHost.links[entry.link]?.replace(/^revs\//, '') ?? null) : undefined;
        // A host put back on the older release that fails its checks there now (marked unhealthy by the engine, or
        // on its last stable release) was moved nowhere unchecked: it is named for a person, counted apart.
        const backOnStable =
          linked !== undefined &&
          linked !== null &&
          linked === entry.release &&
          (linked === onHost.state.lastStable || entry.step === 'unhealthy');
        if (
          (entry.step !== 'repooled' && !backOnStable) ||
          (linked !== undefined && linked !== (entry.release ?? null))
        ) {
          violations.push({
            kind: 'unchecked',
            host: host.name,
            detail: `${service}: the journal's last step is ${entry.step} of ${entry.release}${entry.link ? ` on ${entry.link}, which points at ${linked ?? '(nothing)'}` : ''}`,
          });
          unchecked.add(host.name);
        }
      }
    }

    // What the app would load at its next restart (its link), against what it answers now.
    let byLink: Record<string, string | null> = {};
    let domains: Record<string, { domain: string }> = {};
    try {
      const config = path.join(host.root, CONFIG_SERVICE, 'current');
      domains = JSON.parse(fs.readFileSync(path.join(config, 'wikis.json'), 'utf8'));
      const wikiversions: Record<string, string> = JSON.parse(
        fs.readFileSync(path.join(config, 'wikiversions.json'), 'utf8'),
      );
      byLink = Object.fromEntries(
        Object.entries(wikiversions).map(([db, dir]) => {
          try {
            return [db, fs.readFileSync(path.join(host.root, CODE_SERVICE, dir, 'VERSION'), 'utf8').trim()];
          } catch {
            return [db, null];
          }
        }),
      );
    } catch (err) {
      violations.push({
        kind: 'state-disagrees',
        host: host.name,
        detail: `the config its link points at is unreadable: ${(err as Error).message}`,
      });
      unchecked.add(host.name);
    }
    const wrong: string[] = [];
    await eachWithLimit(Object.entries(domains), 8, async ([db, { domain }]) => {
      let version: string | null = null;
      try {
        // The sandbox fails a few requests of every version (background errors): an error page is asked again.
        for (let attempt = 1; attempt <= 5 && version === null; attempt++) {
          const res = await httpGet(
            `http://${host.address}:${host.port}/w/api.php?action=query&meta=siteinfo&format=json`,
            domain,
            10_000,
          );
          if (res.status < 500 || attempt === 5)
            version = JSON.parse(res.body)?.query?.general?.generator?.replace(/^MediaWiki /, '') ?? null;
        }
      } catch {
        version = null;
      }
      if (!live.has(db)) live.set(db, new Map());
      live.get(db)!.set(host.name, version);
      if (version !== byLink[db])
        wrong.push(`${db} answers ${version ?? 'nothing'}, link says ${byLink[db] ?? 'nothing'}`);
    });
    if (wrong.length) {
      violations.push({
        kind: 'serves-other-than-link',
        host: host.name,
        detail: `${wrong.length} wikis: ${wrong.slice(0, 3).join('; ')}`,
      });
      unchecked.add(host.name);
    }
  });
  return { violations, depooled, unchecked: [...unchecked], live, configReleases, journal };
}

/** Every wiki on every host answers the version the workflow's final state says it should. */
export function servingExpected(report: HostsReport, expected: Record<string, string>): Violation[] {
  const byHost = new Map<string, string[]>();
  for (const [db, hosts] of report.live) {
    for (const [host, version] of hosts)
      if (version !== expected[db])
        byHost.set(host, [
          ...(byHost.get(host) ?? []),
          `${db} answers ${version ?? 'nothing'}, expected ${expected[db]}`,
        ]);
  }
  return [...byHost].map(([host, wrong]) => ({
    kind: 'serving-unexpected' as const,
    host,
    detail: `${wrong.length} wikis: ${wrong.slice(0, 3).join('; ')}`,
  }));
}

/** After a rollback, no wiki anywhere answers a version newer than the rollback's target. */
export function newerThan(report: HostsReport, target: Record<string, string>): Violation[] {
  const byHost = new Map<string, string[]>();
  for (const [db, hosts] of report.live) {
    for (const [host, version] of hosts)
      if (version && target[db] && compareVersions(version, target[db]) > 0)
        byHost.set(host, [...(byHost.get(host) ?? []), `${db} on ${version} (rolled back to ${target[db]})`]);
  }
  return [...byHost].map(([host, wrong]) => ({
    kind: 'newer-after-rollback' as const,
    host,
    detail: wrong.slice(0, 3).join('; '),
  }));
}

/** Hosts switched to a release putting more wikis on the new version, after a rollback had begun. */
export function wrongDirection(
  changes: LinkChange[],
  rollbackStart: number,
  stagingDir: string,
  version: string,
): Violation[] {
  return changes
    .filter(
      (c) => c.notBefore >= rollbackStart && newness(stagingDir, c.to, version) > newness(stagingDir, c.from, version),
    )
    .map((c) => ({
      kind: 'wrong-direction' as const,
      host: c.host,
      detail: `switched ${c.from} -> ${c.to} (more wikis on ${version}) ${((c.seenAt - rollbackStart) / 1000).toFixed(1)} s after the rollback began`,
    }));
}

/** A host (rollouts) or a station (trains) that went the same way more than once. */
export function movedTwice(counts: Map<string, number>, what: (key: string) => string): Violation[] {
  return [...counts]
    .filter(([, n]) => n > 1)
    .map(([key, n]) => ({ kind: 'moved-twice' as const, detail: `${what(key)} ${n} times` }));
}

export function hostMoves(changes: LinkChange[], stagingDir: string, version: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of changes) {
    const [from, to] = [newness(stagingDir, c.from, version), newness(stagingDir, c.to, version)];
    if (from === to) continue;
    const key = `${c.host} ${to > from ? 'forward' : 'back'}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}
