// Gerrit through its REST API (axios, /a/ paths with HTTP basic auth, the ")]}'" guard stripped). A change is
// created with its Change-Id footer, edited, published, given Code-Review +2 and submitted by signalbox itself,
// then awaited until MERGED. Before it approves anything, signalbox checks that it made the change itself (its own
// account owns it and uploaded the patch set) and that the patch set holds exactly the files it asked for, so
// nobody can plant a change under a Change-Id signalbox will use. Reading history (log, ancestry, trees) uses a
// local mirror fetched over Gerrit's git HTTP endpoint, since the REST API has no log.
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import axios, { type AxiosInstance } from 'axios';
import type { GerritSpec } from '../config/load';
import { parseChangeRef, type ReviewedChange } from '../workflows/backport/changes';
import {
  commitMessage,
  LocalGitForge,
  trailersOf,
  type ChangeRequest,
  type CommitInfo,
  type Forge,
  type LandedChange,
} from './forge';

const run = promisify(execFile);

interface AccountInfo {
  _account_id: number;
  username?: string;
  name?: string;
}

interface ChangeInfo {
  id: string;
  _number: number;
  change_id: string;
  status: 'NEW' | 'MERGED' | 'ABANDONED';
  /** With o=DETAILED_ACCOUNTS, the owner's username and name too. */
  owner: AccountInfo;
  current_revision?: string;
  revisions?: Record<
    string,
    { _number: number; uploader?: AccountInfo; commit?: { parents: { commit: string }[]; message?: string } }
  >;
  project?: string;
  branch?: string;
  subject?: string;
  work_in_progress?: boolean;
  /** With o=DETAILED_LABELS: every vote on each label. */
  labels?: Record<string, { all?: { value?: number; _account_id: number; username?: string; name?: string }[] }>;
}

/** What every change read asks for: the current patch set with its uploader, and who people are. */
const CHANGE_DETAIL = 'o=CURRENT_REVISION&o=DETAILED_ACCOUNTS';

const accountName = (a: AccountInfo | undefined) =>
  a ? `${a.username ?? a.name ?? 'account'} (account ${a._account_id})` : 'an unknown account';

/** Gerrit wants "I" and 40 hex digits; signalbox's own keys (branch-cut-1.41.0-wmf.26) are hashed into that form. */
export function gerritChangeId(changeId: string): string {
  return /^I[0-9a-f]{40}$/.test(changeId) ? changeId : `I${crypto.createHash('sha1').update(changeId).digest('hex')}`;
}

export class GerritError extends Error {}

/** An open change a backport could take: `blocked` says why it cannot go now. */
export interface OpenChange {
  number: number;
  project: string;
  branch: string;
  subject: string;
  owner: string;
  /** Someone has voted Code-Review +2. */
  approved: boolean;
  blocked?: string;
}

/**
 * The environment a git child needs to authenticate to Gerrit: the basic auth header as config given through
 * GIT_CONFIG_COUNT/KEY/VALUE (after any the caller already set), scoped to Gerrit's URL so no other host gets it.
 */
export function gitCredentialEnv(
  gerritUrl: string,
  user: string,
  password: string,
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const index = Number(env.GIT_CONFIG_COUNT ?? 0) || 0;
  const header = `Authorization: Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  return {
    ...env,
    GIT_CONFIG_COUNT: String(index + 1),
    [`GIT_CONFIG_KEY_${index}`]: `http.${gerritUrl.replace(/\/$/, '')}/.extraHeader`,
    [`GIT_CONFIG_VALUE_${index}`]: header,
    GIT_TERMINAL_PROMPT: '0', // a refused password fails at once instead of waiting for a person to type one
  };
}

export class GerritForge implements Forge {
  private readonly http: AxiosInstance;
  private readonly mirror: LocalGitForge;
  private selfAccount?: Promise<AccountInfo>;

  constructor(
    readonly spec: GerritSpec,
    mirrorDir: string,
  ) {
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
  private async call<T>(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    url: string,
    data?: unknown,
    headers?: Record<string, string>,
  ): Promise<T | undefined> {
    const res = await this.http.request({
      method,
      url,
      data,
      headers: { 'Content-Type': 'application/json', ...headers },
    });
    if (res.status === 404) return undefined;
    const text = typeof res.data === 'string' ? res.data : '';
    if (res.status >= 300)
      throw new GerritError(`Gerrit ${method} /a/${url}: ${res.status} ${text.trim().slice(0, 300)}`);
    const body = text.replace(/^\)\]\}'\n?/, '');
    return body.trim() ? (JSON.parse(body) as T) : (undefined as T);
  }

  private async changeFor(repo: string, branch: string, changeId: string): Promise<ChangeInfo | undefined> {
    const query = encodeURIComponent(
      `change:${gerritChangeId(changeId)} project:${this.project(repo)} branch:${branch}`,
    );
    const found = await this.call<ChangeInfo[]>('GET', `changes/?q=${query}&${CHANGE_DETAIL}`);
    return found?.[0];
  }

  private async change(id: string): Promise<ChangeInfo> {
    const found = await this.call<ChangeInfo>('GET', `changes/${encodeURIComponent(id)}?${CHANGE_DETAIL}`);
    if (!found) throw new GerritError(`Gerrit change ${id} is gone`);
    return found;
  }

  /** The account signalbox signs in as. */
  private self(): Promise<AccountInfo> {
    this.selfAccount ??= this.call<AccountInfo>('GET', 'accounts/self').then((a) => {
      if (!a) throw new GerritError(`Gerrit has no account for user ${this.spec.user}`);
      return a;
    });
    this.selfAccount.catch(() => (this.selfAccount = undefined)); // asked again after a failure
    return this.selfAccount;
  }

  private async planted(change: ChangeInfo, what: string): Promise<ApplicationFailure> {
    const self = await this.self();
    return ApplicationFailure.nonRetryable(
      `Gerrit change ${change._number} (Change-Id ${change.change_id}, owner ${accountName(change.owner)}) ${what}; signalbox (${accountName(self)}) did not make it, so it will neither approve nor submit it. Find out who uploaded it; the Change-Id stays taken on this branch`,
      'ChangePlanted',
    );
  }

  /** Throws ChangePlanted unless signalbox's own account owns the change and uploaded its current patch set. */
  private async assertMadeBySignalbox(change: ChangeInfo): Promise<void> {
    const self = await this.self();
    if (change.owner._account_id !== self._account_id)
      throw await this.planted(change, `is owned by ${accountName(change.owner)}`);
    const revision = change.current_revision ? change.revisions?.[change.current_revision] : undefined;
    if (revision?.uploader?._account_id !== self._account_id)
      throw await this.planted(
        change,
        `has patch set ${revision?._number ?? '?'} uploaded by ${accountName(revision?.uploader)}`,
      );
  }

  /** Throws ChangePlanted unless the patch set changes only the requested files and holds each as requested. */
  private async assertHoldsExactly(change: ChangeInfo, revision: string, files: Record<string, string>): Promise<void> {
    const listed =
      (await this.call<Record<string, unknown>>(
        'GET',
        `changes/${encodeURIComponent(change.id)}/revisions/${revision}/files`,
      )) ?? {};
    const extra = Object.keys(listed).filter((f) => !f.startsWith('/') && !(f in files)); // "/COMMIT_MSG" and the like are not files
    const differing: string[] = [];
    for (const [file, content] of Object.entries(files))
      if ((await this.fileInChange(change, file, revision)) !== content) differing.push(file);
    if (extra.length || differing.length) {
      const parts = [
        extra.length ? `also changes ${extra.join(', ')}` : '',
        differing.length ? `holds ${differing.join(', ')} other than signalbox asked` : '',
      ];
      throw await this.planted(
        change,
        `has patch set ${change.revisions?.[revision]?._number ?? revision.slice(0, 12)} that ${parts.filter(Boolean).join(' and ')}`,
      );
    }
  }

  async branches(repo: string): Promise<string[]> {
    const list =
      (await this.call<{ ref: string }[]>('GET', `projects/${encodeURIComponent(this.project(repo))}/branches/`)) ?? [];
    return list
      .map((b) => b.ref)
      .filter((r) => r.startsWith('refs/heads/'))
      .map((r) => r.slice('refs/heads/'.length));
  }

  private async branchHead(repo: string, branch: string): Promise<string | null> {
    const found = await this.call<{ revision: string }>(
      'GET',
      `projects/${encodeURIComponent(this.project(repo))}/branches/${encodeURIComponent(branch)}`,
    );
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
      await this.call(
        'PUT',
        `projects/${encodeURIComponent(this.project(repo))}/branches/${encodeURIComponent(branch)}`,
        { revision },
      );
    } catch (err) {
      const now = await this.branchHead(repo, branch); // made meanwhile by someone else: fine
      if (!now) throw err;
      return now;
    }
    return revision;
  }

  /** The file as a patch set of the change (the current one unless named) has it, or null when absent. */
  private async fileInChange(change: ChangeInfo, file: string, revision = 'current'): Promise<string | null> {
    const res = await this.http.get(
      `changes/${encodeURIComponent(change.id)}/revisions/${revision}/files/${encodeURIComponent(file)}/content`,
    );
    if (res.status === 404 || res.status === 204) return null;
    if (res.status >= 300)
      throw new GerritError(`Gerrit could not read ${file} of change ${change._number}: ${res.status}`);
    return Buffer.from(String(res.data), 'base64').toString('utf8');
  }

  /** Submits; a refusal stands unless the change is merged after all (an earlier attempt's submit that landed). */
  private async submitted(change: ChangeInfo, url: string): Promise<void> {
    try {
      await this.call('POST', url, {});
    } catch (err) {
      const now = await this.call<ChangeInfo>('GET', `changes/${encodeURIComponent(change.id)}`);
      if (now?.status !== 'MERGED') throw err;
    }
  }

  private async waitForMerged(change: ChangeInfo): Promise<ChangeInfo> {
    const deadline = Date.now() + this.spec.mergeTimeoutMs;
    for (;;) {
      const now = await this.call<ChangeInfo>('GET', `changes/${encodeURIComponent(change.id)}?${CHANGE_DETAIL}`);
      if (now?.status === 'MERGED') return now;
      if (now?.status === 'ABANDONED') throw new GerritError(`change ${change._number} was abandoned`);
      if (Date.now() > deadline)
        throw new GerritError(
          `change ${change._number} is not MERGED after ${this.spec.mergeTimeoutMs} ms (status ${now?.status})`,
        );
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /**
   * Review and submit; each step is safe to repeat after a crash. The +2 goes on the patch set that was checked,
   * not on "current": a patch set uploaded after the check has no +2, so Gerrit will not submit it.
   */
  private async approveAndSubmit(change: ChangeInfo, revision: string): Promise<string> {
    const id = encodeURIComponent(change.id);
    await this.call('POST', `changes/${id}/revisions/${revision}/review`, {
      labels: { 'Code-Review': 2 },
      message: 'signalbox: approved for the train',
    });
    await this.submitted(change, `changes/${id}/submit`);
    const merged = await this.waitForMerged(change);
    await this.assertMadeBySignalbox(merged);
    return merged.current_revision!;
  }

  async land(change: ChangeRequest): Promise<LandedChange> {
    const { repo, branch, files, subject, changeId, dependsOn = [] } = change;
    let existing = await this.changeFor(repo, branch, changeId);
    if (existing) await this.assertMadeBySignalbox(existing);
    if (existing?.status === 'MERGED') {
      await this.assertHoldsExactly(existing, existing.current_revision!, files);
      return { sha: existing.current_revision!, changeId, alreadyLanded: true };
    }
    if (!existing) {
      const message = commitMessage(subject, gerritChangeId(changeId), dependsOn);
      existing = await this.call<ChangeInfo>('POST', 'changes/', {
        project: this.project(repo),
        branch,
        subject: message,
      });
      if (!existing) throw new GerritError(`Gerrit did not create the change on ${repo} ${branch}`);
    }
    const id = encodeURIComponent(existing.id);
    const stale: string[] = [];
    for (const [file, content] of Object.entries(files))
      if ((await this.fileInChange(existing, file)) !== content) stale.push(file);
    if (stale.length) {
      for (const file of stale) {
        const content = Buffer.from(files[file]).toString('base64');
        await this.call('PUT', `changes/${id}/edit/${encodeURIComponent(file)}`, {
          binary_content: `data:text/plain;base64,${content}`,
        });
      }
      await this.call('POST', `changes/${id}/edit:publish`, { notify: 'NONE' });
    }
    const checked = await this.change(existing.id);
    await this.assertMadeBySignalbox(checked);
    await this.assertHoldsExactly(checked, checked.current_revision!, files);
    return { sha: await this.approveAndSubmit(checked, checked.current_revision!), changeId, alreadyLanded: false };
  }

  /**
   * Reverts through Gerrit's own revert, so the review links the two; a repeat finds the revert it made. Reverts
   * someone else made are theirs to land; the one signalbox approves must be its own, patch set and all.
   */
  async revert(
    repo: string,
    branch: string,
    sha: string,
    changeId: string,
    _author: string,
    reason: string,
  ): Promise<LandedChange> {
    const found = await this.call<ChangeInfo[]>(
      'GET',
      `changes/?q=${encodeURIComponent(`commit:${sha} project:${this.project(repo)}`)}`,
    );
    const original = found?.[0];
    if (!original) throw new GerritError(`${sha} is not a change in Gerrit project ${repo}; nothing to revert`);
    const reverts = await this.call<ChangeInfo[]>(
      'GET',
      `changes/?q=${encodeURIComponent(`revertof:${original._number} branch:${branch}`)}&${CHANGE_DETAIL}`,
    );
    const self = await this.self();
    let revert = reverts?.find((r) => r.owner._account_id === self._account_id);
    if (revert) await this.assertMadeBySignalbox(revert);
    if (revert?.status === 'MERGED') return { sha: revert.current_revision!, changeId, alreadyLanded: true };
    revert ??= await this.call<ChangeInfo>('POST', `changes/${encodeURIComponent(original.id)}/revert`, {
      message: `Revert "${sha.slice(0, 10)}"\n\n${reason}\n\nThis reverts commit ${sha}.\n\nChange-Id: ${gerritChangeId(changeId)}\n`,
      notify: 'NONE',
    });
    if (!revert) throw new GerritError(`Gerrit did not revert change ${original._number}`);
    const checked = await this.change(revert.id);
    await this.assertMadeBySignalbox(checked);
    return { sha: await this.approveAndSubmit(checked, checked.current_revision!), changeId, alreadyLanded: false };
  }

  /**
   * Brings the local mirror's branches up to date with Gerrit's, over git's HTTP protocol. The credentials reach git
   * through its environment (GIT_CONFIG_*), never its argv, which any user on the machine can read in ps.
   */
  private async sync(repo: string): Promise<void> {
    await this.mirror.init(this.project(repo));
    const base = this.spec.url.replace(/\/$/, '');
    try {
      await run('git', ['fetch', '--quiet', '--prune', `${base}/a/${repo}`, '+refs/heads/*:refs/heads/*'], {
        cwd: path.join(this.mirror.reposDir, `${repo}.git`),
        env: gitCredentialEnv(base, this.spec.user, process.env[this.spec.passwordEnv] ?? ''),
        timeout: 600_000,
      });
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
      throw new GerritError(`git fetch of ${repo} from ${base} failed: ${stderr || (err as Error).message}`);
    }
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

  /**
   * A change as a backport reads it (anyone's, unlike land): where it goes, its state, its trailers, and the open
   * changes its current patch set sits on. Undefined when Gerrit has no such change or will not show it.
   */
  async reviewedChange(number: number): Promise<ReviewedChange | undefined> {
    const info = await this.call<ChangeInfo>('GET', `changes/${number}?${CHANGE_DETAIL}&o=CURRENT_COMMIT`);
    if (!info) return undefined;
    const revision = info.current_revision ? info.revisions?.[info.current_revision] : undefined;
    const message = revision?.commit?.message ?? '';
    const parents: number[] = [];
    for (const { commit } of revision?.commit?.parents ?? []) {
      const on = await this.call<ChangeInfo[]>('GET', `changes/?q=${encodeURIComponent(`commit:${commit}`)}`);
      for (const parent of on ?? [])
        if (parent.status !== 'MERGED' && parent._number !== number) parents.push(parent._number);
    }
    return {
      number: info._number,
      url: `${this.spec.url.replace(/\/$/, '')}/c/${info.project}/+/${info._number}`,
      project: info.project ?? '',
      branch: info.branch ?? '',
      status: info.status === 'NEW' ? 'open' : info.status === 'MERGED' ? 'merged' : 'abandoned',
      workInProgress: info.work_in_progress === true,
      subject: info.subject ?? message.split('\n')[0],
      owner: info.owner.username ?? info.owner.name ?? `account ${info.owner._account_id}`,
      changeId: info.change_id,
      dependsOn: trailersOf(message).dependsOn,
      parents,
      patchset: revision?._number ?? 0,
      tasks: [...message.matchAll(/^Bug:[ \t]*(T\d+)[ \t]*$/gim)].map((m) => m[1]),
    };
  }

  /** The changes a Depends-On line names: a Change-Id on any project and branch, or a change number or URL. */
  async changesNamedBy(text: string): Promise<number[]> {
    if (/^I[0-9a-f]{40}$/.test(text)) {
      const found = await this.call<ChangeInfo[]>('GET', `changes/?q=${encodeURIComponent(`change:${text}`)}`);
      return (found ?? []).map((c) => c._number).sort((a, b) => a - b);
    }
    try {
      const ref = parseChangeRef(text);
      return ref.forge === 'gerrit' ? [ref.number] : [];
    } catch {
      return []; // names nothing: the plan refuses it, saying so
    }
  }

  /**
   * Merges someone's reviewed change for a backport: Code-Review +2 from signalbox on behalf of the deployer on the
   * patch set that was checked, submit, and wait until MERGED. Refuses, changing nothing, when the change has moved
   * on (a new patch set needs a fresh look), carries a -2 or a failing Verified vote, or (with requireHumanReview)
   * has no +2 from a person other than signalbox. Safe to repeat: a merged change is reported merged.
   */
  async mergeReviewed(request: {
    number: number;
    patchset: number;
    deployer: string;
    requireHumanReview: boolean;
  }): Promise<{ sha: string; alreadyMerged: boolean; patchset: number }> {
    const info = await this.call<ChangeInfo>('GET', `changes/${request.number}?${CHANGE_DETAIL}&o=DETAILED_LABELS`);
    const refuse = (type: string, why: string) =>
      ApplicationFailure.nonRetryable(`Gerrit change ${request.number} ${why}; nothing was merged`, type);
    if (!info) throw refuse('ChangeGone', 'is gone or no longer visible');
    const mergedPatchset = info.revisions?.[info.current_revision!]?._number ?? 0;
    // Merged by someone already, perhaps a later patch set than was checked: the result says which.
    if (info.status === 'MERGED') return { sha: info.current_revision!, alreadyMerged: true, patchset: mergedPatchset };
    if (info.status === 'ABANDONED') throw refuse('Abandoned', 'was abandoned');
    const revision = info.current_revision!;
    const patchset = info.revisions?.[revision]?._number;
    if (patchset !== request.patchset)
      throw refuse(
        'NewPatchSet',
        `is at patch set ${patchset}, not ${request.patchset} that was checked: look at the new patch set and confirm again`,
      );
    const votes = (label: string) => info.labels?.[label]?.all ?? [];
    const who = (v: { _account_id: number; username?: string; name?: string }) =>
      v.username ?? v.name ?? `account ${v._account_id}`;
    const vetoes = votes('Code-Review').filter((v) => (v.value ?? 0) <= -2);
    if (vetoes.length) throw refuse('Vetoed', `has Code-Review -2 from ${vetoes.map(who).join(', ')}`);
    const failing = votes('Verified').filter((v) => (v.value ?? 0) < 0);
    if (failing.length)
      throw refuse('CiFailed', `has Verified ${failing[0].value} from ${failing.map(who).join(', ')}`);
    const self = await this.self();
    if (
      request.requireHumanReview &&
      !votes('Code-Review').some(
        (v) => (v.value ?? 0) >= 2 && v._account_id !== self._account_id && v._account_id !== info.owner._account_id,
      )
    )
      throw refuse(
        'NeedsReview',
        'has no Code-Review +2 from a person other than its owner (backport.requireHumanReview)',
      );
    const id = encodeURIComponent(info.id);
    await this.call('POST', `changes/${id}/revisions/${revision}/review`, {
      labels: { 'Code-Review': 2 },
      message: `signalbox: backport deployed by ${request.deployer}`,
    });
    // The checked revision, not "current": a patch set uploaded since (even one the +2 was copied to) is refused.
    await this.submitted(info, `changes/${id}/revisions/${revision}/submit`);
    const merged = await this.waitForMerged(info);
    return { sha: merged.current_revision!, alreadyMerged: false, patchset: request.patchset };
  }

  /** Open changes on these branches, newest first, each with whether Gerrit would submit it now and why not. */
  async openChanges(branches: { project: string; branch: string }[]): Promise<OpenChange[]> {
    if (!branches.length) return [];
    const where = branches.map((b) => `(project:${b.project} branch:${b.branch})`).join(' OR ');
    const found =
      (await this.call<ChangeInfo[]>(
        'GET',
        `changes/?q=${encodeURIComponent(`status:open (${where})`)}&o=DETAILED_ACCOUNTS&o=DETAILED_LABELS`,
      )) ?? [];
    return found.map((c) => {
      const votes = (label: string) => c.labels?.[label]?.all ?? [];
      const vetoed = votes('Code-Review').some((v) => (v.value ?? 0) <= -2);
      const approved = votes('Code-Review').some((v) => (v.value ?? 0) >= 2);
      const why = c.work_in_progress
        ? 'work in progress'
        : vetoed
          ? 'Code-Review -2'
          : votes('Verified').some((v) => (v.value ?? 0) < 0)
            ? 'CI failed'
            : undefined;
      return {
        number: c._number,
        project: c.project ?? '',
        branch: c.branch ?? '',
        subject: c.subject ?? '',
        owner: c.owner.username ?? c.owner.name ?? `account ${c.owner._account_id}`,
        approved,
        blocked: why,
      };
    });
  }
}
