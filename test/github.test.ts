// The GitHub forge and blockers against recorded GitHub responses replayed over real HTTP (see github-replay.ts):
// the exact requests octokit sends, and how the forge reads what GitHub answers.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterEach, describe, expect, it } from 'vitest';
import { changeBranch, createGitHubActivities, GitHubForge, gitBlobId } from '../activities/github';
import type { SignalboxConfig } from '../config/load';
import { example, fixture, replay, type Exchange, type Replay } from './github-replay';

let server: Replay | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const OWNER = 'wikimedia';
const REPO = `/repos/${OWNER}/mediawiki-config`;
const forgeAt = (url: string, owner = OWNER) =>
  new GitHubForge({ owner, apiUrl: url, tokenEnv: 'SIGNALBOX_TEST_GITHUB_TOKEN' });
const mainRef = () => ({ ...fixture('git-refs', 0), body: (fixture('git-refs', 0).body as unknown[])[0] });

/**
 * A pull request's changed files, shaped as GitHub documents "List pull requests files" (no recording of that
 * endpoint exists): each file's blob id, which is what the forge compares with what it asked for.
 */
function pullFiles(files: Record<string, string>, status = 'modified') {
  return {
    status: 200,
    body: Object.entries(files).map(([filename, content]) => ({
      sha: gitBlobId(content),
      filename,
      status,
      additions: content.split('\n').length,
      deletions: 0,
      changes: content.split('\n').length,
      blob_url: `https://github.com/${OWNER}/mediawiki-config/blob/${gitBlobId(content)}/${filename}`,
      raw_url: `https://github.com/${OWNER}/mediawiki-config/raw/${gitBlobId(content)}/${filename}`,
      contents_url: `https://api.github.com/repos/${OWNER}/mediawiki-config/contents/${filename}`,
    })),
  };
}

async function serve(script: Exchange[]): Promise<Replay> {
  server = await replay(script);
  return server;
}

function expectScriptDone(s: Replay) {
  expect(s.unexpected).toEqual([]);
  expect(s.remaining()).toBe(0);
}

describe('GitHub forge', () => {
  it('lands a change as a squash-merged pull request carrying its trailers, and a retry finds it merged', async () => {
    const head = changeBranch('I-move-group1');
    const wikiversions = '{"enwiki": "php-1.41.0-wmf.26"}\n';
    const existingFile = (fixture('get-content', 0).body as { sha: string }[])[0];
    const s = await serve([
      { method: 'GET', path: `${REPO}/pulls`, respond: { status: 200, body: [] } },
      { method: 'GET', path: `${REPO}/git/ref/heads/${head}`, respond: fixture('branch-protection', 0) },
      { method: 'GET', path: `${REPO}/git/ref/heads/main`, respond: mainRef() },
      { method: 'POST', path: `${REPO}/git/refs`, respond: fixture('git-refs', 1) },
      { method: 'GET', path: `${REPO}/contents/wikiversions.json`, respond: { status: 200, body: existingFile } },
      { method: 'PUT', path: `${REPO}/contents/wikiversions.json`, respond: fixture('create-file', 0) },
      { method: 'POST', path: `${REPO}/pulls`, respond: example('pulls-create') },
      { method: 'GET', path: `${REPO}/pulls/1347/files`, respond: pullFiles({ 'wikiversions.json': wikiversions }) },
      { method: 'PUT', path: `${REPO}/pulls/1347/merge`, respond: example('pulls-merge') },
      { method: 'DELETE', path: `${REPO}/git/refs/heads/${head}`, respond: fixture('git-refs', 4) },
    ]);
    process.env.SIGNALBOX_TEST_GITHUB_TOKEN = 'test-token';
    const landed = await forgeAt(s.url).land({
      repo: 'mediawiki-config',
      branch: 'main',
      files: { 'wikiversions.json': wikiversions },
      subject: 'group1 wikis to 1.41.0-wmf.26',
      changeId: 'I-move-group1',
      dependsOn: ['I-code-fix'],
      author: 'alice',
    });
    expectScriptDone(s);
    expect(landed).toEqual({
      sha: '6dcb09b5b57875f334f61aebed695e2e4193db5e',
      changeId: 'I-move-group1',
      alreadyLanded: false,
    });

    const [list, , , createRef, getFile, putFile, createPull, , merge] = s.seen;
    expect(list.headers.authorization).toBe('token test-token');
    expect(Object.fromEntries(list.query)).toMatchObject({ state: 'all', head: `${OWNER}:${head}`, base: 'main' });
    expect(createRef.body).toEqual({ ref: `refs/heads/${head}`, sha: '0000000000000000000000000000000000000001' });
    expect(getFile.query.get('ref')).toBe(head);
    expect(putFile.body).toMatchObject({
      branch: head,
      sha: existingFile.sha,
      message: 'group1 wikis to 1.41.0-wmf.26',
    });
    expect(Buffer.from(putFile.body.content, 'base64').toString('utf8')).toBe(wikiversions);
    expect(createPull.body).toEqual({
      head,
      base: 'main',
      title: 'group1 wikis to 1.41.0-wmf.26',
      body: 'Depends-On: I-code-fix\nChange-Id: I-move-group1',
    });
    // Only the head whose files were checked may be merged.
    const createdHead = (example('pulls-create').body as { head: { sha: string } }).head.sha;
    expect(merge.body).toEqual({
      sha: createdHead,
      merge_method: 'squash',
      commit_title: 'group1 wikis to 1.41.0-wmf.26',
      commit_message: 'Depends-On: I-code-fix\nChange-Id: I-move-group1',
    });
    await s.close();

    // The activity is retried after a crash that came after the merge: it finds the merged pull request and writes nothing.
    const merged = example('pulls-list');
    const again = await serve([
      { method: 'GET', path: `${REPO}/pulls`, respond: merged },
      { method: 'GET', path: `${REPO}/pulls/1347/files`, respond: pullFiles({ 'wikiversions.json': wikiversions }) },
    ]);
    const retried = await forgeAt(again.url).land({
      repo: 'mediawiki-config',
      branch: 'main',
      files: { 'wikiversions.json': wikiversions },
      subject: 'group1 wikis to 1.41.0-wmf.26',
      changeId: 'I-move-group1',
      author: 'alice',
    });
    expectScriptDone(again);
    expect(retried).toEqual({
      sha: (merged.body as { merge_commit_sha: string }[])[0].merge_commit_sha,
      changeId: 'I-move-group1',
      alreadyLanded: true,
    });
  });

  it('skips writing a file whose content is already on the branch', async () => {
    const content = '# hello-world';
    const s = await serve([
      { method: 'GET', path: `${REPO}/pulls`, respond: { status: 200, body: [] } },
      { method: 'GET', path: `${REPO}/git/ref/heads/${changeBranch('I-same')}`, respond: mainRef() },
      {
        method: 'GET',
        path: `${REPO}/contents/README.md`,
        respond: { status: 200, body: { ...(fixture('get-content', 0).body as object[])[0], sha: gitBlobId(content) } },
      },
      { method: 'POST', path: `${REPO}/pulls`, respond: example('pulls-create') },
      { method: 'GET', path: `${REPO}/pulls/1347/files`, respond: pullFiles({ 'README.md': content }) },
      { method: 'PUT', path: `${REPO}/pulls/1347/merge`, respond: example('pulls-merge') },
      { method: 'DELETE', path: `${REPO}/git/refs/heads/${changeBranch('I-same')}`, respond: fixture('git-refs', 4) },
    ]);
    await forgeAt(s.url).land({
      repo: 'mediawiki-config',
      branch: 'main',
      files: { 'README.md': content },
      subject: 'no-op edit',
      changeId: 'I-same',
      author: 'alice',
    });
    expectScriptDone(s);
  });

  it('reverts a commit as a pull request that puts back each file as its parent had it', async () => {
    const commit = example('commit');
    const { sha, parents } = commit.body as { sha: string; parents: { sha: string }[] };
    const head = changeBranch('I-revert-bad');
    const s = await serve([
      { method: 'GET', path: `${REPO}/commits/${sha}`, respond: commit },
      { method: 'GET', path: `${REPO}/contents/file1.txt`, respond: fixture('get-content', 1) },
      { method: 'GET', path: `${REPO}/pulls`, respond: { status: 200, body: [] } },
      { method: 'GET', path: `${REPO}/git/ref/heads/${head}`, respond: fixture('branch-protection', 0) },
      { method: 'GET', path: `${REPO}/git/ref/heads/main`, respond: mainRef() },
      { method: 'POST', path: `${REPO}/git/refs`, respond: fixture('git-refs', 1) },
      { method: 'GET', path: `${REPO}/contents/file1.txt`, respond: fixture('branch-protection', 0) },
      { method: 'PUT', path: `${REPO}/contents/file1.txt`, respond: fixture('create-file', 0) },
      { method: 'POST', path: `${REPO}/pulls`, respond: example('pulls-create') },
      {
        method: 'GET',
        path: `${REPO}/pulls/1347/files`,
        respond: pullFiles({ 'file1.txt': '# hello-world' }, 'added'),
      },
      { method: 'PUT', path: `${REPO}/pulls/1347/merge`, respond: example('pulls-merge') },
      { method: 'DELETE', path: `${REPO}/git/refs/heads/${head}`, respond: fixture('git-refs', 4) },
    ]);
    const reverted = await forgeAt(s.url).revert(
      'mediawiki-config',
      'main',
      sha,
      'I-revert-bad',
      'signalbox',
      'errors rose on group1',
    );
    expectScriptDone(s);
    expect(reverted.alreadyLanded).toBe(false);
    expect(s.seen[1].query.get('ref')).toBe(parents[0].sha);
    const put = s.seen[7];
    expect(put.body.sha).toBeUndefined(); // the file was not on the branch yet: created, not updated
    expect(Buffer.from(put.body.content, 'base64').toString('utf8')).toBe('# hello-world');
    expect(s.seen[8].body.title).toBe('Revert "Fix all the bugs"');
    expect(s.seen[10].body.commit_message).toBe(
      `errors rose on group1\n\nThis reverts commit ${sha}.\n\nChange-Id: I-revert-bad`,
    );
  });

  it('will not merge, or take as landed, a pull request on its branch that changes what it did not ask for', async () => {
    const asked = { 'wikiversions.json': '{"enwiki": "php-1.41.0-wmf.27"}\n' };
    // Someone who may push to the repository opened the pull request signalbox's retry looks for, with more in it.
    const planted = { ...asked, 'evil.php': '<?php system($_GET["c"]);\n' };
    const open = {
      ...example('pulls-list'),
      body: (example('pulls-list').body as object[]).map((p) => ({ ...p, merged_at: null, merge_commit_sha: null })),
    };
    const mergedAlready = example('pulls-list');
    for (const [pulls, what] of [
      [open, 'open'],
      [mergedAlready, 'merged'],
    ] as const) {
      const s = await serve([
        { method: 'GET', path: `${REPO}/pulls`, respond: pulls },
        { method: 'GET', path: `${REPO}/pulls/1347/files`, respond: pullFiles(planted) },
      ]);
      const err = await forgeAt(s.url)
        .land({
          repo: 'mediawiki-config',
          branch: 'main',
          files: asked,
          subject: 'group1 to 1.41.0-wmf.27',
          changeId: 'I-planted',
          author: 'alice',
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err, `an ${what} pull request`).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).type).toBe('ChangePlanted');
      expect((err as ApplicationFailure).message).toMatch(
        /pull request https:\/\/github\.com\/octocat\/Hello-World\/pull\/1347 \(#1347, opened by octocat\) changes evil\.php other than signalbox asked/,
      );
      expectScriptDone(s); // and no merge was asked for
      await s.close();
      server = undefined;
    }
  });

  it('reads a file raw, exports a tree from the tarball redirect, and tells ancestry from a comparison', async () => {
    const owner = 'octokit-fixture-org';
    const s = await serve([
      { method: 'GET', path: `/repos/${owner}/hello-world/contents/README.md`, respond: fixture('get-content', 1) },
      { method: 'GET', path: `/repos/${owner}/get-archive/tarball/main`, respond: fixture('get-archive', 0) },
      {
        method: 'GET',
        path: `/${owner}/get-archive/legacy.tar.gz/refs/heads/main`,
        respond: fixture('get-archive', 1),
      },
      { method: 'GET', path: `/repos/${owner}/hello-world/compare/aaaaaaa...bbbbbbb`, respond: example('compare') },
    ]);
    const forge = forgeAt(s.url, owner);
    expect(await forge.readFile('hello-world', 'main', 'README.md')).toBe('# hello-world');
    expect(s.seen[0].headers.accept).toBe('application/vnd.github.v3.raw');
    const dest = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-gh-')), 'tree');
    await forge.exportTree('get-archive', 'main', dest);
    expect(fs.readdirSync(dest)).toEqual(['README.md']);
    // GitHub answered "behind": the first commit is not an ancestor of the second.
    expect(await forge.isAncestor('hello-world', 'aaaaaaa', 'bbbbbbb')).toBe(false);
    expectScriptDone(s);
  });

  it('refuses a repository name that is not one, before any request', async () => {
    const s = await serve([]);
    await expect(forgeAt(s.url).readFile('../../orgs/x', 'main', 'a')).rejects.toThrow(/invalid repository name/);
    expect(s.seen).toEqual([]);
  });
});

describe('GitHub blockers', () => {
  const config = (url: string) =>
    ({
      train: {
        blockers: {
          pollMs: 1000,
          github: {
            repository: 'octokit-fixture-org/search-issues',
            apiUrl: url,
            tokenEnv: 'SIGNALBOX_TEST_GITHUB_TOKEN',
          },
        },
      },
    }) as unknown as SignalboxConfig;

  it("finds no blocker issue when the search returns none with this week's title", async () => {
    const s = await serve([{ method: 'GET', path: '/search/issues', respond: fixture('search-issues', 0) }]);
    expect(await createGitHubActivities(config(s.url)).openBlockers({ version: '1.41.0-wmf.26' })).toEqual({
      open: [],
    });
    expect(s.seen[0].query.get('q')).toBe(
      'repo:octokit-fixture-org/search-issues is:issue in:title "1.41.0-wmf.26 deployment blockers"',
    );
    expectScriptDone(s);
  });

  it('holds the train on the open sub-issues of the blocker issue', async () => {
    // The recorded search, with its first issue retitled as this week's blocker issue.
    const search = fixture('search-issues', 0);
    const found = search.body as { items: { title: string; number: number }[] };
    found.items[0].title = '1.41.0-wmf.26 deployment blockers';
    const s = await serve([
      { method: 'GET', path: '/search/issues', respond: search },
      {
        method: 'GET',
        path: `/repos/octokit-fixture-org/search-issues/issues/${found.items[0].number}/sub_issues`,
        respond: example('sub-issues'),
      },
    ]);
    const report = await createGitHubActivities(config(s.url)).openBlockers({ version: '1.41.0-wmf.26' });
    expectScriptDone(s);
    expect(report.issue?.number).toBe(found.items[0].number);
    expect(report.open).toEqual([
      { title: '#1347 Found a bug', url: 'https://github.com/octocat/Hello-World/issues/1347' },
    ]);
  });
});
