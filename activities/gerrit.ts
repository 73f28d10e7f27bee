// Gerrit through its REST API (axios, /a/ paths with HTTP basic auth, the ")]}'" guard stripped). A change is
// created with its Change-Id footer, edited, published, given Code-Review +2 and submitted by signalbox itself,
// then awaited until MERGED. Reading history (log, ancestry, trees) uses a local mirror fetched over Gerrit's git
// HTTP endpoint, since the REST API has no log.
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import axios, { type AxiosInstance } from 'axios';
import { commitMessage, LocalGitForge, type ChangeRequest, type CommitInfo, type Forge, type LandedChange } from './forge';

const run = promisify(execFile);

export interface GerritSpec {
  url: string;
  user: string;
  /** The environment variable holding the HTTP password. */
  passwordEnv: string;
  /** How long to wait for a submitted change to show MERGED. */
  mergeTimeoutMs: number;
}

interface ChangeInfo {
  id: string;
  _number: number;
  change_id: string;
  status: 'NEW' | 'MERGED' | 'ABANDONED';
  current_revision?: string;
  revisions?: Record<string, { commit?: { parents: { commit: string }[] } }>;
}

/** Gerrit wants "I" and 40 hex digits; signalbox's own keys (branch-cut-1.41.0-wmf.26) are hashed into that form. */
export function gerritChangeId(changeId: string): string {
  return /^I[0-9a-f]{40}$/.test(changeId) ? changeId : `I${crypto.createHash('sha1').update(changeId).digest('hex')}`;
}

export class GerritError extends Error {}

export class GerritForge implements Forge {
  private readonly http: AxiosInstance;
  private readonly mirror: LocalGitForge;

  constructor(readonly spec: GerritSpec, mirrorDir: string) {
    const password = process.env[spec.passwordEnv];
    if (!password) throw new GerritError(`set ${spec.passwordEnv} to the HTTP password of Gerrit user ${spec.user}`);
    this.http = axios.create({
      baseURL: `${spec.url.replace(/\/$/, '')}/a/`,
      auth: { username: spec.user, password },
      timeout: 30_000,
      responseType: 'text',
      transformResponse: [(body: string) => body], // parsed below, after the XSSI guard is stripped
      validateStatus: () => true,
    });
    this.mirror = new LocalGitForge(mirrorDir);
  }

  private project(repo: string): string {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(repo)) throw new GerritError(`invalid repository name ${JSON.stringify(repo)}`);
    return repo;
  }

  /** One REST call; 404 gives undefined, other failures throw with Gerrit's own message. */
  private async call<T>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, data?: unknown, headers?: Record<string, string>): Promise<T | undefined> {
    const res = await this.http.request({ method, url, data, headers: { 'Content-Type': 'application/json', ...headers } });
    if (res.status === 404) return undefined;
    const text = typeof res.data === 'string' ? res.data : '';
    if (res.status >= 300) throw new GerritError(`Gerrit ${method} /a/${url}: ${res.status} ${text.trim().slice(0, 300)}`);
    const body = text.replace(/^\)\]\}'\n?/, '');
    return body.trim() ? (JSON.parse(body) as T) : (undefined as T);
  }

  private async changeFor(repo: string, branch: string, changeId: string): Promise<ChangeInfo | undefined> {
    const query = encodeURIComponent(`change:${gerritChangeId(changeId)} project:${this.project(repo)} branch:${branch}`);
    const found = await this.call<ChangeInfo[]>('GET', `changes/?q=${query}&o=CURRENT_REVISION&o=CURRENT_COMMIT`);
    return found?.[0];
  }

  async branches(repo: string): Promise<string[]> {
    const list = (await this.call<{ ref: string }[]>('GET', `projects/${encodeURIComponent(this.project(repo))}/branches/`)) ?? [];
    return list.map((b) => b.ref).filter((r) => r.startsWith('refs/heads/')).map((r) => r.slice('refs/heads/'.length));
  }

  private async branchHead(repo: string, branch: string): Promise<string | null> {
    const found = await this.call<{ revision: string }>('GET', `projects/${encodeURIComponent(this.project(repo))}/branches/${encodeURIComponent(branch)}`);
    return found?.revision ?? null;
  }

  async resolve(repo: string, ref: string): Promise<string> {
    if (/^[0-9a-f]{40}$/.test(ref)) return ref;
    if (/[~^]/.test(ref)) {
      await this.sync(repo); // a parent or ancestor: the REST API cannot say, the mirror can
      return this.mirror.resolve(repo, ref);
    }
    const branch = ref.replace(/^refs\/heads\//, '');
    const head = await this.branchHead(repo, branch);
    if (!head) throw new GerritError(`Gerrit project ${repo} has no branch ${branch}`);
    return head;
  }

  async createBranch(repo: string, branch: string, from: string): Promise<string> {
    const existing = await this.branchHead(repo, branch);
    if (existing) return existing;
    const revision = await this.resolve(repo, from);
    try {
      await this.call('PUT', `projects/${encodeURIComponent(this.project(repo))}/branches/${encodeURIComponent(branch)}`, { revision });
    } catch (err) {
      const now = await this.branchHead(repo, branch); // made meanwhile by someone else: fine
      if (!now) throw err;
      return now;
    }
    return revision;
  }

  /** The file as the change's current patch set has it, or null when absent. */
  private async fileInChange(change: ChangeInfo, file: string): Promise<string | null> {
    const res = await this.http.get(`changes/${encodeURIComponent(change.id)}/revisions/current/files/${encodeURIComponent(file)}/content`);
    if (res.status === 404 || res.status === 204) return null;
    if (res.status >= 300) throw new GerritError(`Gerrit could not read ${file} of change ${change._number}: ${res.status}`);
    return Buffer.from(String(res.data), 'base64').toString('utf8');
  }

  private async waitForMerged(change: ChangeInfo): Promise<ChangeInfo> {
    const deadline = Date.now() + this.spec.mergeTimeoutMs;
    for (;;) {
      const now = await this.call<ChangeInfo>('GET', `changes/${encodeURIComponent(change.id)}?o=CURRENT_REVISION`);
      if (now?.status === 'MERGED') return now;
      if (now?.status === 'ABANDONED') throw new GerritError(`change ${change._number} was abandoned`);
      if (Date.now() > deadline) throw new GerritError(`change ${change._number} is not MERGED after ${this.spec.mergeTimeoutMs} ms (status ${now?.status})`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** Review and submit; each step is safe to repeat after a crash. */
  private async approveAndSubmit(change: ChangeInfo): Promise<string> {
    const id = encodeURIComponent(change.id);
    await this.call('POST', `changes/${id}/revisions/current/review`, { labels: { 'Code-Review': 2 }, message: 'signalbox: approved for the train' });
    try {
      await this.call('POST', `changes/${id}/submit`, {});
    } catch (err) {
      if (!/merged/i.test((err as Error).message)) throw err; // an earlier attempt's submit that did land
    }
    return (await this.waitForMerged(change)).current_revision!;
  }

  async land(change: ChangeRequest): Promise<LandedChange> {
    const { repo, branch, files, subject, changeId, dependsOn = [] } = change;
    let existing = await this.changeFor(repo, branch, changeId);
    if (existing?.status === 'MERGED') return { sha: existing.current_revision!, changeId, alreadyLanded: true };
    if (!existing) {
      const message = commitMessage(subject, gerritChangeId(changeId), dependsOn);
      existing = await this.call<ChangeInfo>('POST', 'changes/', { project: this.project(repo), branch, subject: message });
      if (!existing) throw new GerritError(`Gerrit did not create the change on ${repo} ${branch}`);
    }
    const id = encodeURIComponent(existing.id);
    const stale: string[] = [];
    for (const [file, content] of Object.entries(files)) if ((await this.fileInChange(existing, file)) !== content) stale.push(file);
    if (stale.length) {
      for (const file of stale) {
        const content = Buffer.from(files[file]).toString('base64');
        await this.call('PUT', `changes/${id}/edit/${encodeURIComponent(file)}`, { binary_content: `data:text/plain;base64,${content}` });
      }
      await this.call('POST', `changes/${id}/edit:publish`, { notify: 'NONE' });
    }
    return { sha: await this.approveAndSubmit(existing), changeId, alreadyLanded: false };
  }

  /** Reverts through Gerrit's own revert, so the review links the two; a repeat finds the revert it made. */
  async revert(repo: string, branch: string, sha: string, changeId: string, _author: string, reason: string): Promise<LandedChange> {
    const found = await this.call<ChangeInfo[]>('GET', `changes/?q=${encodeURIComponent(`commit:${sha} project:${this.project(repo)}`)}`);
    const original = found?.[0];
    if (!original) throw new GerritError(`${sha} is not a change in Gerrit project ${repo}; nothing to revert`);
    const reverts = await this.call<ChangeInfo[]>('GET', `changes/?q=${encodeURIComponent(`revertof:${original._number} branch:${branch}`)}&o=CURRENT_REVISION`);
    let revert = reverts?.[0];
    if (revert?.status === 'MERGED') return { sha: revert.current_revision!, changeId, alreadyLanded: true };
    revert ??= await this.call<ChangeInfo>('POST', `changes/${encodeURIComponent(original.id)}/revert`, { message: `Revert "${sha.slice(0, 10)}"\n\n${reason}\n\nThis reverts commit ${sha}.\n\nChange-Id: ${gerritChangeId(changeId)}\n`, notify: 'NONE' });
    if (!revert) throw new GerritError(`Gerrit did not revert change ${original._number}`);
    return { sha: await this.approveAndSubmit(revert), changeId, alreadyLanded: false };
  }

  /** Brings the local mirror's branches up to date with Gerrit's, over git's HTTP protocol. */
  private async sync(repo: string): Promise<void> {
    await this.mirror.init(this.project(repo));
    const auth = Buffer.from(`${this.spec.user}:${process.env[this.spec.passwordEnv]}`).toString('base64');
    await run('git', ['-c', `http.extraHeader=Authorization: Basic ${auth}`, 'fetch', '--quiet', '--prune', `${this.spec.url.replace(/\/$/, '')}/a/${repo}`, '+refs/heads/*:refs/heads/*'], {
      cwd: path.join(this.mirror.reposDir, `${repo}.git`),
      timeout: 600_000,
    });
  }

  async readFile(repo: string, ref: string, file: string): Promise<string> {
    await this.sync(repo);
    return this.mirror.readFile(repo, ref, file);
  }

  async exportTree(repo: string, ref: string, dest: string): Promise<void> {
    await this.sync(repo);
    return this.mirror.exportTree(repo, ref, dest);
  }

  async commits(repo: string, head: string, exclude: string[], limit: number): Promise<CommitInfo[]> {
    await this.sync(repo);
    return this.mirror.commits(repo, head, exclude, limit);
  }

  async findChange(repo: string, changeId: string): Promise<string[]> {
    await this.sync(repo);
    return this.mirror.findChange(repo, gerritChangeId(changeId));
  }

  async isAncestor(repo: string, ancestor: string, descendant: string): Promise<boolean> {
    await this.sync(repo);
    return this.mirror.isAncestor(repo, ancestor, descendant);
  }
}
