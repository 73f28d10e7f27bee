// A backport's reads before anything merges: every change asked for and every change it pulls in (its open git
// parents, what its Depends-On lines name), the code branches the stations run, and which dependencies are live on
// every host. The plan (workflows/backport/changes.ts) decides from these; nothing here writes anywhere.
import type { SignalboxConfig } from '../config/load';
import type { BackportWorld, ChangeRef, ReviewedChange } from '../workflows/backport/changes';
import { STATIONS, type Station } from '../workflows/names';
import { GerritForge, type OpenChange } from './gerrit';
import { createHostActivities } from './hosts';
import { forgeFor } from './inventory';
import { CODE_REPO, CONFIG_REPO, createTrainActivities } from './train';

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
   * What the branch gained since `before` beyond this backport's changes (merge commits aside): a change merged by
   * someone else meanwhile, or a push past review. Anything listed would ship unreviewed by this backport.
   */
  async function broughtBeyond(request: {
    repo: string;
    branch: string;
    before: string;
    changeIds: string[];
  }): Promise<{ head: string; extra: { sha: string; subject: string }[] }> {
    const forge = reviews();
    const head = await forge.resolve(request.repo, `refs/heads/${request.branch}`);
    const gained = await forge.commits(request.repo, head, [request.before], MAX_BACKPORT_CHANGES * 10);
    const extra = gained
      .filter((c) => c.parents < 2 && !c.changeIds.some((id) => request.changeIds.includes(id)))
      .map(({ sha, subject }) => ({ sha, subject }));
    return { head, extra };
  }

  return { gatherBackport, broughtBeyond, backportable };
}
