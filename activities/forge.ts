// Forges hold branches and take changes. The local git forge works on bare repositories with git plumbing, so a
// change lands with one compare-and-swap of the branch ref. Gerrit and GitHub implement the same interface.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ChangeRequest {
  repo: string;
  branch: string;
  files: Record<string, string>;
  subject: string;
  /** A stable key for this change: landing it twice (an activity retried after a crash) lands it once. */
  changeId: string;
  author: string;
  /** Change-Ids that must be live before this change may deploy. */
  dependsOn?: string[];
}

export interface LandedChange {
  sha: string;
  changeId: string;
  alreadyLanded: boolean;
}

/** A commit with the trailers signalbox reads: Change-Id names a change, Depends-On names changes that must be live first. */
export interface CommitInfo {
  sha: string;
  subject: string;
  changeIds: string[];
  dependsOn: string[];
  /** How many parents: 2 or more is a merge commit. */
  parents: number;
  /** The commits its message says it reverts ("This reverts commit <sha>."). */
  reverts: string[];
}

export interface Forge {
  branches(repo: string): Promise<string[]>;
  /** Creates `branch` at `from` unless it exists; returns the branch head. */
  createBranch(repo: string, branch: string, from: string): Promise<string>;
  land(change: ChangeRequest): Promise<LandedChange>;
  revert(
    repo: string,
    branch: string,
    sha: string,
    changeId: string,
    author: string,
    reason: string,
  ): Promise<LandedChange>;
  readFile(repo: string, ref: string, file: string): Promise<string>;
  resolve(repo: string, ref: string): Promise<string>;
  /** Writes the tree at `ref` into an empty folder. */
  exportTree(repo: string, ref: string, dest: string): Promise<void>;
  /** Commits reachable from `head` but from none of `exclude`, newest first, at most `limit`. */
  commits(repo: string, head: string, exclude: string[], limit: number): Promise<CommitInfo[]>;
  /** Every commit, on any branch, that carries the Change-Id `changeId`. */
  findChange(repo: string, changeId: string): Promise<string[]>;
  isAncestor(repo: string, ancestor: string, descendant: string): Promise<boolean>;
}

const FIELD = '\x1f';
const RECORD = '\x1e';
const LOG_FORMAT = `%H%x1f%s%x1f%(trailers:key=Change-Id,valueonly,separator=%x2C)%x1f%(trailers:key=Depends-On,valueonly,separator=%x2C)%x1f%P%x1f%b%x1e`;

function parseLog(out: string): CommitInfo[] {
  const list = (field: string | undefined) =>
    (field ?? '')
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
  return out
    .split(RECORD)
    .map((record) => record.replace(/^\n/, ''))
    .filter(Boolean)
    .map((record) => {
      const [sha, subject, changeIds, dependsOn, parents, body] = record.split(FIELD);
      return {
        sha,
        subject,
        changeIds: list(changeIds),
        dependsOn: list(dependsOn),
        parents: (parents ?? '').split(' ').filter(Boolean).length,
        reverts: revertedBy(body ?? ''),
      };
    });
}

/** The message every forge writes: the trailers are how a retry finds its change and how Depends-On is read. */
export function commitMessage(subject: string, changeId: string, dependsOn: string[] = []): string {
  return `${subject}\n\n${dependsOn.map((id) => `Depends-On: ${id}\n`).join('')}Change-Id: ${changeId}\n`;
}

export function revertSubject(subject: string, reason: string, sha: string): string {
  return `Revert "${subject.split('\n')[0].slice(0, 200)}"\n\n${reason}\n\nThis reverts commit ${sha}.`;
}

/** The commits a message says it reverts, as git revert and Gerrit write it: "This reverts commit <sha>." */
export function revertedBy(message: string): string[] {
  return [...message.matchAll(/^This reverts commit ([0-9a-f]{40})\.?\s*$/gm)].map((m) => m[1]);
}

/** Reads the trailers of a commit message the way `git interpret-trailers` would for these two keys. */
export function trailersOf(message: string): { changeIds: string[]; dependsOn: string[] } {
  const values = (key: string) =>
    [...message.matchAll(new RegExp(`^${key}:[ \\t]*(\\S+)[ \\t]*$`, 'gim'))].map((m) => m[1]);
  return { changeIds: values('Change-Id'), dependsOn: values('Depends-On') };
}

const GIT_IDENTITY = {
  GIT_AUTHOR_EMAIL: 'signalbox@localhost',
  GIT_COMMITTER_NAME: 'signalbox',
  GIT_COMMITTER_EMAIL: 'signalbox@localhost',
};

export class LocalGitForge implements Forge {
  constructor(readonly reposDir: string) {}

  private repoPath(repo: string): string {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(repo)) throw new Error(`invalid repository name ${JSON.stringify(repo)}`);
    return path.join(this.reposDir, `${repo}.git`);
  }

  private async git(repo: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<string> {
    const options = {
      cwd: this.repoPath(repo),
      env: { ...process.env, ...GIT_IDENTITY, ...env },
      maxBuffer: 64 * 1024 * 1024,
    };
    if (input === undefined) return (await run('git', args, options)).stdout.trim();
    return new Promise((resolve, reject) => {
      const child = execFile('git', args, options, (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
      child.stdin!.end(input);
    });
  }

  async init(repo: string): Promise<void> {
    fs.mkdirSync(this.reposDir, { recursive: true });
    if (fs.existsSync(this.repoPath(repo))) return;
    await run('git', ['init', '--quiet', '--bare', '--initial-branch=main', this.repoPath(repo)]);
  }

  async branches(repo: string): Promise<string[]> {
    const out = await this.git(repo, ['for-each-ref', '--format=%(refname:short)', 'refs/heads/']);
    return out ? out.split('\n') : [];
  }

  async resolve(repo: string, ref: string): Promise<string> {
    return this.git(repo, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  }

  async createBranch(repo: string, branch: string, from: string): Promise<string> {
    const existing = await this.resolve(repo, `refs/heads/${branch}`).catch(() => '');
    if (existing) return existing;
    const base = await this.resolve(repo, from);
    await this.git(repo, ['update-ref', `refs/heads/${branch}`, base, '0'.repeat(40)]);
    return base;
  }

  async readFile(repo: string, ref: string, file: string): Promise<string> {
    return this.git(repo, ['show', `${ref}:${file}`]);
  }

  private async log(repo: string, args: string[]): Promise<CommitInfo[]> {
    return parseLog(await this.git(repo, ['log', `--format=${LOG_FORMAT}`, ...args]));
  }

  private async findLanded(repo: string, branch: string, changeId: string): Promise<string | null> {
    const recent = await this.log(repo, ['-n', '200', `refs/heads/${branch}`]).catch(() => []);
    return recent.find((c) => c.changeIds.includes(changeId))?.sha ?? null;
  }

  async commits(repo: string, head: string, exclude: string[], limit: number): Promise<CommitInfo[]> {
    const known = [];
    for (const sha of exclude) if (await this.resolve(repo, sha).catch(() => '')) known.push(sha);
    return this.log(repo, ['-n', String(limit), head, ...known.map((sha) => `^${sha}`)]);
  }

  async findChange(repo: string, changeId: string): Promise<string[]> {
    const all = await this.log(repo, ['--all']);
    return all.filter((c) => c.changeIds.includes(changeId)).map((c) => c.sha);
  }

  async isAncestor(repo: string, ancestor: string, descendant: string): Promise<boolean> {
    return this.git(repo, ['merge-base', '--is-ancestor', ancestor, descendant]).then(
      () => true,
      () => false,
    );
  }

  async land(change: ChangeRequest): Promise<LandedChange> {
    const { repo, branch, files, subject, changeId, author, dependsOn = [] } = change;
    const landed = await this.findLanded(repo, branch, changeId);
    if (landed) return { sha: landed, changeId, alreadyLanded: true };
    const head = await this.resolve(repo, `refs/heads/${branch}`).catch(() => '');
    const indexFile = path.join(os.tmpdir(), `signalbox-index-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const env = { GIT_INDEX_FILE: indexFile };
    try {
      if (head) await this.git(repo, ['read-tree', head], env);
      for (const [file, content] of Object.entries(files)) {
        const blob = await this.git(repo, ['hash-object', '-w', '--stdin'], {}, content);
        await this.git(repo, ['update-index', '--add', '--cacheinfo', `100644,${blob},${file}`], env);
      }
      const tree = await this.git(repo, ['write-tree'], env);
      const message = commitMessage(subject, changeId, dependsOn);
      const commit = await this.git(
        repo,
        ['commit-tree', tree, ...(head ? ['-p', head] : []), '-F', '-'],
        { GIT_AUTHOR_NAME: author },
        message,
      );
      // Compare-and-swap: if someone else moved the branch meanwhile, this fails rather than losing their change.
      await this.git(repo, ['update-ref', `refs/heads/${branch}`, commit, head || '0'.repeat(40)]);
      return { sha: commit, changeId, alreadyLanded: false };
    } finally {
      fs.rmSync(indexFile, { force: true });
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
    const parent = await this.resolve(repo, `${sha}^`);
    const changed = (await this.git(repo, ['diff-tree', '--no-commit-id', '--name-only', '-r', parent, sha]))
      .split('\n')
      .filter(Boolean);
    const files: Record<string, string> = {};
    for (const file of changed) files[file] = await this.readFile(repo, parent, file);
    const subject = await this.git(repo, ['log', '-1', '--format=%s', sha]);
    return this.land({ repo, branch, files, subject: revertSubject(subject, reason, sha), changeId, author });
  }

  async exportTree(repo: string, ref: string, dest: string): Promise<void> {
    fs.mkdirSync(dest, { recursive: true });
    const archive = path.join(path.dirname(dest), `.${path.basename(dest)}.tar`);
    await this.git(repo, ['archive', '--format=tar', '-o', archive, ref]);
    try {
      await run('tar', ['-xf', archive, '-C', dest]);
    } finally {
      fs.rmSync(archive, { force: true });
    }
  }
}

/** The weekly branch cut: `wmf/<version>` from main, with VERSION naming the version. Safe to repeat. */
export async function cutBranch(forge: Forge, repo: string, version: string, author: string): Promise<string> {
  const branch = `wmf/${version}`;
  await forge.createBranch(repo, branch, 'refs/heads/main');
  const landed = await forge.land({
    repo,
    branch,
    files: { VERSION: `${version}\n` },
    subject: `Branch cut for ${version}`,
    changeId: `branch-cut-${version}`,
    author,
  });
  return landed.sha;
}
