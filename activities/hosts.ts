// Activities over hosts: read state, fetch wide, promote narrow, roll back, mark stable. Every one of them reads
// the host's own state and journal first and goes on from the step it reached, so a retry after a crash is safe.
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import pLimit from 'p-limit';
import type { HostSpec, SignalboxConfig } from '../config/load';
import type { HostResult } from '../workflows/definitions';
import { checkServiceName } from '../workflows/names';
import { logScanFiles, runChecks } from './checks';
import {
  activateRelease,
  fetchRelease,
  HostScriptError,
  journalFor,
  JOURNAL_STEPS,
  linkTarget,
  LOCK_WAIT_SECONDS,
  lockService,
  pruneReleases,
  readService,
  releasesToPrune,
  removeLink,
  settledOn,
  unpinRelease,
  writeJournal,
  writeServiceState,
  type HostJournal,
  type JournalStep,
  type ServiceLock,
  type ServiceOnHost,
  type ServiceState,
} from './host-ops';
import { fill, forgeFor, loadInventory, templateVars, transportFor, type Inventory } from './inventory';
import { poolStates, setPooled } from './loadbalancer';
import type { Forge } from './forge';
import { releaseSource, type Release, type ReleaseSource } from './releases';
import { HostError, LockLost, type Transport } from './transport';

/** How far back a release's new commits are read for Depends-On: more than a week of any branch's changes. */
const DEPENDS_ON_SCAN_LIMIT = 1000;

/** HostResult.detail stays this short: every result goes into workflow history. */
const DETAIL_LIMIT = 300;

type StepCode = NonNullable<HostResult['code']>;

/** A transport that could not reach the host makes any step 'unreachable'; a host that answered keeps the step's code. */
function codeFor(err: unknown, code: StepCode): StepCode {
  return err instanceof HostError && !(err instanceof HostScriptError) ? 'unreachable' : code;
}

/**
 * How an operation reaches a host it holds: every command goes through the lock (ServiceLock.transport), and each
 * change made off the host (the load balancer) first checks that the host still holds the lock. Without a lock (a
 * rollback that could not take one) nothing runs on the host and there is nothing to check.
 */
interface Under {
  transport: Transport;
  check(): Promise<void>;
}

/** For a cleanup that may fail without changing the outcome: unless the lock is gone, when nothing more may run. */
function unlessLost(err: unknown): void {
  if (err instanceof LockLost) throw err;
}

/**
 * Runs `work` on every host and waits for all of them, so none is left running behind a retry. A host that lost
 * its lock, or that another operation kept busy, fails the activity afterwards for Temporal to retry (the retry
 * goes on from each host's journal), instead of counting as a failed host.
 */
async function onEveryHost<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const settled = await eachWithLimit(items, width, (item) =>
    work(item).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
  );
  const lost = settled.flatMap((r) => (!r.ok && r.error instanceof LockLost ? [r.error.message] : []));
  if (lost.length)
    throw ApplicationFailure.retryable(`${lost.join('; ')}; trying again from each host's journal`, 'LockLost');
  const failed = settled.find((r) => !r.ok);
  if (failed && !failed.ok) throw failed.error;
  return settled.map((r) => (r as { value: R }).value);
}

/** A run id or host name as one file name: no separators, no leading dots. */
function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_') || '_';
}

export interface TargetRequest {
  service: string;
  release: Release;
  by: string;
  runId: string;
}

/** Which hosts a rollout targets. Leaving both out means every host; an empty list or name is refused, never "all". */
export interface HostSelector {
  hosts?: string[];
  group?: string;
}

/**
 * The hosts a selector names, in the order named. Anything that does not name existing hosts is refused as
 * BadInput before a host is touched: an empty list or name must not fall through to the whole fleet.
 */
/** Every commit in these repositories that carries the Change-Id. */
async function carriersOf(forge: Forge, repos: string[], changeId: string): Promise<{ repo: string; sha: string }[]> {
  const found = await Promise.all(
    repos.map(async (repo) => (await forge.findChange(repo, changeId)).map((sha) => ({ repo, sha }))),
  );
  return found.flat();
}

/** True when one of these commits (a change's carriers) is in the history of one of `shas` in `repo`. */
async function containsAny(
  forge: Forge,
  carriers: { repo: string; sha: string }[],
  repo: string,
  shas: string[],
): Promise<boolean> {
  for (const carrier of carriers.filter((c) => c.repo === repo))
    for (const sha of shas) if (await forge.isAncestor(repo, carrier.sha, sha)) return true;
  return false;
}

export function selectHosts(fleet: HostSpec[], selector: HostSelector): HostSpec[] {
  const bad = (message: string) => ApplicationFailure.nonRetryable(message, 'BadInput');
  if (!selector || typeof selector !== 'object')
    throw bad(`the host selector must be { hosts } or { group }, not ${JSON.stringify(selector)}`);
  const { hosts, group } = selector;
  if (hosts !== undefined && group !== undefined) throw bad('give a host list or a group, not both');
  if (hosts !== undefined) {
    if (!Array.isArray(hosts)) throw bad(`the host list must be a list of host names, not ${JSON.stringify(hosts)}`);
    if (!hosts.length)
      throw bad(
        'the host list is empty; name at least one host, such as mw1001, or leave the list out to target every host',
      );
    if (hosts.some((h) => typeof h !== 'string' || !h.trim()))
      throw bad(`the host list ${JSON.stringify(hosts)} has an empty name; name hosts such as mw1001,mw1002`);
    const twice = hosts.filter((h, i) => hosts.indexOf(h) !== i);
    if (twice.length)
      throw bad(`the host list names ${[...new Set(twice)].join(', ')} more than once; name each host once`);
    const known = new Map(fleet.map((h) => [h.name, h]));
    const unknown = hosts.filter((h) => !known.has(h));
    if (unknown.length)
      throw bad(`unknown hosts: ${unknown.join(', ')}; \`signalbox hosts\` lists the ${fleet.length} hosts there are`);
    return hosts.map((h) => known.get(h)!);
  }
  if (group !== undefined) {
    if (typeof group !== 'string' || !group.trim())
      throw bad(
        `the group name ${JSON.stringify(group)} is empty; name a group such as canary, or leave it out to target every host`,
      );
    const inGroup = fleet.filter((h) => h.groups.includes(group));
    if (!inGroup.length) {
      const groups = [...new Set(fleet.flatMap((h) => h.groups))].sort();
      throw bad(`no host is in group "${group}"; groups there are: ${groups.join(', ') || 'none'}`);
    }
    return inGroup;
  }
  return fleet;
}

export interface HostsRequest extends TargetRequest {
  hosts: string[];
  concurrency?: number;
  /** Putting back an older release: a host that fails its checks stays on it, depooled, never goes forward again. */
  movingBack?: boolean;
  /** This run of the rollout (its Temporal run id): a rollback fences it on each host, see lockService. */
  fence?: string;
}

/** Runs `work` on every item, at most `width` at a time; results in the items' order. */
export function eachWithLimit<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const limit = pLimit(Math.max(1, width));
  return Promise.all(items.map((item) => limit(() => work(item))));
}

export function createHostActivities(config: SignalboxConfig) {
  const inventory = (): Inventory => loadInventory(config);

  const service = (name: string) => {
    const spec = config.services[checkServiceName(name)];
    if (!spec)
      throw ApplicationFailure.nonRetryable(
        `unknown service "${name}"; services in ${config.file}: ${Object.keys(config.services).join(', ')}`,
        'BadInput',
      );
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
    return selectHosts(inventory().hosts, selector);
  }

  /** What each selected host serves for the release's link now: the release id, or null. Host state is the truth. */
  async function currentReleases(request: {
    service: string;
    release: Release;
    selector: HostSelector;
  }): Promise<{ current: Record<string, string | null>; canaryHosts: string[]; idleHosts: string[] }> {
    const hosts = await select(request.selector);
    const link = linkFor(request.service, request.release);
    const pools = poolsOnce(inventory());
    const current: Record<string, string | null> = {};
    await eachWithLimit(hosts, config.rollout.fetchConcurrency, async (host) => {
      try {
        const onHost = await read(host, request.service);
        const linked = linkTarget(onHost, link);
        if (linked !== request.release.id) current[host.name] = linked;
        else if (await settled(onHost, link, request.release.id, host, pools)) current[host.name] = linked;
        // Linked but never checked and repooled there: counted as still on its way back, so the rollout finishes it.
        else current[host.name] = wayBack(onHost, link, request.release.id).replaced;
      } catch {
        current[host.name] = null; // unreachable now; the promote step will count it as a failure if it still is
      }
    });
    const canaryGroup = config.rollout.canaryGroup ?? 'canary';
    return {
      current,
      canaryHosts: hosts.filter((h) => h.groups.includes(canaryGroup)).map((h) => h.name),
      idleHosts: hosts.filter((h) => h.pool === null).map((h) => h.name),
    };
  }

  /** The load balancer's pools, asked at most once per activity and only when a host without a journal needs it. */
  function poolsOnce(inv: Inventory): () => Promise<Record<string, boolean> | null> {
    let pools: Promise<Record<string, boolean> | null> | undefined;
    return () => (pools ??= poolStates(inv.loadBalancer).catch(() => null));
  }

  async function settled(
    onHost: ServiceOnHost,
    link: string,
    release: string,
    host: HostSpec,
    pools: () => Promise<Record<string, boolean> | null>,
  ): Promise<boolean> {
    if (linkTarget(onHost, link) !== release) return false;
    if (journalFor(onHost, link)?.release === release) return settledOn(onHost, link, release, null);
    if (host.pool === null) return settledOn(onHost, link, release, true);
    const pooled = await pools();
    return settledOn(onHost, link, release, pooled && pooled[host.name] !== false);
  }

  /** For a host already linked to the release: what it replaced and the state before, from the best record there is. */
  function wayBack(
    onHost: ServiceOnHost,
    link: string,
    release: string,
  ): { replaced: string | null; stateBefore: ServiceState } {
    const journal = journalFor(onHost, link);
    if (journal?.op === 'promote' && journal.release === release)
      return { replaced: journal.replaced, stateBefore: journal.stateBefore ?? onHost.state };
    const { state } = onHost;
    // state.json is written after the link, so when it does not name the release yet it still describes what was before.
    if (state.current !== release) return { replaced: state.current, stateBefore: state };
    return { replaced: state.replaced ?? null, stateBefore: { ...state, current: state.previous } };
  }

  /** Workflow history gets a short detail; the whole text goes to the run's log for the host, named in `log`. */
  function bounded(runId: string, what: string, result: HostResult): HostResult {
    const text = result.detail;
    if (!text || (result.outcome !== 'failed' && text.length <= DETAIL_LIMIT)) return result;
    const detail = text.length > DETAIL_LIMIT ? `${text.slice(0, DETAIL_LIMIT - 3)}...` : text;
    const log = path.join(config.home, 'logs', fileSafe(runId), `${fileSafe(result.host)}.log`);
    try {
      fs.mkdirSync(path.dirname(log), { recursive: true });
      fs.appendFileSync(
        log,
        `${new Date().toISOString()} ${what}: ${result.outcome}${result.code ? ` (${result.code})` : ''}: ${text}\n`,
      );
    } catch {
      return { ...result, detail }; // a log that cannot be written must not change what happened on the host
    }
    return { ...result, detail, log };
  }

  async function fetchToHosts(request: HostsRequest): Promise<HostResult[]> {
    const inv = inventory();
    const hosts = hostsByName(inv, request.hosts);
    const { release } = request;
    service(request.service);
    return eachWithLimit(
      hosts,
      request.concurrency ?? config.rollout.fetchConcurrency,
      async (host): Promise<HostResult> => {
        try {
          const source = `${inv.rsyncSource}/${release.service}/${release.id}`;
          await fetchRelease(
            transportFor(host, config),
            host.name,
            host.root,
            request.service,
            release.id,
            source,
            release.contentHash,
            request.runId,
          );
          return { host: host.name, outcome: 'done' };
        } catch (err) {
          return bounded(request.runId, `fetch ${release.id}`, {
            host: host.name,
            outcome: 'failed',
            code: codeFor(err, 'fetch-failed'),
            detail: (err as Error).message,
          });
        }
      },
    );
  }

  /**
   * depool -> switch -> restart -> checks -> repool, each step journaled on the host. A retry or a resumed run
   * goes on from the journal's step; a host already linked to the release but never checked and repooled there is
   * finished rather than counted as already done.
   */
  /**
   * One host's promote or rollback under the host's lock on the service (lockService). A host another operation
   * holds past the wait, or one where this run was already rolled back, is not touched.
   */
  async function exclusively(
    host: HostSpec,
    request: HostsRequest,
    mode: 'promote' | 'rollback',
    work: (under: Under, unreachable?: Error) => Promise<HostResult>,
  ): Promise<HostResult> {
    const transport = transportFor(host, config);
    const unlocked: Under = { transport, check: async () => undefined };
    let lock: ServiceLock;
    try {
      lock = await lockService(transport, host.name, host.root, request.service, mode, request.fence);
    } catch (err) {
      // A host that cannot be reached is handled as each operation handles a failed first read; nothing ran on it.
      // So is any host a rollback cannot lock: it is named and left depooled for a person.
      if (codeFor(err, 'busy') === 'unreachable' || mode === 'rollback') return work(unlocked, err as Error);
      return { host: host.name, outcome: 'failed', code: 'busy', detail: (err as Error).message };
    }
    try {
      if (lock.outcome === 'fenced')
        return {
          host: host.name,
          outcome: 'skipped',
          code: 'fenced',
          detail: `this rollout was rolled back on ${host.name}; it does not go forward there again`,
        };
      if (lock.outcome === 'busy') {
        const busy = new HostScriptError(
          host.name,
          `another operation on ${request.service} held it for over ${LOCK_WAIT_SECONDS[mode]} s; nothing was changed`,
        );
        // The holder may be this activity's own earlier attempt, still running: Temporal tries again later, and
        // the host is not counted as failed. A rollback treats it as a host it cannot put back.
        if (mode === 'promote') throw busy;
        return await work(unlocked, busy);
      }
      return await work(lock);
    } finally {
      lock.release();
    }
  }

  /** A pool change for a host this operation holds: only while the host still holds the lock. */
  async function pool(inv: Inventory, host: HostSpec, pooled: boolean, under: Under): Promise<void> {
    await under.check();
    if (host.pool === null) return; // in no pool (a test server): nothing to take out or put back
    await setPooled(inv.loadBalancer, host.name, pooled);
  }

  async function promoteOne(
    host: HostSpec,
    request: HostsRequest,
    inv: Inventory,
    pools: () => Promise<Record<string, boolean> | null>,
    under: Under,
    unreachable?: Error,
  ): Promise<HostResult> {
    const spec = service(request.service);
    const { release, runId } = request;
    const link = linkFor(request.service, release);
    const { transport } = under;
    const vars = templateVars(host, inv, { version: release.name, release: release.id, service: request.service });
    const finish = (result: Omit<HostResult, 'host'>) =>
      bounded(runId, `promote ${release.id}`, { host: host.name, ...result });
    let onHost: ServiceOnHost;
    try {
      if (unreachable) throw unreachable;
      onHost = await readService(transport, host.name, host.root, request.service, logScanFiles(spec.checks, vars));
    } catch (err) {
      unlessLost(err);
      return finish({ outcome: 'failed', code: codeFor(err, 'unreachable'), detail: (err as Error).message });
    }
    const linked = linkTarget(onHost, link);
    const journal = journalFor(onHost, link);
    const ours =
      journal?.op === 'promote' && journal.runId === runId && journal.release === release.id ? journal : null;
    if (ours?.step === 'repooled' && linked === release.id) return finish({ outcome: 'done', previous: ours.replaced });
    if (!ours && (await settled(onHost, link, release.id, host, pools))) {
      // Tidying only: the link already keeps the release from being pruned, so a failure here changes nothing.
      if (onHost.pins.includes(release.id))
        await unpinRelease(transport, host.name, host.root, request.service, release.id, runId).catch(unlessLost);
      return finish({ outcome: 'already', previous: wayBack(onHost, link, release.id).replaced });
    }
    if (!onHost.revs.includes(release.id)) {
      return finish({
        outcome: 'failed',
        code: 'not-fetched',
        detail: `${host.name}: release ${release.id} is not on this host; fetch it first (nothing was changed)`,
      });
    }

    // Where to start, and where the host goes back to if a step fails.
    let done: JournalStep | null = null;
    let { replaced, stateBefore } =
      linked === release.id ? wayBack(onHost, link, release.id) : { replaced: linked, stateBefore: onHost.state };
    let logOffsets = onHost.logSizes;
    if (ours && (linked === release.id || linked === ours.replaced)) {
      // This run's own promote, interrupted: the link says whether its switch happened, the journal the rest.
      done = linked === release.id ? ours.step : 'depooled';
      replaced = ours.replaced;
      stateBefore = ours.stateBefore ?? stateBefore;
      logOffsets = ours.logOffsets ?? logOffsets;
    }
    const entry = (step: JournalStep): HostJournal => ({
      op: 'promote',
      runId,
      release: release.id,
      replaced,
      link,
      step,
      at: new Date().toISOString(),
      stateBefore,
      logOffsets,
    });
    const unpin = { release: release.id, runId };
    // The last step drops this run's pin too: once linked, the link keeps the release from being pruned.
    const record = (step: JournalStep) =>
      writeJournal(
        transport,
        host.name,
        host.root,
        request.service,
        entry(step),
        step === 'repooled' ? unpin : undefined,
      );
    const reached = (step: JournalStep) => done !== null && JOURNAL_STEPS.indexOf(done) >= JOURNAL_STEPS.indexOf(step);
    const state: ServiceState = {
      current: release.id,
      previous: stateBefore.current,
      lastStable: stateBefore.lastStable,
      deployedAt: new Date().toISOString(),
      deployedBy: request.by,
      runId,
      replaced,
    };
    let stage: StepCode = 'unreachable';
    try {
      if (done === null) await record('depooled');
      stage = 'depool-failed';
      if (!reached('checked')) await pool(inv, host, false, under);
      stage = 'switch-failed';
      if (!reached('switched')) {
        await activateRelease(transport, host.name, host.root, request.service, release.id, link, state, {
          journal: entry('switched'),
          unpin,
        });
      }
      stage = 'restart-failed';
      if (spec.restart && !reached('restarted')) {
        await restart(transport, spec.restart, vars);
        await record('restarted');
      }
      stage = 'check-failed';
      if (!reached('checked')) {
        await runChecks(spec.checks, host.groups, {
          host: host.name,
          transport,
          vars,
          logOffsets: new Map(Object.entries(logOffsets)),
        });
        await record('checked');
      }
      stage = 'repool-failed';
      await pool(inv, host, true, under);
      await record('repooled');
      return finish({ outcome: 'done', previous: replaced });
    } catch (err) {
      // The lock is gone: nothing more of this operation may run, not even going back. Its retry goes on from here.
      unlessLost(err);
      const failed = { outcome: 'failed' as const, code: codeFor(err, stage), previous: replaced };
      const detail = (err as Error).message;
      // The journal says how far it got, so a retry finishes it and a rollback of this run puts it back.
      if (stage === 'unreachable' && request.movingBack) {
        // It may come back serving the release being rolled back: out of the pool until the retry or a person.
        await pool(inv, host, false, under).catch(unlessLost);
        return finish({ ...failed, detail: `${detail}; left depooled until it can be rolled back` });
      }
      if (stage === 'unreachable' || stage === 'depool-failed') return finish({ ...failed, detail });
      if (stage === 'repool-failed')
        return finish({ ...failed, detail: `${detail}; it passed its checks on ${release.id} and is left depooled` });
      if (request.movingBack) {
        // Going back from an older release would move the host forward, and taking every host that fails on the
        // last good release out of the pool could empty it: the host stays on the older release, pooled, named.
        await pool(inv, host, true, under).catch(unlessLost);
        await record('unhealthy').catch(unlessLost);
        return finish({
          ...failed,
          code: 'check-failed-moving-back',
          detail: `${detail}; this rollout moves hosts back, so it stays on ${release.id} (the older release), in the pool, marked unhealthy for a person to look at`,
        });
      }
      // A host that failed goes straight back, so it never keeps serving a release that failed.
      try {
        await goBack({
          host,
          inv,
          under,
          op: 'restore',
          runId,
          by: request.by,
          serviceName: request.service,
          version: release.name,
          left: release.id,
          link,
          target: replaced,
          stateBefore,
          switchBack: true,
        });
        return finish({ ...failed, detail: `${detail}; back on ${replaced ?? 'no link'}` });
      } catch (backErr) {
        unlessLost(backErr);
        // A full disk fails a switch's bookkeeping (its state file), not always its link. When this run's switch
        // never got through (the journal never said switched, so nothing restarted onto the new release), a link
        // that reads the old release again means the host serves what it served before: back in the pool.
        const neverSwitched = stage === 'switch-failed' && (!ours || ours.step === 'depooled');
        const linkedNow = neverSwitched
          ? await readService(transport, host.name, host.root, request.service).then(
              (h) => linkTarget(h, link),
              (e) => unlessLost(e),
            )
          : undefined;
        if (
          linkedNow !== undefined &&
          linkedNow === replaced &&
          (await pool(inv, host, true, under).then(
            () => true,
            (e) => {
              unlessLost(e);
              return false;
            },
          ))
        ) {
          return finish({
            ...failed,
            detail: `${detail}; its link is back on ${replaced ?? 'no link'} and it never restarted onto ${release.id}, so it serves what it did before and is back in the pool (its records could not be written: ${(backErr as Error).message})`,
          });
        }
        await pool(inv, host, false, under).catch(unlessLost);
        return finish({
          ...failed,
          code: 'left-depooled',
          detail: `${detail}; going back to ${replaced ?? 'no link'} failed too (${(backErr as Error).message}); left depooled for a person`,
        });
      }
    }
  }

  async function restart(
    transport: Transport,
    argv: string[],
    vars: Record<string, string | number | undefined>,
  ): Promise<void> {
    const result = await transport.run(
      argv.map((a) => fill(a, vars)),
      { timeoutMs: 60_000 },
    );
    if (result.code !== 0)
      throw new Error(`restart failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`);
  }

  /**
   * Points the link back at `target` (or removes it), restarts, and repools: no copying. Without switchBack the
   * link is already there and never moved, so only the repool is left. Journaled as switched, then repooled: a
   * retry redoes the restart, which is harmless, and a rollback stays one write shorter.
   */
  async function goBack(back: {
    host: HostSpec;
    inv: Inventory;
    under: Under;
    op: 'restore' | 'rollback';
    runId: string;
    by: string;
    serviceName: string;
    version: string;
    left: string;
    link: string;
    target: string | null;
    stateBefore: ServiceState;
    switchBack: boolean;
  }): Promise<void> {
    const { host, inv, under, runId, serviceName, left, link, target } = back;
    const spec = service(serviceName);
    const { transport } = under;
    const entry = (step: JournalStep): HostJournal => ({
      op: back.op,
      runId,
      release: target,
      replaced: left,
      link,
      step,
      at: new Date().toISOString(),
    });
    const unpin = { release: left, runId };
    if (back.switchBack) {
      const state: ServiceState = {
        ...back.stateBefore,
        previous: left,
        deployedAt: new Date().toISOString(),
        deployedBy: back.by,
        runId,
      };
      if (target)
        await activateRelease(transport, host.name, host.root, serviceName, target, link, state, {
          journal: entry('switched'),
          unpin,
        });
      else
        await removeLink(transport, host.name, host.root, serviceName, link, state, {
          journal: entry('switched'),
          unpin,
        });
      if (spec.restart)
        await restart(
          transport,
          spec.restart,
          templateVars(host, inv, { version: back.version, release: target ?? '', service: serviceName }),
        );
    }
    await pool(inv, host, true, under);
    // The host is back where it belongs and in the pool: a record that cannot be written (a full disk) must not
    // take it out again. A retry reads the older step and repools it once more, which changes nothing.
    await writeJournal(transport, host.name, host.root, serviceName, entry('repooled'), unpin).catch(unlessLost);
  }

  async function promoteHosts(request: HostsRequest): Promise<HostResult[]> {
    const inv = inventory();
    const hosts = hostsByName(inv, request.hosts);
    const pools = poolsOnce(inv);
    return onEveryHost(hosts, request.concurrency ?? hosts.length, (host) =>
      exclusively(host, request, 'promote', (under, unreachable) =>
        promoteOne(host, request, inv, pools, under, unreachable),
      ),
    );
  }

  /**
   * Moves each host this run touched back to what it replaced, and nothing else: a host never goes to a newer
   * release. Hosts not on the release and not touched by this run are skipped; a host this run depooled but never
   * switched is repooled. A host that cannot be put back is reported and left depooled for a person. Safe to retry.
   */
  async function rollbackHosts(request: HostsRequest): Promise<HostResult[]> {
    const inv = inventory();
    const hosts = hostsByName(inv, request.hosts);
    return onEveryHost(hosts, request.concurrency ?? config.rollout.fetchConcurrency, (host) =>
      exclusively(host, request, 'rollback', (under, unreachable) =>
        rollbackOne(host, request, inv, under, unreachable),
      ),
    );
  }

  async function rollbackOne(
    host: HostSpec,
    request: HostsRequest,
    inv: Inventory,
    under: Under,
    unreachable?: Error,
  ): Promise<HostResult> {
    const { release, runId } = request;
    const link = linkFor(request.service, release);
    const { transport } = under;
    const finish = (result: Omit<HostResult, 'host'>) =>
      bounded(runId, `rollback ${release.id}`, { host: host.name, ...result });
    const leaveDepooled = async (result: Omit<HostResult, 'host' | 'outcome'>, detail: string) => {
      const depooled = await pool(inv, host, false, under).then(
        () => 'left depooled for a person',
        (err) => {
          unlessLost(err);
          return `could not depool it either (${(err as Error).message}); a person must take it out of the pool`;
        },
      );
      return finish({ ...result, outcome: 'failed', detail: `${detail}; ${depooled}` });
    };
    let onHost: ServiceOnHost;
    try {
      if (unreachable) throw unreachable;
      onHost = await readService(transport, host.name, host.root, request.service);
    } catch (err) {
      unlessLost(err);
      return leaveDepooled(
        { code: codeFor(err, 'unreachable') },
        `${(err as Error).message}; cannot tell whether it serves ${release.id}`,
      );
    }
    const linked = linkTarget(onHost, link);
    const journal = journalFor(onHost, link);
    const promoted = journal?.op === 'promote' && journal.release === release.id ? journal : null;
    const wentBack =
      journal &&
      journal.op !== 'promote' &&
      journal.runId === runId &&
      journal.replaced === release.id &&
      linked === journal.release
        ? journal
        : null;
    const back = (target: string | null, stateBefore: ServiceState, switchBack: boolean) =>
      goBack({
        host,
        inv,
        under,
        op: 'rollback',
        runId,
        by: request.by,
        serviceName: request.service,
        version: release.name,
        left: release.id,
        link,
        target,
        stateBefore,
        switchBack,
      });
    let target: string | null = linked;
    try {
      if (wentBack) {
        if (wentBack.step === 'repooled') {
          if (wentBack.op === 'rollback') return finish({ outcome: 'rolled-back', previous: linked });
          return finish({
            outcome: 'skipped',
            code: 'not-on-release',
            detail: `went back to ${linked ?? 'no link'} when it failed on ${release.id}`,
          });
        }
        // Going back stopped after its switch: restart and repool.
        await back(linked, onHost.state, true);
        return finish({ outcome: 'rolled-back', previous: linked });
      }
      if (linked === release.id && request.movingBack) {
        // This rollout put hosts back on an older release: undoing it would move them forward.
        if (settledOn(onHost, link, release.id, null))
          return finish({
            outcome: 'skipped',
            detail: `stays on ${release.id}: this rollout moved hosts back, and undoing it would move them forward`,
          });
        await pool(inv, host, true, under);
        return finish({
          outcome: 'failed',
          code: 'check-failed-moving-back',
          previous: linked,
          detail: `${host.name}: on ${release.id} but not checked there; this rollout moved hosts back, so it stays on the older release, in the pool, for a person to look at`,
        });
      }
      if (linked === release.id) {
        target = promoted ? promoted.replaced : (onHost.state.replaced ?? null);
        await back(target, promoted?.stateBefore ?? { ...onHost.state, current: onHost.state.previous }, true);
        return finish({ outcome: 'rolled-back', previous: target });
      }
      if (promoted?.runId === runId) {
        if (linked !== promoted.replaced) {
          return leaveDepooled(
            { code: 'left-depooled', previous: linked },
            `its ${link} points at ${linked ?? 'nothing'}, neither ${release.id} nor what this rollout replaced (${promoted.replaced ?? 'no link'})`,
          );
        }
        if (promoted.step === 'depooled') {
          await back(linked, onHost.state, false);
          return finish({
            outcome: 'rolled-back',
            code: 'never-switched',
            previous: linked,
            detail: `depooled by this rollout but never switched; repooled on ${linked ?? 'no link'}`,
          });
        }
        // Its switch happened and going back had already moved the link before the journal said so: finish that.
        await back(linked, promoted.stateBefore ?? onHost.state, true);
        return finish({ outcome: 'rolled-back', previous: linked });
      }
      if (onHost.pins.includes(release.id))
        await unpinRelease(transport, host.name, host.root, request.service, release.id, runId);
      return finish({ outcome: 'skipped', code: 'not-on-release', detail: 'not on the release' });
    } catch (err) {
      unlessLost(err);
      return leaveDepooled(
        { code: codeFor(err, 'left-depooled'), previous: target },
        `rolling back to ${target ?? 'no link'} failed: ${(err as Error).message}`,
      );
    }
  }

  /** Per host, the releases it serves for each service and the commits they were built from; unreachable left out. */
  async function runningSources(hosts: HostSpec[]): Promise<Map<string, { service: string; source: ReleaseSource }[]>> {
    const inv = inventory();
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
    return running;
  }

  /** The reachable hosts none of whose releases contains any of these commits (a change's carriers). */
  async function hostsWithout(
    hosts: HostSpec[],
    running: Map<string, { service: string; source: ReleaseSource }[]>,
    carriers: { repo: string; sha: string }[],
    forge: Forge,
  ): Promise<string[]> {
    const missing: string[] = [];
    for (const host of hosts) {
      const sources = running.get(host.name);
      if (!sources) continue;
      let live = false;
      for (const r of sources)
        if (!live && (await containsAny(forge, carriers, r.source.repo, r.source.shas))) live = true;
      if (!live) missing.push(host.name);
    }
    return missing;
  }

  /**
   * Which of these Change-Ids are live on every host of the fleet: each reachable host serves, for some service, a
   * release built from a commit that contains the change. A host that cannot be read counts as not live: a
   * backport must not ship on the word of hosts it could not see.
   */
  async function changesLiveEverywhere(request: { changeIds: string[] }): Promise<{ live: string[] }> {
    const inv = inventory();
    const forge = forgeFor(config, inv);
    const hosts = inv.hosts;
    const running = await runningSources(hosts);
    if (running.size < hosts.length) return { live: [] };
    const repos = [...new Set([...running.values()].flat().map((r) => r.source.repo))];
    const live: string[] = [];
    for (const changeId of request.changeIds) {
      const carriers = await carriersOf(forge, repos, changeId);
      if (carriers.length && !(await hostsWithout(hosts, running, carriers, forge)).length) live.push(changeId);
    }
    return { live };
  }

  /**
   * Refuses a release that carries a change whose Depends-On change is not yet live on every selected host: the
   * multi-step change that must go out in order. A dependency counts as live when the release itself contains it,
   * or when each reachable host runs, for some service, a release built from a commit that contains it.
   */
  async function checkDependsOn(request: {
    service: string;
    release: Release;
    selector: HostSelector;
  }): Promise<{ dependencies: string[] }> {
    const inv = inventory();
    const source = releaseSource(inv.stagingDir, request.service, request.release.id);
    if (!source) return { dependencies: [] }; // staged by hand from a tree: there are no commits to read
    const forge = forgeFor(config, inv);
    const head = /^[0-9a-f]{40}$/.test(request.release.sha) ? request.release.sha : source.shas[source.shas.length - 1];
    // Most releases carry no Depends-On at all: then no host needs reading, which keeps this off the hot path.
    const recent = await forge.commits(source.repo, head, [], DEPENDS_ON_SCAN_LIMIT);
    if (!recent.some((c) => c.dependsOn.length)) return { dependencies: [] };
    const hosts = await select(request.selector);
    const running = await runningSources(hosts);
    const liveOfThisService = [...running.values()]
      .flat()
      .filter((r) => r.service === request.service && r.source.repo === source.repo);
    const newCommits = await forge.commits(
      source.repo,
      head,
      [...new Set(liveOfThisService.flatMap((r) => r.source.shas))],
      DEPENDS_ON_SCAN_LIMIT,
    );
    const repos = [...new Set([source.repo, ...[...running.values()].flat().map((r) => r.source.repo)])];
    const problems: string[] = [];
    const dependencies = [...new Set(newCommits.flatMap((c) => c.dependsOn))];
    for (const commit of newCommits) {
      for (const dependency of commit.dependsOn) {
        const change = `${commit.sha.slice(0, 10)} ("${commit.subject}") depends on ${dependency}`;
        const carriers = await carriersOf(forge, repos, dependency);
        if (!carriers.length) {
          problems.push(`${change}, which is in none of ${repos.join(', ')}; land it first or fix the Depends-On line`);
          continue;
        }
        if (await containsAny(forge, carriers, source.repo, [head])) continue; // ships in this same release
        const missing = await hostsWithout(hosts, running, carriers, forge);
        if (missing.length) {
          const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, and ${missing.length - 5} more` : '');
          problems.push(
            `${change} (${carriers[0].repo} ${carriers[0].sha.slice(0, 10)}), which is not live on ${missing.length} of ${running.size} hosts (${shown}); deploy it there first`,
          );
        }
      }
    }
    if (problems.length)
      throw ApplicationFailure.nonRetryable(
        `refusing to deploy ${request.release.id}: ${problems.join('; ')}`,
        'DependencyNotLive',
      );
    return { dependencies };
  }

  /**
   * After a whole rollout succeeds: record the release as last stable, drop this run's pin, and prune old releases
   * (never one a link, state.json, the journal or another run's pin still names).
   */
  async function markStable(request: HostsRequest): Promise<number> {
    const inv = inventory();
    const hosts = hostsByName(inv, request.hosts);
    const keep = service(request.service).keep;
    let pruned = 0;
    await onEveryHost(hosts, config.rollout.fetchConcurrency, async (host) => {
      const lock = await lockService(transportFor(host, config), host.name, host.root, request.service, 'mark');
      if (lock.outcome !== 'locked')
        throw new HostError(host.name, `${request.service} stayed busy with another operation; try again`);
      try {
        const removed = await markOne(host, lock.transport, request, keep);
        pruned += removed;
      } finally {
        lock.release();
      }
    });
    return pruned;
  }

  async function markOne(host: HostSpec, transport: Transport, request: HostsRequest, keep: number): Promise<number> {
    const onHost = await readService(transport, host.name, host.root, request.service);
    if (onHost.state.current === request.release.id && onHost.state.lastStable !== request.release.id) {
      onHost.state = { ...onHost.state, lastStable: request.release.id };
      await writeServiceState(transport, host.name, host.root, request.service, onHost.state);
    }
    if (onHost.pins.includes(request.release.id)) {
      await unpinRelease(transport, host.name, host.root, request.service, request.release.id, request.runId);
    }
    const removed = await pruneReleases(
      transport,
      host.name,
      host.root,
      request.service,
      releasesToPrune(onHost, keep),
    );
    return removed.length;
  }

  /** Every host's state for every service, and whether the load balancer pools it: for `signalbox hosts`. */
  async function describeHosts(): Promise<
    {
      host: string;
      address: string;
      groups: string[];
      pooled: boolean | null;
      services: Record<string, ServiceOnHost | { error: string }>;
    }[]
  > {
    const inv = inventory();
    const pools = await poolStates(inv.loadBalancer).catch(() => ({}) as Record<string, boolean>);
    return eachWithLimit(inv.hosts, config.rollout.fetchConcurrency, async (host) => {
      const services: Record<string, ServiceOnHost | { error: string }> = {};
      for (const name of Object.keys(config.services)) {
        services[name] = await read(host, name).catch((err) => ({ error: (err as Error).message }));
      }
      return {
        host: host.name,
        address: `${host.address}${host.port ? `:${host.port}` : ''}`,
        groups: host.groups,
        pooled: pools[host.name] ?? null,
        services,
      };
    });
  }

  return {
    currentReleases,
    checkDependsOn,
    changesLiveEverywhere,
    fetchToHosts,
    promoteHosts,
    rollbackHosts,
    markStable,
    describeHosts,
  };
}
