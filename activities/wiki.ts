// Asking the wikis themselves which version they run (siteinfo's generator), as the runbook's "verify production
// has indeed switched" step does by hand.
import { ApplicationFailure } from '@temporalio/common';
import type { SignalboxConfig } from '../config/load';
import { httpGet } from './checks';
import { eachWithLimit } from './hosts';
import { loadInventory } from './inventory';
import { poolStates } from './loadbalancer';

export interface VerifyRequest {
  /** dbname -> the version it must answer with */
  expected: Record<string, string>;
  domains: Record<string, string>;
  everyMs: number;
  timeoutMs: number;
}

export function createWikiActivities(config: SignalboxConfig) {
  async function liveVersions(domains: Record<string, string>, dbnames: string[]): Promise<{ host: string; wiki: string; version: string | null; error?: string }[]> {
    const inventory = loadInventory(config);
    const pools = await poolStates(inventory.loadBalancer).catch(() => ({} as Record<string, boolean>));
    const hosts = inventory.hosts.filter((h) => pools[h.name] !== false);
    const pairs = hosts.flatMap((host) => dbnames.map((wiki) => ({ host, wiki })));
    return eachWithLimit(pairs, 64, async ({ host, wiki }) => {
      try {
        const res = await httpGet(`http://${host.address}:${host.port}/w/api.php?action=query&meta=siteinfo&format=json`, domains[wiki], 5000);
        const generator: string | undefined = JSON.parse(res.body)?.query?.general?.generator;
        return { host: host.name, wiki, version: generator?.replace(/^MediaWiki /, '') ?? null, error: generator ? undefined : `HTTP ${res.status}` };
      } catch (err) {
        return { host: host.name, wiki, version: null, error: (err as Error).message };
      }
    });
  }

  /** Polls every pooled host for every wiki until each answers with its expected version, or the time runs out. */
  async function verifyLiveVersions(request: VerifyRequest): Promise<{ checked: number; attempts: number }> {
    const deadline = Date.now() + request.timeoutMs;
    const dbnames = Object.keys(request.expected);
    for (let attempts = 1; ; attempts++) {
      const answers = await liveVersions(request.domains, dbnames);
      const wrong = answers.filter((a) => a.version !== request.expected[a.wiki]);
      if (wrong.length === 0) return { checked: answers.length, attempts };
      if (Date.now() + request.everyMs > deadline) {
        const sample = wrong.slice(0, 5).map((w) => `${w.host}/${w.wiki}: ${w.version ?? w.error} (expected ${request.expected[w.wiki]})`);
        throw ApplicationFailure.nonRetryable(`${wrong.length} of ${answers.length} wiki answers do not show the expected version after ${attempts} checks: ${sample.join('; ')}`, 'VersionMismatch');
      }
      await new Promise((r) => setTimeout(r, request.everyMs));
    }
  }

  return { verifyLiveVersions };
}
