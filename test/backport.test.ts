// Backports end to end, through the CLI, on a real Gerrit and the sandbox fleet with a test server: reviewed
// changes are merged, staged once, synced to the test server, confirmed by a person, then shipped with canaries.
// An abort or silence at the test server leaves production untouched and the forge reverted; a fault the
// canaries see is rolled back and reverted and waits for an acknowledgement.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gerritChangeId, gitCredentialEnv } from '../activities/gerrit';
import { loadInventory } from '../activities/inventory';
import { freePort } from '../sandbox/fleet';
import { faultsFile } from '../sandbox/server';
import { SANDBOX_START_VERSION } from '../sandbox/wikis';
import { startGerrit, type RunningGerrit } from '../tools/gerrit-runtime';
import { confirmBackport, type BackportStatus } from '../workflows/definitions';
import { startBackport } from '../cli/client';
import { WEEKDAYS } from '../workflows/windows';
import { cli, refusal, signedAuth, signingAs, startSandbox, waitFor, type Sandbox } from './helpers';

const run = promisify(execFile);
const BOB = { user: 'bob', password: 'bob-http-password' };
const TEST_SERVER = 'mwdebug1001';

let gerrit: RunningGerrit;
let s: Sandbox;
let work: string;

async function rest(
  method: string,
  url: string,
  body?: unknown,
  as = { user: gerrit.user, password: gerrit.password },
) {
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

/** A change as a person uploads it: Bob's, with its files edited in and published as patch set 1. */
async function change(project: string, branch: string, subject: string, files: Record<string, string>, key: string) {
  const created = await rest(
    'POST',
    'changes/',
    { project, branch, subject: `${subject}\n\nChange-Id: ${gerritChangeId(key)}\n` },
    BOB,
  );
  for (const [file, content] of Object.entries(files))
    await rest(
      'PUT',
      `changes/${created.id}/edit/${encodeURIComponent(file)}`,
      { binary_content: `data:text/plain;base64,${Buffer.from(content).toString('base64')}` },
      BOB,
    );
  await rest('POST', `changes/${created.id}/edit:publish`, { notify: 'NONE' }, BOB);
  return created as { _number: number; id: string; change_id: string };
}

/** A file as each host serves it for a service: its text, or null where it is absent. */
function onHosts(service: string, link: string, file: string): Record<string, string | null> {
  return Object.fromEntries(
    loadInventory(s.config).hosts.map((h) => {
      const at = path.join(h.root, service, link, file);
      return [h.name, fs.existsSync(at) ? fs.readFileSync(at, 'utf8') : null];
    }),
  );
}

const status = async (n: number): Promise<BackportStatus> => {
  const shown = await cli(s, ['backport', 'status', String(n), '--json']);
  if (shown.code !== 0) throw new Error(shown.stderr);
  return JSON.parse(shown.stdout);
};
/** Polls the status through the CLI until `ready`; on a timeout, says where the backport stood. */
async function reaches(n: number, what: string, ready: (b: BackportStatus) => boolean, timeoutMs = 90_000) {
  let last: BackportStatus | undefined;
  try {
    return await waitFor(
      `backport ${n} ${what}`,
      async () => {
        last = await status(n);
        return ready(last) && last;
      },
      timeoutMs,
      500,
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}; it stood at ${JSON.stringify(last && { ...last, events: last.events.slice(-8) })}`,
    );
  }
}
const onTestServer = (b: BackportStatus) =>
  b.step === 'awaiting-confirmation' && b.syncs[b.current]?.state === 'on-test-servers';
/** A file on a branch in Gerrit, or null where the branch has none. */
const fileOn = (project: string, branch: string, file: string) =>
  rest(
    'GET',
    `projects/${project}/branches/${encodeURIComponent(branch)}/files/${encodeURIComponent(file)}/content`,
  ).then(
    () => 'present',
    (err: Error) => (/: 404 /.test(err.message) ? null : Promise.reject(err)),
  );
const headOf = async (project: string, branch: string) =>
  (await rest('GET', `projects/${project}/branches/${encodeURIComponent(branch)}`)).revision as string;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-backport-'));
  gerrit = await startGerrit(path.join(work, 'site'), await freePort());
  process.env.SIGNALBOX_TEST_GERRIT_PASSWORD = gerrit.password;
  await rest('PUT', `accounts/${BOB.user}`, { name: 'Bob', email: 'bob@example.com', http_password: BOB.password });
  s = await startSandbox({
    worker: false,
    // Three one-second canary samples of 200 requests a second, as the rollout tests judge a canary.
    trafficPerSecond: 200,
    configure: (raw) => {
      raw.services['mediawiki-config'].analysis.measurements = 3;
      raw.fleet.sandbox.testServers = 1;
      raw.backport = { testHosts: 'debug', confirmTimeoutMs: 600_000 };
    },
  });
  // The sandbox's repositories move to Gerrit, history and all, as a site would import them.
  for (const repo of ['mediawiki', 'mediawiki-config']) {
    await rest('PUT', `projects/${repo}`, {});
    await run('git', ['push', '--quiet', `${gerrit.url}a/${repo}`, '+refs/heads/*:refs/heads/*'], {
      cwd: path.join(s.forge.reposDir, `${repo}.git`),
      env: gitCredentialEnv(gerrit.url, gerrit.user, gerrit.password),
    });
  }
  s.reconfigure((raw) => {
    raw.forge = {
      gerrit: {
        url: gerrit.url,
        user: gerrit.user,
        passwordEnv: 'SIGNALBOX_TEST_GERRIT_PASSWORD',
        mergeTimeoutMs: 60_000,
      },
    };
  });
  await s.startWorker();
}, 240_000);

afterAll(async () => {
  await s?.stop();
  await gerrit?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('signalbox backport', () => {
  it('a config change and a code cherry-pick that needs it go code first, each on the test server before production', async () => {
    const live = `wmf/${SANDBOX_START_VERSION}`;
    const code = await change(
      'mediawiki',
      live,
      'Add the Foo hook',
      { 'includes/Foo.php': '<?php // Foo\n' },
      'bp-code',
    );
    const config = await change(
      'mediawiki-config',
      'main',
      `Enable Foo on group0\n\nBug: T001\nDepends-On: ${code.change_id}`,
      { 'foo.json': '{"enabled": true}\n' },
      'bp-config',
    );
    // Given in the wrong order, detached: the CLI returns at once and the workflow goes on.
    const started = await cli(s, ['backport', String(config._number), String(code._number), '--detach']);
    expect(started.code, started.stderr).toBe(0);
    const n = config._number;
    const first = await reaches(n, 'on the test server (code)', onTestServer);
    expect(first.syncs.map((x) => `${x.project} ${x.branch}`)).toEqual(['mediawiki ' + live, 'mediawiki-config main']);
    expect(first.current).toBe(0);
    expect(first.waitingFor).toContain(`${TEST_SERVER} (`);
    const php = onHosts('mediawiki', `php-${SANDBOX_START_VERSION}`, 'includes/Foo.php');
    expect(php[TEST_SERVER]).toBe('<?php // Foo\n');
    expect(Object.entries(php).filter(([h, v]) => h !== TEST_SERVER && v !== null)).toEqual([]);
    // The config change is not merged yet: it waits for its code to be live everywhere.
    expect((await rest('GET', `changes/${config._number}`)).status).toBe('NEW');

    expect((await cli(s, ['backport', 'confirm', String(n)])).code).toBe(0);
    const second = await reaches(n, 'on the test server (config)', (b) => onTestServer(b) && b.current === 1);
    expect(Object.values(onHosts('mediawiki', `php-${SANDBOX_START_VERSION}`, 'includes/Foo.php'))).toEqual(
      loadInventory(s.config).hosts.map(() => '<?php // Foo\n'),
    );
    const json = onHosts('mediawiki-config', 'current', 'foo.json');
    expect(json[TEST_SERVER]).toBe('{"enabled": true}\n');
    expect(Object.entries(json).filter(([h, v]) => h !== TEST_SERVER && v !== null)).toEqual([]);
    expect(second.syncs[1].release).toMatch(/^config-[0-9a-f]{12}$/);
    // A confirmation of the first question (a stale one, or one slow to arrive) cannot answer the second.
    const stale = s.client.workflow
      .getHandle(`backport-${n}`)
      .executeUpdate(confirmBackport, { args: [{ by: 'alice', question: 1 }] });
    expect(await refusal(stale)).toMatch(/^the confirmation answers question 1, but question 2 is waiting: /);

    expect((await cli(s, ['backport', 'confirm', String(n)])).code).toBe(0);
    const done = await reaches(n, 'done', (b) => b.step === 'done');
    expect(done.syncs.map((x) => x.state)).toEqual(['live', 'live']);
    expect(Object.values(onHosts('mediawiki-config', 'current', 'foo.json'))).toEqual(
      loadInventory(s.config).hosts.map(() => '{"enabled": true}\n'),
    );
    for (const c of [code, config]) expect((await rest('GET', `changes/${c._number}`)).status).toBe('MERGED');
    const sal = fs.readFileSync(s.config.notify.salFile, 'utf8');
    expect(sal).toContain(`merged ${code._number} (Add the Foo hook)`);
    expect(sal).toContain(`merged ${config._number} (Enable Foo on group0)`);
    const report = await cli(s, ['backport', 'report', String(n)]);
    expect(report.stdout).toContain(`# Incident documentation: backport-${n}`);
    expect(report.stdout).toContain('confirmed sync 1');
    expect(report.stdout).toContain('confirmed sync 2');
  });

  it('an abort and a timeout at the test server leave production untouched and the forge reverted', async () => {
    const before = await headOf('mediawiki-config', 'main');
    const production = onHosts('mediawiki-config', 'current', 'wikiversions.json');
    const aborted = await change(
      'mediawiki-config',
      'main',
      'Raise the upload limit',
      { 'limit.txt': '100\n' },
      'bp-abort',
    );
    expect((await cli(s, ['backport', String(aborted._number), '--detach'])).code).toBe(0);
    await reaches(aborted._number, 'on the test server', onTestServer);
    expect(onHosts('mediawiki-config', 'current', 'limit.txt')[TEST_SERVER]).toBe('100\n');
    const noReason = await cli(s, ['backport', 'abort', String(aborted._number)]);
    expect(noReason.code).not.toBe(0);
    const abort = await cli(s, ['backport', 'abort', String(aborted._number), '--reason', 'the limit is wrong']);
    expect(abort.code, abort.stderr).toBe(0);
    const ended = await reaches(aborted._number, 'aborted', (b) => b.step === 'aborted');
    expect(ended.outcome).toMatch(
      /aborted by .*: the limit is wrong\. Production untouched; test servers back: mwdebug1001 on config-/,
    );
    expect(Object.values(onHosts('mediawiki-config', 'current', 'limit.txt'))).toEqual(
      loadInventory(s.config).hosts.map(() => null),
    );
    expect(onHosts('mediawiki-config', 'current', 'wikiversions.json')).toEqual(production);
    expect((await rest('GET', `changes/${aborted._number}`)).status).toBe('MERGED');
    const reverts = await rest('GET', `changes/?q=${encodeURIComponent(`revertof:${aborted._number}`)}`);
    expect(reverts.map((r: { status: string }) => r.status)).toEqual(['MERGED']);
    // Merged, then reverted: the branch has moved on, and no longer has the file.
    expect(await headOf('mediawiki-config', 'main')).not.toBe(before);
    expect(await fileOn('mediawiki-config', 'main', 'limit.txt')).toBeNull();

    // Nobody answers: the same, by itself, once confirmTimeoutMs passes.
    s.reconfigure((raw) => (raw.backport.confirmTimeoutMs = 3000));
    const silent = await change(
      'mediawiki-config',
      'main',
      'Lower the upload limit',
      { 'limit.txt': '5\n' },
      'bp-silent',
    );
    expect((await cli(s, ['backport', String(silent._number), '--detach'])).code).toBe(0);
    const timedOut = await reaches(silent._number, 'aborted by the timeout', (b) => b.step === 'aborted');
    expect(timedOut.outcome).toMatch(/^nobody confirmed within 3 s\. Production untouched; test servers back/);
    expect(Object.values(onHosts('mediawiki-config', 'current', 'limit.txt'))).toEqual(
      loadInventory(s.config).hosts.map(() => null),
    );
    s.reconfigure((raw) => (raw.backport.confirmTimeoutMs = 600_000));
  });

  it('a fault the canaries see is rolled back and reverted and waits for an ack; a backport behind it waits for the lease', async () => {
    const faulty = await change(
      'mediawiki-config',
      'main',
      'Enable the new parser',
      { 'parser.txt': 'new\n' },
      'bp-faulty',
    );
    const behind = await change('mediawiki-config', 'main', 'Tweak the logo', { 'logo.txt': 'v2\n' }, 'bp-behind');
    const production = onHosts('mediawiki-config', 'current', 'wikiversions.json');
    expect((await cli(s, ['backport', String(faulty._number), '--detach'])).code).toBe(0);
    const testing = await reaches(faulty._number, 'on the test server', onTestServer);
    // Another backport of the same service waits behind it, saying so, instead of racing it.
    expect((await cli(s, ['backport', String(behind._number), '--detach'])).code).toBe(0);
    const waiting = await reaches(behind._number, 'waiting for the lease', (b) => b.step === 'waiting-for-lease');
    expect(waiting.waitingFor).toContain(`backport-${faulty._number}`);
    expect((await rest('GET', `changes/${behind._number}`)).status).toBe('NEW');

    // The release turns out bad in production: its errors show on the canaries (the sandbox's fault on it).
    const release = testing.syncs[0].release!;
    const everywhere = { errorRate: 0.3 };
    const fault = { groups: { testwikis: everywhere, group0: everywhere, group1: everywhere, group2: everywhere } };
    fs.writeFileSync(faultsFile(s.home), JSON.stringify({ [release]: fault }));
    // The test server runs it already, and now fails a good share of what it is asked.
    const server = loadInventory(s.config).hosts.find((h) => h.name === TEST_SERVER)!;
    const answers = await waitFor('the fault on the test server', async () => {
      const codes = await Promise.all(
        Array.from({ length: 20 }, () =>
          fetch(`http://${server.address}:${server.port}/wiki/Main_Page?wiki=enwiki`).then((r) => r.status),
        ),
      );
      return codes.filter((c) => c === 500).length >= 2 && codes;
    });
    expect(answers.length).toBe(20);
    expect((await cli(s, ['backport', 'confirm', String(faulty._number)])).code).toBe(0);
    const failed = await reaches(faulty._number, 'awaiting an ack', (b) => b.step === 'awaiting-ack');
    expect(failed.outcome).toMatch(
      new RegExp(
        `^production did not take ${release}: canary analysis failed: [\\s\\S]*The engine rolled the hosts back; test servers back: mwdebug1001 on config-[0-9a-f]{12}; reverted ${faulty._number} in the forge\\. Merge a fix or a revert`,
      ),
    );
    expect(onHosts('mediawiki-config', 'current', 'wikiversions.json')).toEqual(production);
    expect(Object.values(onHosts('mediawiki-config', 'current', 'parser.txt'))).toEqual(
      loadInventory(s.config).hosts.map(() => null),
    );
    expect(await fileOn('mediawiki-config', 'main', 'parser.txt')).toBeNull();

    // The lease is free while the failed one waits for a person: the one behind goes on to its test server.
    await reaches(behind._number, 'on the test server', onTestServer);
    const ack = await cli(s, ['backport', 'ack', String(faulty._number), '--reason', 'fix in a follow-up']);
    expect(ack.code, ack.stderr).toBe(0);
    await reaches(faulty._number, 'closed', (b) => b.step === 'rolled-back');
    expect((await cli(s, ['backport', 'abort', String(behind._number), '--reason', 'not today'])).code).toBe(0);
    await reaches(behind._number, 'aborted', (b) => b.step === 'aborted');
    fs.writeFileSync(faultsFile(s.home), '{}');
  });

  it('outside its window a backport needs --emergency from an approver; unsigned and deployer-only ones are refused', async () => {
    const tomorrow = WEEKDAYS[(new Date().getUTCDay() + 1) % 7];
    s.reconfigure((raw) => {
      signedAuth()(raw);
      raw.backport.windows = { timezone: 'UTC', times: [{ days: [tomorrow], from: '00:00', to: '24:00' }] };
    });
    await s.stopWorker();
    await s.startWorker();
    const wip = await change('mediawiki-config', 'main', 'Draft: rework the logos', { 'logos.txt': 'x\n' }, 'bp-wip');
    await rest('POST', `changes/${wip.id}/wip`, {}, BOB);
    const as = (person: string) => ({ ...s, env: signingAs(s, person) });

    const outside = await cli(as('alice'), ['backport', String(wip._number)]);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toContain(
      `outside the backport windows (${tomorrow} 00:00-24:00 UTC): an approver may start it now with --emergency, which is recorded`,
    );
    const deployer = await cli(as('bob'), ['backport', String(wip._number), '--emergency']);
    expect(deployer.code).toBe(2);
    expect(deployer.stderr).toContain('bob may not emergency: that takes the approvers role in auth.roles');
    // With --emergency an approver gets past the window, to the checks (which refuse a work in progress).
    const emergency = await cli(as('alice'), ['backport', String(wip._number), '--emergency']);
    expect(emergency.code).toBe(2);
    expect(emergency.stderr).toContain(
      `refused, nothing was merged:\n  ${wip._number} (mediawiki-config main: Draft: rework the logos): it is work in progress`,
    );
    expect(fs.readFileSync(s.config.notify.salFile, 'utf8')).toContain(
      `emergency backport outside the windows (${tomorrow} 00:00-24:00 UTC)`,
    );

    // Inside the window: a deployer may not start one (backport.deployersMay is false), and nor may nobody.
    s.reconfigure((raw) => delete raw.backport.windows);
    const notApprover = await cli(as('bob'), ['backport', String(wip._number)]);
    expect(notApprover.code).toBe(2);
    expect(notApprover.stderr).toContain('bob may not backport: that takes the approvers role in auth.roles');
    const unsigned = await startBackport(
      s.client,
      s.config,
      {
        changes: [{ forge: 'gerrit', number: wip._number }],
        by: 'alice',
        codeService: 'mediawiki',
        configService: 'mediawiki-config',
        strategy: s.config.rollout,
        testHosts: 'debug',
        confirmTimeoutMs: 60_000,
      },
      `backport-${wip._number}`,
    );
    const refused = await unsigned.result().catch((err) => err.cause);
    expect(refused.type).toBe('BackportRefused');
    expect(refused.message).toMatch(/^unsigned: this signalbox requires every action to be signed/);
    expect((await rest('GET', `changes/${wip._number}`)).status).toBe('NEW');
  });
});
