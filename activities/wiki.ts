// Asking the wikis themselves which version they run (siteinfo's generator), as the runbook's "verify production
// has indeed switched" step does by hand.
import { ApplicationFailure } from '@temporalio/common';
import type { SignalboxConfig } from '../config/load';
import { httpGet } from './checks';
import { eachWithLimit } from './hosts';
import { fill, loadInventory } from './inventory';
import { checkVersion } from '../workflows/names';
import { poolStates } from './loadbalancer';

export interface VerifyRequest {
  /** dbname -> the version it must answer with */
  expected: Record<string, string>;
  domains: Record<string, string>;
  everyMs: number;
  timeoutMs: number;
}

export function createWikiActivities(config: SignalboxConfig) {
  /** What each pooled host says each wiki runs; `only` limits it to those host/wiki pairs. */
  async function liveVersions(
    domains: Record<string, string>,
    dbnames: string[],
    only: string[] | null = null,
  ): Promise<{ host: string; wiki: string; version: string | null; error?: string }[]> {
    const inventory = loadInventory(config);
    const pools = await poolStates(inventory.loadBalancer).catch(() => ({}) as Record<string, boolean>);
    const hosts = inventory.hosts.filter((h) => pools[h.name] !== false);
    const wanted = only && new Set(only);
    const pairs = hosts
      .flatMap((host) => dbnames.map((wiki) => ({ host, wiki })))
      .filter((p) => !wanted || wanted.has(`${p.host.name}/${p.wiki}`));
    return eachWithLimit(pairs, 64, async ({ host, wiki }) => {
      try {
        const res = await httpGet(
          `http://${host.address}:${host.port}/w/api.php?action=query&meta=siteinfo&format=json`,
          domains[wiki],
          5000,
        );
        const generator: string | undefined = JSON.parse(res.body)?.query?.general?.generator;
        return {
          host: host.name,
          wiki,
          version: generator?.replace(/^MediaWiki /, '') ?? null,
          error: generator ? undefined : `HTTP ${res.status}`,
        };
      } catch (err) {
        return { host: host.name, wiki, version: null, error: (err as Error).message };
      }
    });
  }

  /**
   * Polls every pooled host for every wiki until each has answered once with its expected version, or the time
   * runs out. Only pairs not yet confirmed are asked again, so an error page from a sometimes-failing release
   * (which the error watch judges) is not mistaken for the wrong version.
   */
  async function verifyLiveVersions(request: VerifyRequest): Promise<{ checked: number; attempts: number }> {
    const deadline = Date.now() + request.timeoutMs;
    let pending: string[] | null = null;
    let checked = 0;
    for (let attempts = 1; ; attempts++) {
      const answers = await liveVersions(request.domains, Object.keys(request.expected), pending);
      if (pending === null) checked = answers.length;
      // No pooled host to ask is not a pass: a fleet that serves nothing has not switched to anything.
      if (checked === 0)
        throw ApplicationFailure.nonRetryable(
          'no pooled host answered the live-version check: every host is depooled',
          'VersionMismatch',
        );
      const wrong = answers.filter((a) => a.version !== request.expected[a.wiki]);
      if (wrong.length === 0) return { checked, attempts };
      pending = wrong.map((w) => `${w.host}/${w.wiki}`);
      if (Date.now() + request.everyMs > deadline) {
        const sample = wrong
          .slice(0, 5)
          .map((w) => `${w.host}/${w.wiki}: ${w.version ?? w.error} (expected ${request.expected[w.wiki]})`);
        throw ApplicationFailure.nonRetryable(
          `${wrong.length} of ${checked} wiki answers do not show the expected version after ${attempts} checks: ${sample.join('; ')}`,
          'VersionMismatch',
        );
      }
      await new Promise((r) => setTimeout(r, request.everyMs));
    }
  }

  /**
   * Sets the roadmap row of `version` to the group it is deployed to ("0", "1", "2", or "" before group0), adding
   * the row when the branch is new. The row is set, not toggled, so a retried edit changes nothing more.
   */
  async function updateRoadmap(request: {
    version: string;
    deployedTo: string;
    date: string;
    by: string;
  }): Promise<{ changed: boolean; revid?: number }> {
    const roadmap = config.roadmap;
    if (!roadmap) return { changed: false };
    const vars = loadInventory(config).vars;
    const api = new MediaWikiApi(fill(roadmap.api, vars));
    if (roadmap.user) {
      // A real wiki's bot password comes from the environment; the sandbox wiki's from the sandbox.
      const password = roadmap.passwordEnv ? process.env[roadmap.passwordEnv] : vars.sandboxWikiPassword;
      if (!password)
        throw ApplicationFailure.nonRetryable(
          `roadmap.user is set but ${roadmap.passwordEnv ? `$${roadmap.passwordEnv} is empty` : 'roadmap.passwordEnv is not'}; set the bot password there`,
          'BadInput',
        );
      await api.login(roadmap.user, password);
    }
    const current = await api.read(roadmap.page);
    const text = setRoadmapRow(
      current ?? '{{WMFReleaseTableHead}}\n{{WMFReleaseTableFooter}}\n',
      checkVersion(request.version),
      request.deployedTo,
      request.date,
    );
    if (text === current) return { changed: false };
    const edit = await api.edit(
      roadmap.page,
      text,
      `${request.version} deployed to ${request.deployedTo === '' ? 'no group' : `group${request.deployedTo}`} (${request.by})`,
    );
    return { changed: true, revid: edit.newrevid };
  }

  return { verifyLiveVersions, updateRoadmap };
}

/** Replaces the third parameter of {{WMFReleaseTableRow|<wmf N>|<date>|<group>}}, or adds the row before the footer. */
export function setRoadmapRow(text: string, version: string, deployedTo: string, date: string): string {
  const wmf = version.split('wmf.')[1];
  const row = new RegExp(`\\{\\{WMFReleaseTableRow\\|${wmf}\\|([^|}]*)\\|[^|}]*((?:\\|[^}]*)?)\\}\\}`);
  if (row.test(text))
    return text.replace(
      row,
      (_m, rowDate: string, rest: string) => `{{WMFReleaseTableRow|${wmf}|${rowDate}|${deployedTo}${rest}}}`,
    );
  const added = `{{WMFReleaseTableRow|${wmf}|${date}|${deployedTo}}}`;
  return text.includes('{{WMFReleaseTableFooter}}')
    ? text.replace('{{WMFReleaseTableFooter}}', `${added}\n{{WMFReleaseTableFooter}}`)
    : `${text.trimEnd()}\n${added}\n`;
}

/** The few MediaWiki action API calls an edit needs: login with a bot password, read, CSRF token, edit. */
class MediaWikiApi {
  private cookies = new Map<string, string>();
  constructor(readonly url: string) {}

  private async call(params: Record<string, string>, post = false): Promise<any> {
    const query = new URLSearchParams({ ...params, format: 'json', formatversion: '2' });
    const headers: Record<string, string> = {
      cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
      'user-agent': 'signalbox (train roadmap)',
    };
    const res = post
      ? await fetch(this.url, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
          body: query,
          signal: AbortSignal.timeout(15_000),
        })
      : await fetch(`${this.url}?${query}`, { headers, signal: AbortSignal.timeout(15_000) });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const at = pair.indexOf('=');
      this.cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    if (!res.ok) throw new Error(`${this.url} answered HTTP ${res.status}`);
    const body: any = await res.json();
    if (body.error) throw new Error(`${this.url}: ${body.error.code}: ${body.error.info}`);
    return body;
  }

  async login(user: string, password: string): Promise<void> {
    const token = (await this.call({ action: 'query', meta: 'tokens', type: 'login' })).query.tokens.logintoken;
    const result = (await this.call({ action: 'login', lgname: user, lgpassword: password, lgtoken: token }, true))
      .login;
    if (result.result !== 'Success')
      throw ApplicationFailure.nonRetryable(
        `login to ${this.url} as ${user} failed: ${result.reason ?? result.result}`,
        'BadInput',
      );
  }

  async read(title: string): Promise<string | null> {
    const page = (
      await this.call({
        action: 'query',
        prop: 'revisions',
        titles: title,
        rvprop: 'content|timestamp',
        rvslots: 'main',
      })
    ).query.pages[0];
    return page.missing ? null : page.revisions[0].slots.main.content;
  }

  async edit(title: string, text: string, summary: string): Promise<{ newrevid?: number }> {
    const token = (await this.call({ action: 'query', meta: 'tokens', type: 'csrf' })).query.tokens.csrftoken;
    return (await this.call({ action: 'edit', title, text, summary, token, bot: '1' }, true)).edit;
  }
}
