// GitHub, through octokit: a forge (branches, pull requests merged by signalbox, reverts) and the train's blockers.
// The week's blocker issue is "<version> deployment blockers"; its open sub-issues hold the train, as open subtasks
// of the blocker task do in the runbook.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Octokit } from '@octokit/rest';
import { ApplicationFailure } from '@temporalio/common';
import type { GitHubSpec, SignalboxConfig } from '../config/load';
import type { Blocker } from '../workflows/render';
import { checkVersion } from '../workflows/names';
import {
  commitMessage,
  revertSubject,
  revertedBy,
  trailersOf,
  type ChangeRequest,
  type CommitInfo,
  type Forge,
  type LandedChange,
} from './forge';

const run = promisify(execFile);

export function octokitFor(spec: { apiUrl: string; tokenEnv: string }): Octokit {
  return new Octokit({
    baseUrl: spec.apiUrl,
    auth: process.env[spec.tokenEnv] || undefined,
    userAgent: 'signalbox',
    request: { timeout: 30_000 },
  });
}

/** The id git gives a file's content, which is what GitHub reports as a file's sha. */
export function gitBlobId(content: string): string {
  const bytes = Buffer.from(content);
  return crypto.createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

const httpStatus = (err: unknown) => (err as { status?: number }).status;

/** The branch a change is proposed from: named by its Change-Id, so a retried land finds the pull request it opened. */
export const changeBranch = (changeId: string) => `signalbox/${changeId}`;

/**
 * Changes land as pull requests that signalbox squash-merges itself, with the Change-Id and Depends-On trailers in
 * the merge commit. Every step first looks for what an earlier attempt already did. Before merging (or taking an
 * earlier merge as its own), signalbox checks that the pull request changes only the files it asked for, each as
 * asked, and merges only the head it checked, so nobody can plant a change on its branch.
 */
export class GitHubForge implements Forge {
  private readonly octokit: Octokit;

  constructor(readonly spec: GitHubSpec) {
    this.octokit = octokitFor(spec);
  }

  private at(repo: string) {
    if (!/^[A-Za-z0-9_.-]+$/.test(repo)) throw new Error(`invalid repository name ${JSON.stringify(repo)}`);
    return { owner: this.spec.owner, repo };
  }

  private async branchHead(repo: string, branch: string): Promise<string | null> {
    try {
      return (await this.octokit.rest.git.getRef({ ...this.at(repo), ref: `heads/${branch}` })).data.object.sha;
    } catch (err) {
      if (httpStatus(err) === 404) return null;
      throw err;
    }
  }

  async branches(repo: string): Promise<string[]> {
    const refs = await this.octokit.paginate(this.octokit.rest.git.listMatchingRefs, {
      ...this.at(repo),
      ref: 'heads/',
      per_page: 100,
    });
    return refs.map((r) => r.ref.replace(/^refs\/heads\//, ''));
  }

  async resolve(repo: string, ref: string): Promise<string> {
    if (/^[0-9a-f]{40}$/.test(ref)) return ref;
    if (ref.startsWith('refs/heads/')) {
      const head = await this.branchHead(repo, ref.slice('refs/heads/'.length));
      if (!head) throw new Error(`${this.spec.owner}/${repo} has no branch ${ref.slice('refs/heads/'.length)}`);
      return head;
    }
    return (await this.octokit.rest.repos.getCommit({ ...this.at(repo), ref, per_page: 1 })).data.sha;
  }

  async createBranch(repo: string, branch: string, from: string): Promise<string> {
    const existing = await this.branchHead(repo, branch);
    if (existing) return existing;
    const base = await this.resolve(repo, from);
    try {
      await this.octokit.rest.git.createRef({ ...this.at(repo), ref: `refs/heads/${branch}`, sha: base });
    } catch (err) {
      if (httpStatus(err) !== 422) throw err;
      return (await this.branchHead(repo, branch)) ?? base; // someone made it meanwhile
    }
    return base;
  }

  async readFile(repo: string, ref: string, file: string): Promise<string> {
    // Raw, so a file over the JSON API's 1 MB limit reads the same way.
    const { data } = await this.octokit.rest.repos.getContent({
      ...this.at(repo),
      path: file,
      ref,
      mediaType: { format: 'raw' },
    });
    if (typeof data !== 'string') throw new Error(`${this.spec.owner}/${repo}:${file} at ${ref} is not a file`);
    return data;
  }

  /** Writes one file on a branch unless it already holds exactly this content (same git blob id). */
  private async putFile(repo: string, branch: string, file: string, content: string, message: string): Promise<void> {
    let sha: string | undefined;
    try {
      const { data } = await this.octokit.rest.repos.getContent({ ...this.at(repo), path: file, ref: branch });
      if (!Array.isArray(data) && data.type === 'file') sha = data.sha;
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
    }
    if (sha === gitBlobId(content)) return;
    await this.octokit.rest.repos.createOrUpdateFileContents({
      ...this.at(repo),
      path: file,
      branch,
      message,
      content: Buffer.from(content).toString('base64'),
      sha,
    });
  }

  /** Throws ChangePlanted unless the pull request's diff holds only requested files, each with the requested content. */
  private async assertPullHoldsExactly(
    repo: string,
    pull: { number: number; html_url: string; user?: { login: string } | null },
    files: Record<string, string>,
  ): Promise<void> {
    const listed = await this.octokit.paginate(this.octokit.rest.pulls.listFiles, {
      ...this.at(repo),
      pull_number: pull.number,
      per_page: 100,
    });
    const wrong = listed.flatMap((f) => {
      const moved = f.previous_filename && f.previous_filename !== f.filename ? [f.previous_filename] : [];
      const asked = f.filename in files && f.status !== 'removed' && f.sha === gitBlobId(files[f.filename]);
      return [...moved, ...(asked ? [] : [f.filename])];
    });
    if (wrong.length) {
      throw ApplicationFailure.nonRetryable(
        `pull request ${pull.html_url} (#${pull.number}, opened by ${pull.user?.login ?? 'unknown'}) changes ${wrong.join(', ')} other than signalbox asked; signalbox did not make that change, so it will not merge it or take it as landed. Find out who pushed it`,
        'ChangePlanted',
      );
    }
  }

  async land(change: ChangeRequest): Promise<LandedChange> {
    const { repo, branch, files, subject, changeId, dependsOn = [] } = change;
    const at = this.at(repo);
    const head = changeBranch(changeId);
    const earlier = (
      await this.octokit.rest.pulls.list({
        ...at,
        state: 'all',
        head: `${this.spec.owner}:${head}`,
        base: branch,
        per_page: 10,
      })
    ).data;
    const merged = earlier.find((p) => p.merged_at && p.merge_commit_sha);
    if (merged) {
      await this.assertPullHoldsExactly(repo, merged, files);
      return { sha: merged.merge_commit_sha!, changeId, alreadyLanded: true };
    }
    const message = commitMessage(subject, changeId, dependsOn);
    const [title, ...body] = message.split('\n');
    let pull = earlier.find((p) => p.state === 'open');
    if (!pull) {
      await this.createBranch(repo, head, `refs/heads/${branch}`);
      for (const [file, content] of Object.entries(files)) await this.putFile(repo, head, file, content, title);
      pull = (await this.octokit.rest.pulls.create({ ...at, head, base: branch, title, body: body.join('\n').trim() }))
        .data as (typeof earlier)[number];
    }
    await this.assertPullHoldsExactly(repo, pull, files);
    try {
      // Only the head that was checked: a push after the check makes GitHub refuse the merge.
      const { data } = await this.octokit.rest.pulls.merge({
        ...at,
        pull_number: pull.number,
        sha: pull.head.sha,
        merge_method: 'squash',
        commit_title: title,
        commit_message: body.join('\n').trim(),
      });
      await this.octokit.rest.git.deleteRef({ ...at, ref: `heads/${head}` }).catch(() => undefined); // tidy only
      return { sha: data.sha, changeId, alreadyLanded: false };
    } catch (err) {
      if (httpStatus(err) === 405 || httpStatus(err) === 409)
        throw new Error(`pull request ${pull.html_url} cannot be merged into ${branch}: ${(err as Error).message}`);
      throw err;
    }
  }

  async revert(
    repo: string,
    branch: string,
    sha: string,
    changeId: string,
    author: string,
    reason: string,
  ): Promise<LandedChange> {
    const { data: commit } = await this.octokit.rest.repos.getCommit({ ...this.at(repo), ref: sha });
    const parent = commit.parents[0]?.sha;
    if (!parent) throw new Error(`${sha} has no parent to revert to`);
    const files: Record<string, string> = {};
    for (const file of commit.files ?? []) files[file.filename] = await this.readFile(repo, parent, file.filename);
    return this.land({
      repo,
      branch,
      files,
      subject: revertSubject(commit.commit.message, reason, sha),
      changeId,
      author,
    });
  }

  async exportTree(repo: string, ref: string, dest: string): Promise<void> {
    const { data } = await this.octokit.rest.repos.downloadTarballArchive({ ...this.at(repo), ref });
    fs.mkdirSync(dest, { recursive: true });
    const archive = path.join(path.dirname(dest), `.${path.basename(dest)}.tar.gz`);
    fs.writeFileSync(archive, Buffer.from(data as ArrayBuffer));
    try {
      await run('tar', ['-xzf', archive, '-C', dest, '--strip-components=1']); // GitHub wraps the tree in owner-repo-sha/
    } finally {
      fs.rmSync(archive, { force: true });
    }
  }

  private info(commit: { sha: string; commit: { message: string }; parents?: unknown[] }): CommitInfo {
    return {
      sha: commit.sha,
      subject: commit.commit.message.split('\n')[0],
      ...trailersOf(commit.commit.message),
      parents: commit.parents?.length ?? 1,
      reverts: revertedBy(commit.commit.message),
    };
  }

  async commits(repo: string, head: string, exclude: string[], limit: number): Promise<CommitInfo[]> {
    if (!exclude.length) {
      const listed = await this.octokit.paginate(
        this.octokit.rest.repos.listCommits,
        { ...this.at(repo), sha: head, per_page: 100 },
        (response, done) => {
          if (response.data.length >= limit) done();
          return response.data;
        },
      );
      return listed.slice(0, limit).map((c) => this.info(c));
    }
    // Reachable from head and from none of the excluded: what every base...head comparison has in common.
    const aheadOfEach: CommitInfo[][] = [];
    for (const base of exclude) {
      const { data } = await this.octokit.rest.repos.compareCommitsWithBasehead({
        ...this.at(repo),
        basehead: `${base}...${head}`,
        per_page: 100,
      });
      aheadOfEach.push(data.commits.map((c) => this.info(c)));
    }
    const [first, ...rest] = aheadOfEach;
    return first
      .filter((c) => rest.every((ahead) => ahead.some((a) => a.sha === c.sha)))
      .reverse()
      .slice(0, limit);
  }

  async findChange(repo: string, changeId: string): Promise<string[]> {
    const { data } = await this.octokit.rest.search.commits({
      q: `repo:${this.spec.owner}/${repo} "Change-Id: ${changeId}"`,
      per_page: 100,
    });
    return data.items.filter((c) => trailersOf(c.commit.message).changeIds.includes(changeId)).map((c) => c.sha);
  }

  async isAncestor(repo: string, ancestor: string, descendant: string): Promise<boolean> {
    const { data } = await this.octokit.rest.repos.compareCommitsWithBasehead({
      ...this.at(repo),
      basehead: `${ancestor}...${descendant}`,
      per_page: 1,
    });
    return data.status === 'ahead' || data.status === 'identical';
  }
}

export interface BlockerReport {
  /** The train's blocker issue, when one exists. */
  issue?: { number: number; url: string };
  open: Blocker[];
}

export function blockerIssueTitle(version: string): string {
  return `${checkVersion(version)} deployment blockers`;
}

export function createGitHubActivities(config: SignalboxConfig) {
  async function openBlockers(request: { version: string }): Promise<BlockerReport> {
    const spec = config.train.blockers?.github;
    if (!spec) return { open: [] };
    const [owner, repo] = spec.repository.split('/');
    const octokit = octokitFor(spec);
    const title = blockerIssueTitle(request.version);
    const found = await octokit.rest.search.issuesAndPullRequests({
      q: `repo:${spec.repository} is:issue in:title "${title}"`,
      per_page: 10,
    });
    const issue = found.data.items.find((i) => i.title === title);
    if (!issue) return { open: [] };
    const subIssues = await octokit.paginate('GET /repos/{owner}/{repo}/issues/{issue_number}/sub_issues', {
      owner,
      repo,
      issue_number: issue.number,
      per_page: 100,
    });
    return {
      issue: { number: issue.number, url: issue.html_url },
      open: subIssues
        .filter((s) => s.state === 'open')
        .map((s) => ({ title: `#${s.number} ${s.title}`, url: s.html_url })),
    };
  }

  return { openBlockers };
}
