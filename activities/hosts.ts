// Activities over hosts: read state, fetch wide, promote narrow, roll back, mark stable. Every one of them reads
// the host's own state first and skips what is already done, so a retry after a crash is safe.
import { ApplicationFailure } from '@temporalio/common';
import type { HostSpec, SignalboxConfig } from '../config/load';
import type { HostResult } from '../workflows/definitions';
import { checkServiceName } from '../workflows/names';
import { logScanFiles, runChecks } from './checks';
import {
  activateRelease,
  fetchRelease,
  pruneReleases,
  readService,
  releasesToPrune,
  removeLink,
  writeServiceState,
  type ServiceOnHost,
  type ServiceState,
} from './host-ops';
import { fill, forgeFor, loadInventory, templateVars, transportFor, type Inventory } from './inventory';
import { poolStates, setPooled } from './loadbalancer';
import { releaseSource, type Release, type ReleaseSource } from './releases';

/** How far back a release's new commits are read for Depends-On: more than a week of any branch's changes. */
const DEPENDS_ON_SCAN_LIMIT = 1000;

export interface TargetRequest {
  service: string;
  release: Release;
  by: string;
  runId: string;
}

export interface HostSelector {
  hosts?: string[];
  group?: string;
}

export interface HostsRequest extends TargetRequest {
  hosts: string[];
  concurrency?: number;
}

export async function eachWithLimit<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  }));
  return results;
}

export function createHostActivities(config: SignalboxConfig) {
  const inventory = (): Inventory => loadInventory(config);

  const service = (name: string) => {
    const spec = config.services[checkServiceName(name)];
    if (!spec) throw ApplicationFailure.nonRetryable(`unknown service "${name}"; services in ${config.file}: ${Object.keys(config.services).join(', ')}`, 'BadInput');
    return spec;
  };

  const hostsByName = (inv: Inventory, names: string[]): HostSpec[] => {
    const known = new Map(inv.hosts.map((h) => [h.name, h]));
    const unknown = names.filter((n) => !known.has(n));
    if (unknown.length) throw ApplicationFailure.nonRetryable(`unknown hosts: ${unknown.join(', ')}`, 'BadInput');
    return names.map((n) => known.get(n)!);
  };

  const linkFor = (serviceName: string, release: Release) => fill(service(serviceName).link, { version: release.name });

  async function read(host: HostSpec, serviceName: string): Promise<ServiceOnHost> {
    return readService(transportFor(host, config), host.name, host.root, serviceName);
  }

  async function select(selector: HostSelector): Promise<HostSpec[]> {
    const inv = inventory();
    if (selector.hosts?.length) return hostsByName(inv, selector.hosts);
    if (selector.group) {
      const hosts = inv.hosts.filter((h) => h.groups.includes(selector.group!));
      if (!hosts.length) throw ApplicationFailure.nonRetryable(`no host is in group "${selector.group}"`, 'BadInput');
      return hosts;
    }
    return inv.hosts;
  }

  /** What each selected host serves for the release's link now: the release id, or null. Host state is the truth. */
  async function currentReleases(request: { service: string; release: Release; selector: HostSelector }): Promise<{ current: Record<string, string | null>; canaryHosts: string[] }> {
    const hosts = await select(request.selector);
    const link = linkFor(request.service, request.release);
    const current: Record<string, string | null> = {};
    await eachWithLimit(hosts, config.rollout.fetchConcurrency, async (host) => {
      try {
        const target = (await read(host, request.service)).links[link];
        current[host.name] = target ? target.replace(/^revs\//, '') : null;
      } catch {
        current[host.name] = null; // unreachable now; the promote step will count it as a failure if it still is
      }
    });
    const canaryGroup = config.rollout.canaryGroup ?? 'canary';
    return { current, canaryHosts: hosts.filter((h) => h.groups.includes(canaryGroup)).map((h) => h.name) };
  }

  async function fetchToHosts(request: HostsRequest): Promise<HostResult[]> {
    const inv = inventory();
    const hosts = hostsByName(inv, request.hosts);
    const { release } = request;
    service(request.service);
    return eachWithLimit(hosts, request.concurrency ?? config.rollout.fetchConcurrency, async (host): Promise<HostResult> => {
      try {
        const source = `${inv.rsyncSource}/${release.service}/${release.id}`;
        await fetchRelease(transportFor(host, config), host.name, host.root, request.service, release.id, source, release.contentHash);
        return { host: host.name, outcome: 'done' };
      } catch (err) {
        return { host: host.name, outcome: 'failed', detail: (err as Error).message };
      }
    });
  }

  async function promoteOne(host: HostSpec, request: TargetRequest, inv: Inventory): Promise<HostResult> {
    const spec = service(request.service);
    const { release } = request;
    const link = linkFor(request.service, release);
    const transport = transportFor(host, config);
    const vars = templateVars(host, inv, { version: release.name, release: release.id, service: request.service });
    let before: ServiceOnHost;
    try {
      before = await readService(transport, host.name, host.root, request.service, logScanFiles(spec.checks, vars));
    } catch (err) {
      return { host: host.name, outcome: 'failed', detail: (err as Error).message };
    }
    const replaced = before.links[link]?.replace(/^revs\//, '') ?? null;
    if (replaced === release.id) return { host: host.name, outcome: 'already', previous: before.state.replaced ?? null };
    const ctx = { host: host.name, transport, vars, logOffsets: new Map(Object.entries(before.logSizes)) };
    let switched = false;
    try {
      await setPooled(inv.loadBalancer, host.name, false);
      const state: ServiceState = {
        current: release.id,
        previous: before.state.current,
        lastStable: before.state.lastStable,
        deployedAt: new Date().toISOString(),
        deployedBy: request.by,
        runId: request.runId,
        replaced,
      };
      await activateRelease(transport, host.name, host.root, request.service, release.id, link, state);
      switched = true;
      if (spec.restart) await restart(host, spec.restart, vars);
      await runChecks(spec.checks, host.groups, ctx);
      await setPooled(inv.loadBalancer, host.name, true);
      return { host: host.name, outcome: 'done', previous: replaced };
    } catch (err) {
      const detail = (err as Error).message;
      // A host that failed its checks goes straight back, so it never keeps serving a release that failed.
      if (switched) await restoreHost(host, request, inv, replaced, before.state).catch(() => undefined);
      return { host: host.name, outcome: 'failed', detail, previous: replaced };
    }
  }

  async function restart(host: HostSpec, argv: string[], vars: Record<string, string | number | undefined>): Promise<void> {
    const result = await transportFor(host, config).run(argv.map((a) => fill(a, vars)), { timeoutMs: 60_000 });
    if (result.code !== 0) throw new Error(`restart failed (exit ${result.code}): ${(result.stderr || result.stdout).trim().slice(0, 300)}`);
  }

  /** Points the link back at what it replaced (or removes it), restarts, and repools: no copying. */
  async function restoreHost(host: HostSpec, request: TargetRequest, inv: Inventory, replaced: string | null, stateBefore: ServiceState): Promise<void> {
    const spec = service(request.service);
    const link = linkFor(request.service, request.release);
    const transport = transportFor(host, config);
    const state: ServiceState = { ...stateBefore, deployedAt: new Date().toISOString(), deployedBy: request.by, runId: request.runId };
    if (replaced) await activateRelease(transport, host.name, host.root, request.service, replaced, link, state);
    else await removeLink(transport, host.name, host.root, request.service, link, state);
    if (spec.restart) await restart(host, spec.restart, templateVars(host, inv, { version: request.release.name, release: replaced ?? '', service: request.service }));
    await setPooled(inv.loadBalancer, host.name, true);
  }

  async function promoteHosts(request: HostsRequest): Promise<HostResult[]> {
    const inv = inventory();
    const hosts = hostsByName(inv, request.hosts);
    return eachWithLimit(hosts, request.concurrency ?? hosts.length, (host) => promoteOne(host, request, inv));
  }

  /** Moves hosts that serve the release back to what it replaced. Hosts not on the release are left alone. */
  async function rollbackHosts(request: HostsRequest): Promise<HostResult[]> {
    const inv = inventory();
    const hosts = hostsByName(inv, request.hosts);
    const link = linkFor(request.service, request.release);
    return eachWithLimit(hosts, request.concurrency ?? config.rollout.fetchConcurrency, async (host): Promise<HostResult> => {
      try {
        const onHost = await read(host, request.service);
        if (onHost.links[link] !== `revs/${request.release.id}`) return { host: host.name, outcome: 'skipped', detail: 'not on the release' };
        const replaced = onHost.state.replaced ?? null;
        const stateAfter: ServiceState = { ...onHost.state, current: onHost.state.previous, previous: request.release.id, replaced: request.release.id };
        await restoreHost(host, request, inv, replaced, stateAfter);
        return { host: host.name, outcome: 'rolled-back', previous: replaced };
      } catch (err) {
        return { host: host.name, outcome: 'failed', detail: (err as Error).message };
      }
    });
  }

  /**
   * Refuses a release that carries a change whose Depends-On change is not yet live on every selected host: the
   * multi-step change that must go out in order. A dependency counts as live when the release itself contains it,
   * or when each reachable host runs, for some service, a release built from a commit that contains it.
   */
  async function checkDependsOn(request: { service: string; release: Release; selector: HostSelector }): Promise<{ dependencies: string[] }> {
    const inv = inventory();
    const source = releaseSource(inv.stagingDir, request.service, request.release.id);
    if (!source) return { dependencies: [] }; // staged by hand from a tree: there are no commits to read
    const forge = forgeFor(config, inv);
    const head = /^[0-9a-f]{40}$/.test(request.release.sha) ? request.release.sha : source.shas[source.shas.length - 1];
    // Most releases carry no Depends-On at all: then no host needs reading, which keeps this off the hot path.
    const recent = await forge.commits(source.repo, head, [], DEPENDS_ON_SCAN_LIMIT);
    if (!recent.some((c) => c.dependsOn.length)) return { dependencies: [] };
    const hosts = await select(request.selector);
    const running = new Map<string, { service: string; source: ReleaseSource }[]>();
    await eachWithLimit(hosts, config.rollout.fetchConcurrency, async (host) => {
      const sources: { service: string; source: ReleaseSource }[] = [];
      for (const serviceName of Object.keys(config.services)) {
        const onHost = await read(host, serviceName).catch(() => null);
        if (!onHost) return; // unreachable: the rollout itself will count it as a failure
        for (const target of new Set(Object.values(onHost.links))) {
          const found = releaseSource(inv.stagingDir, serviceName, target.replace(/^revs\//, ''));
          if (found) sources.push({ service: serviceName, source: found });
        }
      }
      running.set(host.name, sources);
    });
    const liveOfThisService = [...running.values()].flat().filter((r) => r.service === request.service && r.source.repo === source.repo);
    const newCommits = await forge.commits(source.repo, head, [...new Set(liveOfThisService.flatMap((r) => r.source.shas))], DEPENDS_ON_SCAN_LIMIT);
    const repos = [...new Set([source.repo, ...[...running.values()].flat().map((r) => r.source.repo)])];
    const problems: string[] = [];
    const dependencies = [...new Set(newCommits.flatMap((c) => c.dependsOn))];
    for (const commit of newCommits) {
      for (const dependency of commit.dependsOn) {
        const change = `${commit.sha.slice(0, 10)} ("${commit.subject}") depends on ${dependency}`;
        const carriers = (await Promise.all(repos.map(async (repo) => (await forge.findChange(repo, dependency)).map((sha) => ({ repo, sha }))))).flat();
        if (!carriers.length) {
          problems.push(`${change}, which is in none of ${repos.join(', ')}; land it first or fix the Depends-On line`);
          continue;
        }
        const contains = async (repo: string, shas: string[]) => {
          for (const carrier of carriers.filter((c) => c.repo === repo)) for (const sha of shas) if (await forge.isAncestor(repo, carrier.sha, sha)) return true;
          return false;
        };
        if (await contains(source.repo, [head])) continue; // ships in this same release
        const missing: string[] = [];
        for (const host of hosts) {
          const sources = running.get(host.name);
          if (!sources) continue;
          let live = false;
          for (const r of sources) if (!live && (await contains(r.source.repo, r.source.shas))) live = true;
          if (!live) missing.push(host.name);
        }
        if (missing.length) {
          const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, and ${missing.length - 5} more` : '');
          problems.push(`${change} (${carriers[0].repo} ${carriers[0].sha.slice(0, 10)}), which is not live on ${missing.length} of ${running.size} hosts (${shown}); deploy it there first`);
        }
      }
    }
    if (problems.length) throw ApplicationFailure.nonRetryable(`refusing to deploy ${request.release.id}: ${problems.join('; ')}`, 'DependencyNotLive');
    return { dependencies };
  }

  /** After a whole rollout succeeds: record the release as last stable, and prune old releases. */
  async function markStable(request: HostsRequest): Promise<number> {
    const inv = inventory();
    const hosts = hostsByName(inv, request.hosts);
    const keep = service(request.service).keep;
    let pruned = 0;
    await eachWithLimit(hosts, config.rollout.fetchConcurrency, async (host) => {
      const transport = transportFor(host, config);
      const onHost = await read(host, request.service);
      if (onHost.state.current === request.release.id && onHost.state.lastStable !== request.release.id) {
        await writeServiceState(transport, host.name, host.root, request.service, { ...onHost.state, lastStable: request.release.id });
      }
      const old = releasesToPrune(onHost, keep);
      await pruneReleases(transport, host.name, host.root, request.service, old);
      pruned += old.length;
    });
    return pruned;
  }

  /** Every host's state for every service, and whether the load balancer pools it: for `signalbox hosts`. */
  async function describeHosts(): Promise<{ host: string; address: string; groups: string[]; pooled: boolean | null; services: Record<string, ServiceOnHost | { error: string }> }[]> {
    const inv = inventory();
    const pools = await poolStates(inv.loadBalancer).catch(() => ({} as Record<string, boolean>));
    return eachWithLimit(inv.hosts, config.rollout.fetchConcurrency, async (host) => {
      const services: Record<string, ServiceOnHost | { error: string }> = {};
      for (const name of Object.keys(config.services)) {
        services[name] = await read(host, name).catch((err) => ({ error: (err as Error).message }));
      }
      return { host: host.name, address: `${host.address}${host.port ? `:${host.port}` : ''}`, groups: host.groups, pooled: pools[host.name] ?? null, services };
    });
  }

  return { currentReleases, checkDependsOn, fetchToHosts, promoteHosts, rollbackHosts, markStable, describeHosts };
}
