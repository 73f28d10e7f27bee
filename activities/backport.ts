// A backport's reads before anything merges: every change asked for and every change it pulls in (its open git
// parents, what its Depends-On lines name), the code branches the stations run, and which dependencies are live on
// every host. The plan (workflows/backport/changes.ts) decides from these; nothing here writes anywhere.
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { SignalboxConfig } from '../config/load';
import type { BackportWorld, ChangeRef, ReviewedChange } from '../workflows/backport/changes';
import { checkReleaseId, checkServiceName, STATIONS, type Station } from '../workflows/names';
import { GerritForge, type OpenChange } from './gerrit';
import { createHostActivities } from './hosts';
import { forgeFor, loadInventory } from './inventory';
import { releaseSource, stageFromForge, treeHash, type Release } from './releases';
import { CODE_REPO, CONFIG_REPO, createTrainActivities, stageVersion } from './train';

/** Beyond this many changes pulled in, the backport is refused rather than read on without end. */
export const MAX_BACKPORT_CHANGES = 100;

export function createBackportActivities(config: SignalboxConfig) {
  function reviews(): GerritForge {
    const forge = forgeFor(config);
    if (!(forge instanceof GerritForge))
      throw new Error(
        'backports merge reviewed changes, so they need a code review forge: set forge.gerrit in signalbox.yml (url, user, passwordEnv)',
      );
    return forge;
  }

  /** The code branches some station runs (wmf/<version>), with those stations. */
  async function liveCodeBranches(): Promise<Record<string, Station[]>> {
    const { versions } = await createTrainActivities(config).readStations();
    const live: Record<string, Station[]> = {};
    for (const station of STATIONS)
      for (const version of versions[station].split(',').filter(Boolean)) (live[`wmf/${version}`] ??= []).push(station);
    return live;
  }

  /** Open changes a backport could take: on config main, or on a code branch some station runs. */
  async function backportable(): Promise<OpenChange[]> {
    const branches = Object.keys(await liveCodeBranches()).map((branch) => ({ project: CODE_REPO, branch }));
    return reviews().openChanges([{ project: CONFIG_REPO, branch: 'main' }, ...branches]);
  }

  async function gatherBackport(request: { changes: ChangeRef[] }): Promise<BackportWorld> {
    const forge = reviews();
    const requested: number[] = [];
    const asked: BackportWorld['asked'] = {};
    for (const ref of request.changes) {
      if (ref.forge === 'github')
        throw new Error(`${ref.repository}#${ref.number} is a GitHub pull request; this forge is Gerrit`);
      requested.push(ref.number);
      asked[ref.number] = { project: ref.project, patchset: ref.patchset };
    }
    const changes: Record<number, ReviewedChange> = {};
    const unreadable: Record<number, string> = {};
    const resolved: Record<string, number[]> = {};
    const queue = [...requested];
    while (queue.length) {
      const number = queue.shift()!;
      if (changes[number] || unreadable[number]) continue;
      if (Object.keys(changes).length >= MAX_BACKPORT_CHANGES) {
        unreadable[number] = `more than ${MAX_BACKPORT_CHANGES} changes are pulled in; ship them in smaller backports`;
        continue;
      }
      const change = await forge.reviewedChange(number);
      if (!change) {
        unreadable[number] = `Gerrit has no change ${number} that ${config.forge!.gerrit!.user} may see`;
        continue;
      }
      changes[number] = change;
      queue.push(...change.parents);
      for (const text of change.dependsOn) {
        resolved[text] ??= await forge.changesNamedBy(text);
        queue.push(...resolved[text]);
      }
    }
    const liveBranches = await liveCodeBranches();
    // Only merged changes something depends on need the hosts read.
    const depended = new Set(Object.values(resolved).flat());
    const mergedDependencies = Object.values(changes)
      .filter((c) => c.status === 'merged' && depended.has(c.number))
      .map((c) => c.changeId);
    const { live } = mergedDependencies.length
      ? await createHostActivities(config).changesLiveEverywhere({ changeIds: [...new Set(mergedDependencies)] })
      : { live: [] };
    return {
      requested,
      asked,
      changes,
      resolved,
      unreadable,
      codeRepo: CODE_REPO,
      configRepo: CONFIG_REPO,
      configBranch: 'main',
      liveBranches,
      liveEverywhere: live,
    };
  }

  /**
   * What a release would ship beyond this backport's changes (merge commits aside): the commits of `head` that no
   * release the hosts run was built from. That is a change merged by someone else meanwhile, a push past review, or
   * one merged earlier and never deployed (seed 001). Anything listed would ship unreviewed by this backport. When
   * a running release has no recorded source, `before` (the branch head before the merges) stands in for it.
   */
  async function broughtBeyond(request: {
    repo: string;
    service: string;
    head: string;
    before: string;
    running: string[];
    changeIds: string[];
  }): Promise<{ extra: { sha: string; subject: string }[] }> {
    const forge = reviews();
    const exclude = new Set<string>();
    for (const id of new Set(request.running)) {
      const source = releaseSource(loadInventory(config).stagingDir, request.service, id);
      if (source?.repo === request.repo) source.shas.forEach((sha) => exclude.add(sha));
      else exclude.add(request.before);
    }
    if (!exclude.size) exclude.add(request.before);
    const gained = await forge.commits(request.repo, request.head, [...exclude], MAX_BACKPORT_CHANGES * 10);
    // A change reverted within the same range ships nothing (an aborted backport and its revert): both drop out.
    const cancelled = new Set(
      gained.flatMap((c) =>
        c.reverts.filter((sha) => gained.some((g) => g.sha === sha)).flatMap((sha) => [sha, c.sha]),
      ),
    );
    const extra = gained
      .filter(
        (c) => c.parents < 2 && !cancelled.has(c.sha) && !c.changeIds.some((id) => request.changeIds.includes(id)),
      )
      .map(({ sha, subject }) => ({ sha, subject }));
    return { extra };
  }

  /** A release already staged, by its id, to put hosts back on it. */
  async function stagedRelease(request: { service: string; id: string }): Promise<Release> {
    const { stagingDir } = loadInventory(config);
    const dir = path.join(stagingDir, checkServiceName(request.service), checkReleaseId(request.id));
    if (!fs.existsSync(dir))
      throw ApplicationFailure.nonRetryable(`release ${request.id} of ${request.service} is not staged`, 'BadInput');
    const source = releaseSource(stagingDir, request.service, request.id);
    return {
      id: request.id,
      name: request.id.slice(0, -13),
      service: request.service,
      contentHash: treeHash(dir),
      sha: source?.shas[source.shas.length - 1] ?? 'staged',
    };
  }

  /** Merges a checked change as the deployer (GerritForge.mergeReviewed: refuses a new patch set, a -2, failing CI). */
  async function mergeChange(request: { number: number; patchset: number; deployer: string }) {
    return reviews().mergeReviewed({ ...request, requireHumanReview: config.backport.requireHumanReview });
  }

  /** The change's current patch set, for a confirmation that takes a new one. */
  async function currentPatchset(request: { number: number }): Promise<number> {
    const change = await reviews().reviewedChange(request.number);
    if (!change) throw ApplicationFailure.nonRetryable(`Gerrit change ${request.number} is gone`, 'ChangeGone');
    return change.patchset;
  }

  async function branchHead(request: { repo: string; branch: string }): Promise<string> {
    return reviews().resolve(request.repo, `refs/heads/${request.branch}`);
  }

  /**
   * Stages exactly the commit that was checked: config as a release of the config service, code through the
   * train's own stage path (its security patches and build). The test servers and production get this one release.
   */
  async function stageBackport(request: { repo: string; branch: string; sha: string }): Promise<Release> {
    const forge = reviews();
    if (request.repo === CONFIG_REPO)
      return stageFromForge(
        forge,
        loadInventory(config).stagingDir,
        config.train.configService,
        CONFIG_REPO,
        request.sha,
        'config',
        { build: config.services[config.train.configService]?.build },
      );
    const version = /^wmf\/(.+)$/.exec(request.branch)?.[1];
    if (request.repo !== CODE_REPO || !version)
      throw ApplicationFailure.nonRetryable(
        `${request.repo} ${request.branch} is not a branch backports deploy`,
        'BadInput',
      );
    return stageVersion(config, forge, version, request.sha);
  }

  /** Reverts one merged change through the forge; a repeat finds the revert it made (GerritForge.revert). */
  async function revertChange(request: {
    repo: string;
    branch: string;
    sha: string;
    changeId: string;
    by: string;
    reason: string;
  }): Promise<{ sha: string }> {
    const { repo, branch, sha, changeId, by, reason } = request;
    return reviews().revert(repo, branch, sha, changeId, by, reason);
  }

  /** The test servers: the hosts of a group (backport.testHosts), and how to reach them. */
  async function testServers(request: { group: string }): Promise<{ host: string; address: string; port?: number }[]> {
    return loadInventory(config)
      .hosts.filter((h) => h.groups.includes(request.group))
      .map((h) => ({ host: h.name, address: h.address, port: h.port }));
  }

  return {
    gatherBackport,
    broughtBeyond,
    backportable,
    mergeChange,
    currentPatchset,
    branchHead,
    stageBackport,
    revertChange,
    testServers,
    stagedRelease,
  };
}
