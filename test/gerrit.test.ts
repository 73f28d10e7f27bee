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
import { createBackportActivities } from '../activities/backport';
import { GerritForge, gerritChangeId, gitCredentialEnv } from '../activities/gerrit';
import type { SignalboxConfig } from '../config/load';
import { freePort } from '../sandbox/fleet';
import { startGerrit, type RunningGerrit } from '../tools/gerrit-runtime';
import { startTrain, trainInputFrom } from '../cli/client';
import { STATIONS } from '../workflows/names';
import { cli, liveVersions, NEW, startSandbox, type Sandbox } from './helpers';

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

describe('reading changes for a backport', () => {
  /** A change made as people make them, with the message's trailers, optionally on top of another change. */
  const create = (subject: string, key: string, extra: Record<string, unknown> = {}) =>
    rest('POST', 'changes/', {
      project: 'ops-config',
      branch: 'main',
      subject: `${subject}\n\nChange-Id: ${gerritChangeId(key)}\n`,
      ...extra,
    });

  it("reads anyone's change by number: its place, state, trailers, and the open change it sits on", async () => {
    const code = await create('Add the Foo hook', 'backport-read-code');
    const first = await create('Prepare Foo', 'backport-read-first');
    const second = await create(
      `Enable Foo on group0\n\nBug: T4242\nDepends-On: ${code.change_id}`,
      'backport-read-second',
      {
        base_change: first.id,
      },
    );
    const wip = await create('Half done', 'backport-read-wip', { work_in_progress: true });
    const dropped = await create('Not needed', 'backport-read-dropped');
    await rest('POST', `changes/${encodeURIComponent(dropped.id)}/abandon`, {});

    const read = await forge.reviewedChange(second._number);
    expect(read).toEqual({
      number: second._number,
      url: `${gerrit.url.replace(/\/$/, '')}/c/ops-config/+/${second._number}`,
      project: 'ops-config',
      branch: 'main',
      status: 'open',
      workInProgress: false,
      subject: 'Enable Foo on group0',
      owner: gerrit.user,
      changeId: gerritChangeId('backport-read-second'),
      dependsOn: [code.change_id],
      parents: [first._number],
      tasks: ['T4242'],
      patchset: 1,
    });
    expect((await forge.reviewedChange(first._number))?.parents).toEqual([]); // on main itself
    expect((await forge.reviewedChange(wip._number))?.workInProgress).toBe(true);
    expect((await forge.reviewedChange(dropped._number))?.status).toBe('abandoned');
    expect(await forge.reviewedChange(987654)).toBeUndefined();
    // Depends-On by Change-Id finds the change on any branch; a number or URL names itself; nothing else names any.
    expect(await forge.changesNamedBy(code.change_id)).toEqual([code._number]);
    expect(await forge.changesNamedBy(`${gerrit.url}c/ops-config/+/${code._number}`)).toEqual([code._number]);
    expect(await forge.changesNamedBy(`I${'0'.repeat(40)}`)).toEqual([]);
    expect(await forge.changesNamedBy('not a change')).toEqual([]);
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

describe('merging for a backport', () => {
  const bob = { user: 'bob', password: 'bob-http-password' };
  beforeAll(async () => {
    await rest('PUT', `accounts/${bob.user}`, { name: 'Bob', email: 'bob@example.com', http_password: bob.password });
  });
  const create = (subject: string, key: string, as = bob) =>
    rest(
      'POST',
      'changes/',
      { project: 'ops-config', branch: 'main', subject: `${subject}\n\nChange-Id: ${gerritChangeId(key)}\n` },
      as,
    );

  it("merges someone's change on behalf of the deployer, once; refuses a moved-on change and, if asked, one no person approved", async () => {
    const head = () => forge.resolve('ops-config', 'refs/heads/main');
    const change = await create('Raise the upload limit', 'backport-merge-one');
    const request = { number: change._number, patchset: 1, deployer: 'alice', requireHumanReview: false };
    // With requireHumanReview, signalbox's own +2 is not enough: it refuses before voting.
    const unreviewed = await forge.mergeReviewed({ ...request, requireHumanReview: true }).catch((e) => e);
    expect(unreviewed).toBeInstanceOf(ApplicationFailure);
    expect(unreviewed.type).toBe('NeedsReview');
    expect((await rest('GET', `changes/${change._number}`)).status).toBe('NEW');

    const before = await head();
    const merged = await forge.mergeReviewed(request);
    expect(merged).toMatchObject({ alreadyMerged: false, patchset: 1 });
    expect(await head()).toBe(merged.sha);
    const detail = await rest('GET', `changes/${change._number}/detail`);
    expect(detail.status).toBe('MERGED');
    expect(detail.messages.map((m: { message: string }) => m.message).join('\n')).toContain(
      'signalbox: backport deployed by alice',
    );
    expect(await forge.mergeReviewed(request)).toEqual({ sha: merged.sha, alreadyMerged: true, patchset: 1 });

    // A patch set uploaded after the check: nothing is voted or merged, and the person is asked to look again.
    const moving = await create('Lower the upload limit', 'backport-merge-moving');
    await rest(
      'PUT',
      `changes/${moving.id}/edit/limit.txt`,
      { binary_content: `data:text/plain;base64,${Buffer.from('10\n').toString('base64')}` },
      bob,
    );
    await rest('POST', `changes/${moving.id}/edit:publish`, { notify: 'NONE' }, bob);
    const moved = await forge.mergeReviewed({ ...request, number: moving._number }).catch((e) => e);
    expect(moved.type).toBe('NewPatchSet');
    expect(moved.message).toMatch(/is at patch set 2, not 1 that was checked/);
    expect((await rest('GET', `changes/${moving._number}`)).status).toBe('NEW');

    // The extra-commit guard: a change merged by someone else since the backport began is named; its own is not.
    const ours = await create('Enable the new skin on testwiki', 'backport-merge-ours');
    const start = await head();
    const theirs = await create('Something else entirely', 'backport-merge-theirs');
    await forge.mergeReviewed({ ...request, number: theirs._number });
    await forge.mergeReviewed({ ...request, number: ours._number });
    // Only what the activity needs of a config: where Gerrit is, and a state folder for its mirror.
    const backports = createBackportActivities({ home: work, forge: { gerrit: forge.spec } } as SignalboxConfig);
    // No host runs a release with a known source here, so the head before the merges stands in for production.
    const guard = await backports.broughtBeyond({
      repo: 'ops-config',
      service: 'mediawiki-config',
      head: await head(),
      before: start,
      running: [],
      changeIds: [gerritChangeId('backport-merge-ours')],
    });
    expect(guard.extra.map((c) => c.subject)).toEqual(['Something else entirely']);
    expect(before).not.toBe(start);
  });
});

describe('a train through Gerrit', () => {
  let sandbox: Sandbox | undefined;
  afterEach(async () => {
    await sandbox?.stop();
    sandbox = undefined;
  });

  /** The sandbox's repositories move to Gerrit, history and all, as a site would import them. */
  async function onGerrit(s: Sandbox, push = true): Promise<void> {
    const env = gitCredentialEnv(gerrit.url, gerrit.user, gerrit.password);
    // Gerrit cannot delete a project: a later sandbox uses what the first one pushed (tests run in file order).
    for (const repo of push ? ['mediawiki', 'mediawiki-config'] : []) {
      await rest('PUT', `projects/${repo}`, {});
      await run('git', ['push', '--quiet', `${gerrit.url}a/${repo}`, '+refs/heads/*:refs/heads/*'], {
        cwd: path.join(s.forge.reposDir, `${repo}.git`),
        env,
      });
    }
    s.reconfigure(
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
  }

  it('cuts its branches and moves every station as a change reviewed and submitted in Gerrit', async () => {
    sandbox = await startSandbox({ worker: false });
    await onGerrit(sandbox);
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

  it('backport plan, seed 001: a config change whose code change is not merged is refused; given both in the wrong order, the code goes first', async () => {
    // The repositories the train above moved to Gerrit, with its branch live on every station.
    sandbox = await startSandbox({ worker: false });
    await onGerrit(sandbox, false);
    const s = sandbox;
    const live = `wmf/${NEW}`;
    const create = (project: string, branch: string, subject: string, key: string) =>
      rest('POST', 'changes/', { project, branch, subject: `${subject}\n\nChange-Id: ${gerritChangeId(key)}\n` });
    const code = await create('mediawiki', live, 'Add the Foo hook', 'seed001-code');
    const config = await create(
      'mediawiki-config',
      'main',
      `Enable Foo on group0\n\nBug: T001\nDepends-On: ${code.change_id}`,
      'seed001-config',
    );
    await create('mediawiki-config', 'main', 'Draft: rework the logos', 'seed001-wip').then((c) =>
      rest('POST', `changes/${c.id}/wip`, {}),
    );
    const listed = await cli(s, ['backport', 'list']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(
      `${code._number} mediawiki ${live}: Add the Foo hook (${gerrit.user}) nothing against it\n`,
    );
    expect(listed.stdout).toContain(
      `${config._number} mediawiki-config main: Enable Foo on group0 (${gerrit.user}) nothing against it\n`,
    );
    expect(listed.stdout).toMatch(
      /\d+ mediawiki-config main: Draft: rework the logos \(\w+\) cannot go: work in progress\n/,
    );
    const alone = await cli(s, ['backport', 'plan', String(config._number)]);
    expect(alone.code, alone.stderr).toBe(1);
    expect(alone.stdout).toBe(
      `refused, nothing would be merged:\n  ${config._number} (mediawiki-config main: Enable Foo on group0): its Depends-On ${code._number} (Add the Foo hook) is not merged (open) and not in this backport: ship ${code._number} first, or add it to this backport; pulled in by ${config._number} -> Depends-On ${code.change_id}\n`,
    );
    const both = await cli(s, [
      'backport',
      'plan',
      `${gerrit.url}c/mediawiki-config/+/${config._number}`,
      String(code._number),
    ]);
    expect(both.code, both.stderr).toBe(0);
    expect(both.stdout).toBe(
      `  sync 1: mediawiki ${live}\n    ${code._number} Add the Foo hook (${gerrit.user})\n  sync 2: mediawiki-config main\n    ${config._number} Enable Foo on group0 (${gerrit.user}, T001)\n`,
    );
    // Bad input reaches no forge and changes nothing.
    const bad = await cli(s, ['backport', 'plan', 'I0123', String(code._number)]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/"I0123" names no change: give a Gerrit change number/);
    expect((await rest('GET', `changes/${code._number}`)).status).toBe('NEW');
    // Merged but not yet deployed: still refused, as no host serves it (the hosts are read, not the forge).
    await forge.mergeReviewed({ number: code._number, patchset: 1, deployer: 'alice', requireHumanReview: false });
    const notLive = await cli(s, ['backport', 'plan', String(config._number)]);
    expect(notLive.code, notLive.stderr).toBe(1);
    expect(notLive.stdout).toContain(
      `its Depends-On ${code._number} (Add the Foo hook) is merged but not live on every host it reaches`,
    );
  });
});
