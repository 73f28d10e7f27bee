// The train's repository steps: branch cut and staging of the code, and wikiversions changes in the config repo.
// Each lands through the forge with a stable change id, so a retried activity lands its change once.
import type { SignalboxConfig } from '../config/load';
import { STATIONS, checkVersion, type Station } from '../workflows/names';
import { cutBranch } from './forge';
import { forgeFor, loadInventory } from './inventory';
import { stageFromForge, type Release } from './releases';

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
  alreadyLanded: boolean;
}

export function createTrainActivities(config: SignalboxConfig) {
  const forge = () => forgeFor(loadInventory(config));

  /** The version every group runs now, read from wikiversions.json on the config repo's main branch. */
  async function readStations(): Promise<{ versions: Record<Station, string>; catalog: WikiCatalog }> {
    const f = forge();
    const wikis: Record<string, { domain: string; group: Station }> = JSON.parse(await f.readFile(CONFIG_REPO, 'refs/heads/main', 'wikis.json'));
    const wikiversions: Record<string, string> = JSON.parse(await f.readFile(CONFIG_REPO, 'refs/heads/main', 'wikiversions.json'));
    const versions = {} as Record<Station, string>;
    for (const station of STATIONS) {
      const found = new Set(Object.entries(wikis).filter(([, w]) => w.group === station).map(([db]) => wikiversions[db]?.replace(/^php-/, '')));
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

  async function stageCode(request: { version: string; by: string }): Promise<Release> {
    const version = checkVersion(request.version);
    const f = forge();
    await cutBranch(f, CODE_REPO, version, request.by);
    return stageFromForge(f, loadInventory(config).stagingDir, config.train.codeService, CODE_REPO, `refs/heads/wmf/${version}`, version);
  }

  /** Lands a wikiversions.json that puts each group on the given version, then stages the config release. */
  async function landWikiversions(request: { versions: Record<Station, string>; subject: string; changeId: string; by: string }): Promise<ConfigChange> {
    const f = forge();
    const wikis: Record<string, { group: Station }> = JSON.parse(await f.readFile(CONFIG_REPO, 'refs/heads/main', 'wikis.json'));
    const wikiversions = Object.fromEntries(Object.entries(wikis).map(([db, w]) => [db, `php-${checkVersion(request.versions[w.group])}`]));
    const landed = await f.land({
      repo: CONFIG_REPO,
      branch: 'main',
      files: { 'wikiversions.json': `${JSON.stringify(wikiversions, null, 2)}\n` },
      subject: request.subject,
      changeId: request.changeId,
      author: request.by,
    });
    const release = await stageFromForge(f, loadInventory(config).stagingDir, config.train.configService, CONFIG_REPO, landed.sha, 'config');
    return { release, sha: landed.sha, alreadyLanded: landed.alreadyLanded };
  }

  return { readStations, stageCode, landWikiversions };
}
