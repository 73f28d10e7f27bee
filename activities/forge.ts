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
}

export interface LandedChange {
  sha: string;
  changeId: string;
  alreadyLanded: boolean;
}

export interface Forge {
  branches(repo: string): Promise<string[]>;
  /** Creates `branch` at `from` unless it exists; returns the branch head. */
  createBranch(repo: string, branch: string, from: string): Promise<string>;
  land(change: ChangeRequest): Promise<LandedChange>;
  revert(repo: string, branch: string, sha: string, changeId: string, author: string, reason: string): Promise<LandedChange>;
  readFile(repo: string, ref: string, file: string): Promise<string>;
  resolve(repo: string, ref: string): Promise<string>;
  /** Writes the tree at `ref` into an empty folder. */
  exportTree(repo: string, ref: string, dest: string): Promise<void>;
}

const GIT_IDENTITY = { GIT_AUTHOR_EMAIL: 'signalbox@localhost', GIT_COMMITTER_NAME: 'signalbox', GIT_COMMITTER_EMAIL: 'signalbox@localhost' };

export class LocalGitForge implements Forge {
  constructor(readonly reposDir: string) {}

  private repoPath(repo: string): string {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(repo)) throw new Error(`invalid repository name ${JSON.stringify(repo)}`);
    return path.join(this.reposDir, `${repo}.git`);
  }

  private async git(repo: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<string> {
    const options = { cwd: this.repoPath(repo), env: { ...process.env, ...GIT_IDENTITY, ...env }, maxBuffer: 64 * 1024 * 1024 };
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

  private async findLanded(repo: string, branch: string, changeId: string): Promise<string | null> {
    const out = await this.git(repo, ['log', '-n', '200', '--format=%H %(trailers:key=Change-Id,valueonly,separator=%x2C)', `refs/heads/${branch}`]).catch(() => '');
    for (const line of out.split('\n')) {
      const [sha, ids] = line.split(' ');
      if (ids && ids.split(',').includes(changeId)) return sha;
    }
    return null;
  }

  async land(change: ChangeRequest): Promise<LandedChange> {
    const { repo, branch, files, subject, changeId, author } = change;
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
      const message = `${subject}\n\nChange-Id: ${changeId}\n`;
      const commit = await this.git(repo, ['commit-tree', tree, ...(head ? ['-p', head] : []), '-F', '-'], { GIT_AUTHOR_NAME: author }, message);
      // Compare-and-swap: if someone else moved the branch meanwhile, this fails rather than losing their change.
      await this.git(repo, ['update-ref', `refs/heads/${branch}`, commit, head || '0'.repeat(40)]);
      return { sha: commit, changeId, alreadyLanded: false };
    } finally {
      fs.rmSync(indexFile, { force: true });
    }
  }

  async revert(repo: string, branch: string, sha: string, changeId: string, author: string, reason: string): Promise<LandedChange> {
    const parent = await this.resolve(repo, `${sha}^`);
    const changed = (await this.git(repo, ['diff-tree', '--no-commit-id', '--name-only', '-r', parent, sha])).split('\n').filter(Boolean);
    const files: Record<string, string> = {};
    for (const file of changed) files[file] = await this.readFile(repo, parent, file);
    const subject = (await this.git(repo, ['log', '-1', '--format=%s', sha])).slice(0, 200);
    return this.land({ repo, branch, files, subject: `Revert "${subject}"\n\n${reason}\n\nThis reverts commit ${sha}.`, changeId, author });
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
  const landed = await forge.land({ repo, branch, files: { VERSION: `${version}\n` }, subject: `Branch cut for ${version}`, changeId: `branch-cut-${version}`, author });
  return landed.sha;
}
