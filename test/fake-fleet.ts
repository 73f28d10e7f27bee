// Stand-ins for the activities, for tests of workflow logic only (test/workflows-unit.test.ts): a small in-memory
// fleet and config repository that keeps each activity's contract (types, idempotency, per-host results, error
// types) so the workflows meet the same answers the real activities give. Every call is recorded.
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { createActivities } from '../activities';
import type { HostsRequest } from '../activities/hosts';
import type { AnalysisResult } from '../activities/metrics';
import type { Release } from '../activities/releases';
import type { GroupCounts } from '../workflows/analysis';
import type { HostResult, LeaseHolder } from '../workflows/definitions';
import { checkVersion, STATIONS, type Station } from '../workflows/names';
import type { Blocker } from '../workflows/render';

type Activities = ReturnType<typeof createActivities>;
/** Every activity a workflow calls; a workflow calling one not listed here fails its test ("not registered"). */
type UsedByWorkflows =
  | 'trainsInMotion'
  | 'readStations'
  | 'stageCode'
  | 'landWikiversions'
  | 'verifyLiveVersions'
  | 'fleetPicture'
  | 'acquireServiceLease'
  | 'releaseServiceLease'
  | 'groupCounters'
  | 'openBlockers'
  | 'logAction'
  | 'sendNotification'
  | 'sendPrivately'
  | 'updateRoadmap'
  | 'verifyAction'
  | 'nextTrainVersion'
  | 'checkDependsOn'
  | 'currentReleases'
  | 'fetchToHosts'
  | 'promoteHosts'
  | 'rollbackHosts'
  | 'analyzeCanary'
  | 'markStable'
  | 'measureGroups'
  | 'measureCanary'
  | 'canaryAnalysisPlan';
export type FakeActivities = Pick<Activities, UsedByWorkflows>;

export const OLD = '1.41.0-wmf.25';
export const NEW = '1.41.0-wmf.26';
export const CONFIG = 'mediawiki-config';
export const CODE = 'mediawiki';
export const HOSTS = ['mw1001', 'mw1002', 'mw1003', 'mw1004', 'mw1005', 'mw1006', 'mw1007', 'mw1008'];
/** One wiki per group, as in the sandbox. */
const WIKIS: Record<string, { group: Station; domain: string }> = {
  testwiki: { group: 'testwikis', domain: 'test.wikipedia.org' },
  mediawikiwiki: { group: 'group0', domain: 'www.mediawiki.org' },
  enwiktionary: { group: 'group1', domain: 'en.wiktionary.org' },
  enwiki: { group: 'group2', domain: 'en.wikipedia.org' },
};
const REQUESTS_PER_READ = 1000;
/** Every group's background error rate on every version alike, and its signature. */
const BACKGROUND_RATE = 0.003;
export const BACKGROUND_SIGNATURE = 'Notice: Undefined index: title';

interface HostCounters {
  requests: number;
  errors: number;
  signatures: Record<string, number>;
}

const hash12 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);
export const allOn = (version: string) =>
  Object.fromEntries(STATIONS.map((s) => [s, version])) as Record<Station, string>;

export interface Call {
  name: string;
  args: any;
}

interface HostState {
  current: Record<string, string | null>;
  previous: Record<string, string | null>;
  fetched: Set<string>;
}

export class FakeFleet {
  /** wikiversions on the config repository's main branch. */
  main: Record<Station, string> = allOn(OLD);
  /** Config releases by id, and the station versions each one holds. */
  readonly configReleases = new Map<string, Record<Station, string>>();
  /** What each host's service links to now, and what it replaced. */
  readonly hosts = new Map<string, HostState>();
  /** Hosts out of the load balancer's pool: they serve no traffic and the live-version check does not ask them. */
  readonly depooled = new Set<string>();
  readonly leases = new Map<string, LeaseHolder>();
  readonly landed = new Map<string, { versions: Record<Station, string>; release: Release; sha: string; by: string }>();
  readonly calls: Call[] = [];
  /** Hosts sshd does not answer on (fetch, promote and rollback fail) while they go on serving what they served. */
  readonly unreachable = new Set<string>();
  /** Hosts whose checks fail after the switch: the real promote puts them straight back. */
  readonly failingChecks = new Set<string>();
  /** Hosts that keep serving a release whatever their link says (an app server that did not reload). */
  readonly stale = new Map<string, string>();
  /** A whole-activity refusal from fetchToHosts, as when a host left the inventory after the rollout planned. */
  fetchRefusal: string | null = null;
  /** Hosts whose promote activity fails as a whole on every attempt (the worker cannot read the inventory). */
  readonly promoteOutage = new Set<string>();
  /** Error rate of a group's traffic on hosts that serve it the new version, with the error's signature. */
  readonly faults: Partial<Record<Station, { rate: number; signature: string }>> = {};
  /** Groups whose app servers crash-loop on the new version: they serve a tenth of their traffic, with no errors. */
  readonly crashLoop = new Set<Station>();
  /** Every metrics read fails, as when Prometheus is down. */
  metricsDown = false;
  /** How a rollout's canaries are judged (the worker's config); null (the default) for no analysis. */
  canaryPlan: { everyMs: number; windowSamples: number; spec: Record<string, unknown> } | null = null;
  /** Per host, per group: cumulative counters like each host's /metrics; a minute of traffic per read. */
  readonly hostCounters = new Map<string, Record<Station, HostCounters>>(HOSTS.map((h) => [h, this.zeroCounters()]));
  blockers: Blocker[] = [];
  /**
   * auth.roles.approvers as the worker checks it on a verified signature; null (the default) is auth: none. The
   * principal stands for the verified one: a workflow test has no keys, so the name given is taken as verified.
   */
  approvers: Set<string> | null = null;
  analysis: (canaries: string[]) => AnalysisResult = (canaries) => ({
    result: 'pass',
    summary: `${canaries.length} canaries like the baseline`,
    measurements: [],
    notes: [],
  });
  private readonly counters: Record<string, GroupCounts> = Object.fromEntries(
    STATIONS.map((s) => [s, { requests: 0, errors: 0, signatures: {} }]),
  );
  readonly initialConfig: Release;
  readonly oldCode: Release;

  constructor() {
    this.initialConfig = this.configRelease(allOn(OLD));
    this.oldCode = this.codeRelease(OLD);
    for (const host of HOSTS) {
      this.hosts.set(host, {
        current: { [CONFIG]: this.initialConfig.id, [CODE]: this.oldCode.id },
        previous: { [CONFIG]: null, [CODE]: null },
        fetched: new Set([this.initialConfig.id, this.oldCode.id]),
      });
    }
  }

  configRelease(versions: Record<Station, string>): Release {
    const content = JSON.stringify(STATIONS.map((s) => versions[s]));
    const id = `config-${hash12(content)}`;
    this.configReleases.set(id, { ...versions });
    return {
      id,
      name: 'config',
      service: CONFIG,
      contentHash: hash12(`tree ${content}`),
      sha: createHash('sha1').update(content).digest('hex'),
    };
  }

  codeRelease(version: string): Release {
    return {
      id: `${version}-${hash12(version)}`,
      name: version,
      service: CODE,
      contentHash: hash12(`tree ${version}`),
      sha: createHash('sha1').update(version).digest('hex'),
    };
  }

  /** The version a host serves to a group's wikis now. */
  serves(host: string, group: Station): string {
    const release = this.stale.get(host) ?? this.hosts.get(host)!.current[CONFIG];
    return this.configReleases.get(release!)![group];
  }

  /** The station versions every host serves, when they all agree; else null. */
  fleetServes(): Record<Station, string> | null {
    const seen = new Set(HOSTS.map((h) => JSON.stringify(STATIONS.map((s) => this.serves(h, s)))));
    return seen.size === 1
      ? (Object.fromEntries(STATIONS.map((s, i) => [s, JSON.parse([...seen][0])[i]])) as Record<Station, string>)
      : null;
  }

  private zeroCounters(): Record<Station, HostCounters> {
    return Object.fromEntries(STATIONS.map((s) => [s, { requests: 0, errors: 0, signatures: {} }])) as Record<
      Station,
      HostCounters
    >;
  }

  /** A host's app server restarted: its counters start again from zero. */
  restartCounters(host: string): void {
    this.hostCounters.set(host, this.zeroCounters());
  }

  private servedUntil: number | null = null;

  /**
   * The traffic since the last read, on the test server's (skipped) clock: each group serves 1000 requests a
   * minute, shared out over the pooled hosts, with errors on top.
   */
  private serveUntilNow(): void {
    if (this.metricsDown) throw new Error('Prometheus at 127.0.0.1:9090 did not answer: connect ECONNREFUSED');
    const now = Context.current().info.currentAttemptScheduledTimestampMs;
    const minutes = this.servedUntil === null ? 0 : Math.max(0, now - this.servedUntil) / 60_000;
    this.servedUntil = now;
    const pooled = HOSTS.filter((h) => !this.depooled.has(h));
    for (const host of pooled) {
      for (const group of STATIONS) {
        const counters = this.hostCounters.get(host)![group];
        const onNew = this.serves(host, group) === NEW;
        const requests =
          ((minutes * REQUESTS_PER_READ) / pooled.length) * (onNew && this.crashLoop.has(group) ? 0.1 : 1);
        const fault = onNew ? this.faults[group] : undefined;
        // Exact shares here; a reading shows whole counts (see side()).
        const background = requests * BACKGROUND_RATE;
        const faulty = fault ? requests * fault.rate : 0;
        counters.requests += requests;
        counters.errors += background + faulty;
        counters.signatures[BACKGROUND_SIGNATURE] = (counters.signatures[BACKGROUND_SIGNATURE] ?? 0) + background;
        if (faulty) counters.signatures[fault!.signature] = (counters.signatures[fault!.signature] ?? 0) + faulty;
      }
    }
  }

  /** One side of a comparison, summed over hosts and the groups `inGroup` takes, with a series per host. */
  private side(hosts: string[], inGroup: (group: Station) => boolean) {
    const side = {
      requests: 0,
      errors: 0,
      hosts: hosts.length,
      series: {} as Record<string, { requests: number; errors: number }>,
      signatures: {} as Record<string, number>,
    };
    for (const host of hosts) {
      const series = { requests: 0, errors: 0 };
      for (const group of STATIONS.filter(inGroup)) {
        const counters = this.hostCounters.get(host)![group];
        series.requests += Math.floor(counters.requests);
        series.errors += Math.floor(counters.errors);
        for (const [signature, n] of Object.entries(counters.signatures))
          side.signatures[signature] = (side.signatures[signature] ?? 0) + Math.floor(n);
      }
      side.series[host] = series;
      side.requests += series.requests;
      side.errors += series.errors;
    }
    return side;
  }

  callsTo(name: string): any[] {
    return this.calls.filter((c) => c.name === name).map((c) => c.args);
  }

  private hostResults(
    request: HostsRequest,
    each: (host: string, state: HostState) => HostResult,
    whenUnreachable: (host: string) => string = () => '',
  ): HostResult[] {
    const unknown = request.hosts.filter((h) => !this.hosts.has(h));
    if (unknown.length) throw ApplicationFailure.nonRetryable(`unknown hosts: ${unknown.join(', ')}`, 'BadInput');
    return request.hosts.map((host) =>
      this.unreachable.has(host)
        ? {
            host,
            outcome: 'failed',
            code: 'unreachable',
            detail: `ssh connection to ${host}:22 failed: connect ETIMEDOUT${whenUnreachable(host)}`,
          }
        : each(host, this.hosts.get(host)!),
    );
  }

  readonly activities: FakeActivities = this.recorded({
    trainsInMotion: async () => [],
    readStations: async () => ({
      versions: { ...this.main },
      catalog: {
        groups: Object.fromEntries(Object.entries(WIKIS).map(([db, w]) => [db, w.group])),
        domains: Object.fromEntries(Object.entries(WIKIS).map(([db, w]) => [db, w.domain])),
      },
    }),
    nextTrainVersion: async () => NEW,
    stageCode: async ({ version }) => ({ ...this.codeRelease(checkVersion(version)), patches: [] }),
    // Landing is idempotent by change id, as the forges are: a retried rollback finds its own change.
    landWikiversions: async ({ versions, changeId, by }) => {
      const known = this.landed.get(changeId);
      if (known)
        return {
          release: known.release,
          sha: known.sha,
          range: `${known.sha.slice(0, 12)}^..${known.sha.slice(0, 12)}`,
          alreadyLanded: true,
        };
      for (const station of STATIONS) checkVersion(versions[station]);
      const release = this.configRelease(versions);
      const sha = createHash('sha1').update(changeId).digest('hex');
      this.landed.set(changeId, { versions: { ...versions }, release, sha, by });
      this.main = { ...versions };
      return { release, sha, range: `${sha.slice(0, 12)}^..${sha.slice(0, 12)}`, alreadyLanded: false };
    },
    verifyLiveVersions: async ({ expected }) => {
      const pooled = HOSTS.filter((h) => !this.depooled.has(h));
      if (!pooled.length)
        throw ApplicationFailure.nonRetryable(
          'no pooled host answered the live-version check: every host is depooled',
          'VersionMismatch',
        );
      const answers = pooled.flatMap((host) =>
        Object.keys(expected).map((wiki) => ({ host, wiki, version: this.serves(host, WIKIS[wiki].group) })),
      );
      const wrong = answers.filter((a) => a.version !== expected[a.wiki]);
      if (wrong.length) {
        const sample = wrong.slice(0, 5).map((w) => `${w.host}/${w.wiki}: ${w.version} (expected ${expected[w.wiki]})`);
        throw ApplicationFailure.nonRetryable(
          `${wrong.length} of ${answers.length} wiki answers do not show the expected version after 10 checks: ${sample.join('; ')}`,
          'VersionMismatch',
        );
      }
      return { checked: answers.length, attempts: 1 };
    },
    fleetPicture: async ({ services }) => {
      const parts = services.map((service) => {
        const counts = new Map<string, number>();
        for (const h of HOSTS) {
          const release = this.hosts.get(h)!.current[service] ?? 'nothing';
          counts.set(release, (counts.get(release) ?? 0) + 1);
        }
        return `${service}: ${[...counts].map(([r, n]) => `${n} on ${r}`).join(', ')}`;
      });
      return [...parts, this.depooled.size ? `depooled: ${[...this.depooled].join(', ')}` : 'every host pooled'].join(
        '; ',
      );
    },
    // The lease workflow's rules (workflows/lease.ts): a parent's rollout works under the parent's lease.
    acquireServiceLease: async ({ service, workflowId, by, parent }) => {
      const holder = this.leases.get(service);
      if (holder && holder.workflowId !== workflowId && holder.workflowId !== parent) {
        throw ApplicationFailure.nonRetryable(
          `${service} is being changed by ${holder.workflowId} (started by ${holder.by}, since ${holder.since}); one change at a time per service`,
          'LeaseTaken',
        );
      }
      if (!holder || holder.workflowId !== parent)
        this.leases.set(service, { workflowId, by, since: new Date().toISOString() });
      return this.leases.get(service)!;
    },
    releaseServiceLease: async ({ service, workflowId }) => {
      if (this.leases.get(service)?.workflowId === workflowId) this.leases.delete(service);
    },
    // Cumulative counters per group, like the hosts' /metrics: each read adds a minute of traffic.
    groupCounters: async () => {
      for (const group of STATIONS) {
        const counts = this.counters[group];
        counts.requests += REQUESTS_PER_READ;
        const fault = this.faults[group];
        if (!fault) continue;
        const onNew = HOSTS.filter((h) => this.serves(h, group) === NEW).length;
        const errors = Math.round((REQUESTS_PER_READ * fault.rate * onNew) / HOSTS.length);
        counts.errors += errors;
        if (errors) counts.signatures[fault.signature] = (counts.signatures[fault.signature] ?? 0) + errors;
      }
      return structuredClone(this.counters);
    },
    openBlockers: async () => ({ open: [...this.blockers] }),
    logAction: async (entry) => `${entry.at} ${entry.by}: ${entry.what} [${entry.id}]`,
    sendNotification: async () => ['irc', 'slack', 'email'],
    sendPrivately: async () => ['email'],
    updateRoadmap: async () => ({ changed: true }),
    verifyAction: async ({ action, claimedBy }) => {
      const principal = claimedBy || 'anonymous';
      if (this.approvers && ['approve', 'resume', 'deploy'].includes(action) && !this.approvers.has(principal))
        throw ApplicationFailure.nonRetryable(
          `${principal} may not ${action}: that takes the approvers role in auth.roles`,
          'Unauthorized',
        );
      return { principal, fingerprint: this.approvers ? 'SHA256:fake' : null };
    },
    checkDependsOn: async () => ({ dependencies: [] }),
    currentReleases: async ({ service, selector }) => {
      const hosts = selector.hosts ?? HOSTS;
      return {
        current: Object.fromEntries(hosts.map((h) => [h, this.hosts.get(h)!.current[service]])),
        canaryHosts: ['mw1001'],
        idleHosts: [],
      };
    },
    fetchToHosts: async (request) => {
      if (this.fetchRefusal) throw ApplicationFailure.nonRetryable(this.fetchRefusal, 'BadInput');
      return this.hostResults(
        request,
        (host, state) => (state.fetched.add(request.release.id), { host, outcome: 'done' }),
      );
    },
    promoteHosts: async (request) => {
      if (request.hosts.some((h) => this.promoteOutage.has(h)))
        throw new Error('fleet.json: Unexpected end of JSON input');
      return this.hostResults(
        request,
        (host, state) => {
          const { service, release } = request;
          if (state.current[service] === release.id) return { host, outcome: 'already' };
          if (!state.fetched.has(release.id))
            return { host, outcome: 'failed', code: 'not-fetched', detail: `${release.id} is not on the host` };
          if (this.failingChecks.has(host))
            return {
              host,
              outcome: 'failed',
              code: 'check-failed',
              detail: `check "siteinfo answers" failed on ${host}; switched back to ${state.current[service]}`,
            };
          const previous = state.current[service];
          [state.previous[service], state.current[service]] = [previous, release.id];
          this.depooled.delete(host); // depool, switch, restart, checks, repool
          return { host, outcome: 'done', previous };
        },
        (host) => {
          // Moving back, a host that may come back serving the newer release is taken out of the pool.
          if (!request.movingBack) return '';
          this.depooled.add(host);
          return '; left depooled until it can be rolled back';
        },
      );
    },
    rollbackHosts: async (request) =>
      this.hostResults(request, (host, state) => {
        const { service, release } = request;
        if (state.current[service] !== release.id)
          return { host, outcome: 'skipped', code: 'not-on-release', detail: 'not on the release' };
        [state.current[service], state.previous[service]] = [state.previous[service], release.id];
        return { host, outcome: 'rolled-back', previous: state.current[service] };
      }),
    analyzeCanary: async ({ canaries }) => this.analysis(canaries),
    canaryAnalysisPlan: async () => this.canaryPlan,
    measureGroups: async ({ groups, version }) => {
      this.serveUntilNow();
      const known = version ? { known: [BACKGROUND_SIGNATURE] } : {};
      return {
        at: Date.now(),
        metrics: Object.fromEntries(
          groups.map((g) => [g, { subject: this.side(HOSTS, (group) => group === g), ...known }]),
        ),
      };
    },
    measureCanary: async ({ canaries }) => {
      this.serveUntilNow();
      const baseline = HOSTS.filter((h) => !canaries.includes(h) && !this.depooled.has(h));
      return {
        at: Date.now(),
        metrics: { errors: { subject: this.side(canaries, () => true), baseline: this.side(baseline, () => true) } },
      };
    },
    markStable: async ({ hosts }) => hosts.length,
  });

  /** Records each call (name and arguments) before the activity runs. */
  private recorded(activities: FakeActivities): FakeActivities {
    return Object.fromEntries(
      Object.entries(activities).map(([name, fn]) => [
        name,
        async (...args: unknown[]) => (
          this.calls.push({ name, args: structuredClone(args[0]) }),
          (fn as (...a: unknown[]) => Promise<unknown>)(...args)
        ),
      ]),
    ) as FakeActivities;
  }
}
