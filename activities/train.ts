// The train's repository steps: branch cut and staging of the code, and wikiversions changes in the config repo.
// Each lands through the forge with a stable change id, so a retried activity lands its change once.
import type { SignalboxConfig } from '../config/load';
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { STATIONS, checkVersion, compareVersions, isVersion, nextVersion, type Station } from '../workflows/names';
import { cutBranch, type Forge } from './forge';
import { createHostActivities } from './hosts';
import { forgeFor, loadInventory } from './inventory';
import { PatchFailed, StageBlocked, stageFromForge, type Release } from './releases';

export const CODE_REPO = 'mediawiki';
export const CONFIG_REPO = 'mediawiki-config';

export interface WikiCatalog {
  /** dbname -> station group */
  groups: Record<string, Station>;
  domains: Record<string, string>;
}

export interface ConfigChange {
  release: Release;
  sha: string;
  /** parent..sha, for the SAL */
  range: string;
  alreadyLanded: boolean;
}

/**
 * Stages wmf/<version> as hosts will run it: this version's security patches applied with git am, then the code
 * service's build. Every path that deploys code comes through here, so none ships a version without its patches.
 */
export async function stageVersion(
  config: SignalboxConfig,
  f: Forge,
  version: string,
  ref = `refs/heads/wmf/${version}`,
): Promise<Release & { patches: string[] }> {
  const patchDir = path.join(config.train.securityPatches, checkVersion(version));
  const patches = fs.existsSync(patchDir)
    ? fs
        .readdirSync(patchDir)
        .filter((n) => n.endsWith('.patch'))
        .sort()
        .map((n) => path.join(patchDir, n))
    : [];
  try {
    const build = config.services[config.train.codeService]?.build;
    const release = await stageFromForge(
      f,
      loadInventory(config).stagingDir,
      config.train.codeService,
      CODE_REPO,
      ref,
      version,
      { patches, build },
    );
    return { ...release, patches: patches.map((p) => path.basename(p)) };
  } catch (err) {
    if (err instanceof PatchFailed) {
      // Embargoed: which patch and why goes to the private destinations only; the public text says no more.
      const embargoed = `${err.message}. Ask the patch's author for a rebase onto wmf/${version}, replace ${path.join(patchDir, err.patch)}, then run \`signalbox train resume ${version}\``;
      throw ApplicationFailure.create({
        message: `a security patch does not apply to wmf/${version}; the security team has the details`,
        type: 'StageBlocked',
        nonRetryable: true,
        details: [{ embargoed }],
      });
    }
    if (err instanceof StageBlocked)
      throw ApplicationFailure.nonRetryable(
        `${err.message}. Fix the build on wmf/${version}, then run \`signalbox train resume ${version}\``,
        'StageBlocked',
      );
    throw err;
  }
}

export function createTrainActivities(config: SignalboxConfig) {
  const forge = () => forgeFor(config);

  /** The version every group runs now, read from wikiversions.json on the config repo's main branch. */
  async function readStations(): Promise<{ versions: Record<Station, string>; catalog: WikiCatalog }> {
    const f = forge();
    const wikis: Record<string, { domain: string; group: Station }> = JSON.parse(
      await f.readFile(CONFIG_REPO, 'refs/heads/main', 'wikis.json'),
    );
    const wikiversions: Record<string, string> = JSON.parse(
      await f.readFile(CONFIG_REPO, 'refs/heads/main', 'wikiversions.json'),
    );
    const versions = {} as Record<Station, string>;
    for (const station of STATIONS) {
      const found = new Set(
        Object.entries(wikis)
          .filter(([, w]) => w.group === station)
          .map(([db]) => wikiversions[db]?.replace(/^php-/, '')),
      );
      versions[station] = [...found].join(',');
    }
    return {
      versions,
      catalog: {
        groups: Object.fromEntries(Object.entries(wikis).map(([db, w]) => [db, w.group])),
        domains: Object.fromEntries(Object.entries(wikis).map(([db, w]) => [db, w.domain])),
      },
    };
  }

  /**
   * The version a train started with "auto" deploys: the newest wmf/<version> branch that group2 does not run yet
   * (cut, but not yet rolled out everywhere), or else the one after what group2 runs, to be cut at stage.
   */
  async function nextTrainVersion(): Promise<string> {
    const branches = (await forge().branches(CODE_REPO)).map((b) => /^wmf\/(.+)$/.exec(b)?.[1]).filter(isVersion);
    const { versions } = await readStations();
    const newest = branches.sort(compareVersions).pop();
    return newest && isVersion(versions.group2) && compareVersions(newest, versions.group2) > 0
      ? newest
      : nextVersion(versions.group2);
  }

  /**
   * Branch cut in the code and config repositories, then stage: export wmf/<version>, apply this version's
   * security patches with git am, and name the tree. A patch that does not apply stops the train with a blocker.
   */
  async function stageCode(request: { version: string; by: string }): Promise<Release & { patches: string[] }> {
    const version = checkVersion(request.version);
    const f = forge();
    await cutBranch(f, CODE_REPO, version, request.by);
    await cutBranch(f, CONFIG_REPO, version, request.by);
    return stageVersion(config, f, version);
  }

  /** Lands a wikiversions.json that puts each group on the given version, then stages the config release. */
  async function landWikiversions(request: {
    versions: Record<Station, string>;
    subject: string;
    changeId: string;
    by: string;
  }): Promise<ConfigChange> {
    const f = forge();
    const wikis: Record<string, { group: Station }> = JSON.parse(
      await f.readFile(CONFIG_REPO, 'refs/heads/main', 'wikis.json'),
    );
    const wikiversions = Object.fromEntries(
      Object.entries(wikis).map(([db, w]) => [db, `php-${checkVersion(request.versions[w.group])}`]),
    );
    const landed = await f.land({
      repo: CONFIG_REPO,
      branch: 'main',
      files: { 'wikiversions.json': `${JSON.stringify(wikiversions, null, 2)}\n` },
      subject: request.subject,
      changeId: request.changeId,
      author: request.by,
    });
    const release = await stageFromForge(
      f,
      loadInventory(config).stagingDir,
      config.train.configService,
      CONFIG_REPO,
      landed.sha,
      'config',
      { build: config.services[config.train.configService]?.build },
    );
    const parent = await f.resolve(CONFIG_REPO, `${landed.sha}^`).catch(() => '');
    return {
      release,
      sha: landed.sha,
      range: `${parent.slice(0, 12)}..${landed.sha.slice(0, 12)}`,
      alreadyLanded: landed.alreadyLanded,
    };
  }

  /** What every host runs now, in one line for a blocker: hosts per release of each service, depooled and unreachable hosts. */
  async function fleetPicture(request: { services: string[] }): Promise<string> {
    const hosts = await createHostActivities(config).describeHosts();
    const parts: string[] = [];
    for (const service of request.services) {
      const byRelease = new Map<string, number>();
      for (const h of hosts) {
        const onHost = h.services[service];
        const release = !onHost ? 'unknown' : 'error' in onHost ? 'unreachable' : (onHost.state.current ?? 'nothing');
        byRelease.set(release, (byRelease.get(release) ?? 0) + 1);
      }
      parts.push(`${service}: ${[...byRelease].map(([release, n]) => `${n} on ${release}`).join(', ')}`);
    }
    const depooled = hosts.filter((h) => h.pooled === false).map((h) => h.host);
    parts.push(
      depooled.length
        ? `depooled: ${depooled.slice(0, 20).join(', ')}${depooled.length > 20 ? ` and ${depooled.length - 20} more` : ''}`
        : 'every host pooled',
    );
    return parts.join('; ');
  }

  return { readStations, nextTrainVersion, stageCode, landWikiversions, fleetPicture };
}
