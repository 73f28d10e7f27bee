// The Gerrit forge against a real Gerrit (the release war from Maven Central, a dev-mode site made for this run):
// branch cut, a change created with its Change-Id, edited, +2'd, submitted and awaited until MERGED, retries that
// find their own work, Gerrit's revert, and the history reads that Depends-On uses; changes planted by another
// account under signalbox's Change-Id are refused. Then a whole train whose branch cut and station moves all go
// through that Gerrit.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import { GerritForge, gerritChangeId, gitCredentialEnv } from '../activities/gerrit';
import { freePort } from '../sandbox/fleet';
import { startGerrit, type RunningGerrit } from '../tools/gerrit-runtime';
import { startTrain, trainInputFrom } from '../cli/client';
import { STATIONS } from '../workflows/names';
import { liveVersions, NEW, startSandbox, type Sandbox } from './helpers';

const run = promisify(execFile);

let gerrit: RunningGerrit;
let forge: GerritForge;
let work: string;

async function rest(
  method: string,
  url: string,
  body?: unknown,
  as = { user: gerrit.user, password: gerrit.password },
): Promise<any> {
  const res = await fetch(`${gerrit.url}a/${url}`, {
    method,
    headers: {
      authorization: `Basic ${Buffer.from(`${as.user}:${as.password}`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return text.trim() ? JSON.parse(text.replace(/^\)\]\}'\n/, '')) : undefined;
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-gerrit-'));
  gerrit = await startGerrit(path.join(work, 'site'), await freePort());
  process.env.SIGNALBOX_TEST_GERRIT_PASSWORD = gerrit.password;
  forge = new GerritForge(
    { url: gerrit.url, user: gerrit.user, passwordEnv: 'SIGNALBOX_TEST_GERRIT_PASSWORD', mergeTimeoutMs: 60_000 },
    path.join(work, 'mirror'),
  );
  await rest('PUT', 'projects/ops-config', { create_empty_commit: true, branches: ['main'] });
}, 180_000);

afterAll(async () => {
  await gerrit?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('Gerrit forge', () => {
  it('cuts a branch and lands a change through review and submit; a retry finds it merged', async () => {
    const main = await forge.resolve('ops-config', 'refs/heads/main');
    expect(await forge.createBranch('ops-config', 'wmf/1.41.0-wmf.26', 'refs/heads/main')).toBe(main);
    expect(await forge.createBranch('ops-config', 'wmf/1.41.0-wmf.26', 'refs/heads/main')).toBe(main);
    expect((await forge.branches('ops-config')).sort()).toEqual(['main', 'wmf/1.41.0-wmf.26']);

    const wikiversions = '{\n  "testwiki": "php-1.41.0-wmf.26"\n}\n';
    const change = {
      repo: 'ops-config',
      branch: 'main',
      files: { 'wikiversions.json': wikiversions },
      subject: 'testwikis to 1.41.0-wmf.26',
      changeId: 'train-1.41.0-wmf.26-testwikis',
      dependsOn: ['I-code-fix'],
      author: 'alice',
    };
    const landed = await forge.land(change);
    expect(landed.alreadyLanded).toBe(false);
    expect(await forge.resolve('ops-config', 'refs/heads/main')).toBe(landed.sha);
    expect(await forge.readFile('ops-config', 'refs/heads/main', 'wikiversions.json')).toBe(wikiversions.trimEnd());

    const [info] = await rest(
      'GET',
      `changes/?q=change:${gerritChangeId(change.changeId)}&o=DETAILED_LABELS&o=CURRENT_REVISION&o=CURRENT_COMMIT`,
    );
    expect(info.status).toBe('MERGED');
    expect(info.labels['Code-Review'].all.find((v: { value: number }) => v.value === 2)).toBeTruthy();
    expect(info.revisions[info.current_revision].commit.message).toBe(
      `testwikis to 1.41.0-wmf.26\n\nDepends-On: I-code-fix\nChange-Id: ${gerritChangeId(change.changeId)}`,
    );

    const retried = await forge.land(change);
    expect(retried).toEqual({ sha: landed.sha, changeId: change.changeId, alreadyLanded: true });
    const commits = await forge.commits('ops-config', landed.sha, [main], 10);
    expect(commits.map((c) => c.dependsOn)).toEqual([['I-code-fix']]);
    expect(await forge.findChange('ops-config', change.changeId)).toEqual([landed.sha]);
    expect(await forge.isAncestor('ops-config', main, landed.sha)).toBe(true);
    expect(await forge.isAncestor('ops-config', landed.sha, main)).toBe(false);
  });

  it('finishes a change an earlier attempt created but never submitted', async () => {
    const changeId = 'train-half-done';
    await rest('POST', 'changes/', {
      project: 'ops-config',
      branch: 'main',
      subject: `half done\n\nChange-Id: ${gerritChangeId(changeId)}\n`,
    });
    const landed = await forge.land({
      repo: 'ops-config',
      branch: 'main',
      files: { 'half.txt': 'finished\n' },
      subject: 'half done',
      changeId,
      author: 'alice',
    });
    expect(landed.alreadyLanded).toBe(false);
    expect(await forge.readFile('ops-config', landed.sha, 'half.txt')).toBe('finished');
    const changes = await rest('GET', `changes/?q=change:${gerritChangeId(changeId)}`);
    expect(changes).toHaveLength(1);
  });

  it("reverts with Gerrit's revert, submitted, and a repeat finds the revert it made", async () => {
    const before = await forge.readFile('ops-config', 'refs/heads/main', 'wikiversions.json');
    const bad = await forge.land({
      repo: 'ops-config',
      branch: 'main',
      files: { 'wikiversions.json': '{"broken": true}\n' },
      subject: 'a bad move',
      changeId: 'train-bad-move',
      author: 'alice',
    });
    const reverted = await forge.revert(
      'ops-config',
      'main',
      bad.sha,
      'train-bad-move-revert',
      'signalbox',
      'errors rose on group1',
    );
    expect(reverted.alreadyLanded).toBe(false);
    expect(await forge.readFile('ops-config', 'refs/heads/main', 'wikiversions.json')).toBe(before);
    const [original] = await rest('GET', `changes/?q=commit:${bad.sha}`);
    const reverts = await rest('GET', `changes/?q=revertof:${original._number}`);
    expect(reverts.map((r: { status: string }) => r.status)).toEqual(['MERGED']);
    expect(await forge.revert('ops-config', 'main', bad.sha, 'train-bad-move-revert', 'signalbox', 'again')).toEqual({
      sha: reverted.sha,
      changeId: 'train-bad-move-revert',
      alreadyLanded: true,
    });
  });

  it('refuses a bad repository name and a missing password before any request', async () => {
    await expect(
      forge.land({ repo: '../All-Users', branch: 'main', files: {}, subject: 'x', changeId: 'x', author: 'a' }),
    ).rejects.toThrow(/invalid repository name/);
    expect(
      () =>
        new GerritForge(
          { url: gerrit.url, user: 'admin', passwordEnv: 'SIGNALBOX_NO_SUCH_VARIABLE', mergeTimeoutMs: 1000 },
          work,
        ),
    ).toThrow(/set SIGNALBOX_NO_SUCH_VARIABLE/);
  });
});

describe('changes signalbox did not make', () => {
  const mallory = { user: 'mallory', password: 'mallory-http-password' };
  beforeAll(async () => {
    // Anyone who may upload: a second account, made by the admin as a dev-mode site allows.
    await rest('PUT', `accounts/${mallory.user}`, {
      name: 'Mallory',
      email: 'mallory@example.com',
      http_password: mallory.password,
    });
  });

  /** A change made (or a patch set added) by `as` through the REST API: the file edited and the edit published. */
  async function upload(
    as: typeof mallory,
    change: { id?: string; changeId?: string; subject?: string },
    files: Record<string, string>,
  ): Promise<{ id: string; _number: number }> {
    const made = change.id
      ? { id: change.id }
      : await rest(
          'POST',
          'changes/',
          { project: 'ops-config', branch: 'main', subject: `${change.subject}\n\nChange-Id: ${change.changeId}\n` },
          as,
        );
    for (const [file, content] of Object.entries(files)) {
      await rest(
        'PUT',
        `changes/${encodeURIComponent(made.id)}/edit/${encodeURIComponent(file)}`,
        { binary_content: `data:text/plain;base64,${Buffer.from(content).toString('base64')}` },
        as,
      );
    }
    await rest('POST', `changes/${encodeURIComponent(made.id)}/edit:publish`, { notify: 'NONE' }, as);
    return rest('GET', `changes/${encodeURIComponent(made.id)}`);
  }

  async function plantedFailure(landing: Promise<unknown>): Promise<ApplicationFailure> {
    const err = await landing.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'land should have refused').toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('ChangePlanted');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    return err as ApplicationFailure;
  }

  async function expectUntouched(change: { id: string }, mainBefore: string) {
    const now = await rest('GET', `changes/${encodeURIComponent(change.id)}?o=DETAILED_LABELS`);
    expect(now.status).toBe('NEW');
    expect(now.labels['Code-Review'].all?.some((v: { value?: number }) => v.value === 2) ?? false).toBe(false);
    expect(await forge.resolve('ops-config', 'refs/heads/main')).toBe(mainBefore);
  }

  it('will not approve or submit a change another account uploaded under the Change-Id signalbox uses next', async () => {
    const changeId = 'train-1.41.0-wmf.27-group1'; // the id the next land will carry, known to whoever planted this
    const planted = await upload(
      mallory,
      { changeId: gerritChangeId(changeId), subject: 'group1 to 1.41.0-wmf.27' },
      { 'wikiversions.json': '{"enwiki": "php-evil"}\n', 'evil.php': '<?php system($_GET["c"]);\n' },
    );
    const mainBefore = await forge.resolve('ops-config', 'refs/heads/main');
    const err = await plantedFailure(
      forge.land({
        repo: 'ops-config',
        branch: 'main',
        files: { 'wikiversions.json': '{"enwiki": "php-1.41.0-wmf.27"}\n' },
        subject: 'group1 to 1.41.0-wmf.27',
        changeId,
        author: 'alice',
      }),
    );
    expect(err.message).toContain(`Gerrit change ${planted._number} `);
    expect(err.message).toMatch(/is owned by mallory \(account \d+\)/);
    await expectUntouched(planted, mainBefore);
  });

  it('will not approve its own change once another account has uploaded a patch set to it', async () => {
    const changeId = 'train-taken-over';
    const ours = await upload(
      { user: gerrit.user, password: gerrit.password },
      { changeId: gerritChangeId(changeId), subject: 'an earlier attempt' },
      { 'taken.txt': 'as signalbox wrote it\n' },
    );
    await upload(mallory, { id: ours.id }, { 'evil.php': '<?php system($_GET["c"]);\n' });
    const mainBefore = await forge.resolve('ops-config', 'refs/heads/main');
    const err = await plantedFailure(
      forge.land({
        repo: 'ops-config',
        branch: 'main',
        files: { 'taken.txt': 'as signalbox wrote it\n' },
        subject: 'an earlier attempt',
        changeId,
        author: 'alice',
      }),
    );
    expect(err.message).toContain(`Gerrit change ${ours._number} `);
    expect(err.message).toMatch(/has patch set 3 uploaded by mallory \(account \d+\)/);
    await expectUntouched(ours, mainBefore);
  });

  it('will not approve its own change when the patch set holds files it did not ask for', async () => {
    const changeId = 'train-extra-file';
    const ours = await upload(
      { user: gerrit.user, password: gerrit.password },
      { changeId: gerritChangeId(changeId), subject: 'one file only' },
      { 'one.txt': 'one\n', 'extra.txt': 'not asked for\n' },
    );
    const mainBefore = await forge.resolve('ops-config', 'refs/heads/main');
    const err = await plantedFailure(
      forge.land({
        repo: 'ops-config',
        branch: 'main',
        files: { 'one.txt': 'one\n' },
        subject: 'one file only',
        changeId,
        author: 'alice',
      }),
    );
    expect(err.message).toMatch(new RegExp(`Gerrit change ${ours._number} .*also changes extra\\.txt`));
    await expectUntouched(ours, mainBefore);
  });
});

describe('a train through Gerrit', () => {
  let sandbox: Sandbox | undefined;
  afterEach(async () => {
    await sandbox?.stop();
    sandbox = undefined;
  });

  it('cuts its branches and moves every station as a change reviewed and submitted in Gerrit', async () => {
    sandbox = await startSandbox({ worker: false });
    // The sandbox's repositories move to Gerrit, history and all, as a site would import them.
    const env = gitCredentialEnv(gerrit.url, gerrit.user, gerrit.password);
    for (const repo of ['mediawiki', 'mediawiki-config']) {
      await rest('PUT', `projects/${repo}`, {});
      await run('git', ['push', '--quiet', `${gerrit.url}a/${repo}`, '+refs/heads/*:refs/heads/*'], {
        cwd: path.join(sandbox.forge.reposDir, `${repo}.git`),
        env,
      });
    }
    sandbox.reconfigure(
      (raw) =>
        (raw.forge = {
          gerrit: {
            url: gerrit.url,
            user: gerrit.user,
            passwordEnv: 'SIGNALBOX_TEST_GERRIT_PASSWORD',
            mergeTimeoutMs: 60_000,
          },
        }),
    );
    await sandbox.startWorker();
    const result = await (
      await startTrain(sandbox.client, sandbox.config, trainInputFrom(sandbox.config, NEW, { autoApprove: true }))
    ).result();
    expect(result.state).toBe('complete');

    for (const repo of ['mediawiki', 'mediawiki-config']) {
      const branches = await rest('GET', `projects/${repo}/branches/`);
      expect(branches.map((b: { ref: string }) => b.ref)).toContain(`refs/heads/wmf/${NEW}`);
    }
    const merged = await rest('GET', 'changes/?q=project:mediawiki-config+branch:main+status:merged&o=DETAILED_LABELS');
    for (const station of STATIONS) {
      const move = merged.find((c: { subject: string }) => c.subject.includes(station) && c.subject.includes(NEW));
      expect(
        move,
        `the change moving ${station}: ${merged.map((c: { subject: string }) => c.subject).join(' | ')}`,
      ).toBeTruthy();
      expect(move.labels['Code-Review'].all.some((v: { value: number }) => v.value === 2)).toBe(true);
    }
    // What the hosts serve came from Gerrit: the local repositories never saw the train's changes.
    expect(await sandbox.forge.branches('mediawiki')).not.toContain(`wmf/${NEW}`);
    for (const [db, versions] of await liveVersions(sandbox)) expect([...versions], db).toEqual([NEW]);
  });
});
