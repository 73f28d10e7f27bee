// The whole train with its records on real parts: deploy windows and an approval that overrides one, security
// patches applied with git am (and one that fails), the SAL, IRC (ngIRCd), Slack webhook, email (SMTP), the
// roadmap page through the MediaWiki API, and the incident report read back from the workflow history.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { approveStation, trainStatusQuery, type TrainStatus } from '../workflows/definitions';
import { WEEKDAYS } from '../workflows/windows';
import { startTrain, trainInputFrom } from '../cli/client';
import { loadInventory } from '../activities/inventory';
import { mailDir, slackFile } from '../sandbox/records';
import { demoKey } from '../sandbox/fleet';
import {
  cli,
  NEW,
  serviceOnEveryHost,
  signedAuth,
  signedRequest,
  startSandbox,
  waitFor,
  type Sandbox,
} from './helpers';

const run = promisify(execFile);
let sandbox: Sandbox | undefined;
let listener: IrcListener | undefined;

afterEach(async () => {
  listener?.close();
  listener = undefined;
  await sandbox?.stop();
  sandbox = undefined;
});

/** A person in #wikimedia-operations: joins the sandbox's ngIRCd and keeps what is said there. */
class IrcListener {
  readonly said: string[] = [];
  private socket: net.Socket;
  readonly joined: Promise<void>;
  constructor(server: string, channel: string) {
    const [host, port] = server.split(':');
    this.socket = net.connect(Number(port), host);
    this.socket.setEncoding('utf8');
    let buffer = '';
    this.joined = new Promise((resolve) => {
      this.socket.on('connect', () => this.socket.write('NICK watcher\r\nUSER watcher 0 * :test\r\n'));
      this.socket.on('data', (chunk: string) => {
        buffer += chunk;
        for (let end; (end = buffer.indexOf('\n')) >= 0; buffer = buffer.slice(end + 1)) {
          const line = buffer.slice(0, end).replace(/\r$/, '');
          const words = line.split(' ');
          if (words[0] === 'PING') this.socket.write(`PONG ${words[1]}\r\n`);
          if (words[1] === '001') this.socket.write(`JOIN ${channel}\r\n`);
          if (words[1] === '366') resolve();
          if (words[1] === 'PRIVMSG') this.said.push(line.slice(line.indexOf(' :') + 2));
        }
      });
    });
  }
  close() {
    this.socket.destroy();
  }
}

function mails(s: Sandbox): string[] {
  const dir = mailDir(path.join(s.home, 'sandbox'));
  return fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .sort()
        .map((f) => fs.readFileSync(path.join(dir, f), 'utf8').replace(/=\r?\n/g, ''))
    : []; // undo quoted-printable soft line breaks
}

/** A security patch made the way developers make them: git format-patch against the code repository. */
async function makePatch(s: Sandbox, name: string, edit: (checkout: string) => void): Promise<void> {
  const checkout = fs.mkdtempSync(path.join(s.home, 'checkout-'));
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: 'Sec',
    GIT_AUTHOR_EMAIL: 'sec@localhost',
    GIT_COMMITTER_NAME: 'Sec',
    GIT_COMMITTER_EMAIL: 'sec@localhost',
  };
  await run('git', ['clone', '--quiet', path.join(loadInventory(s.config).reposDir, 'mediawiki.git'), checkout]);
  edit(checkout);
  await run('git', ['commit', '--quiet', '-am', 'SECURITY: escape the skin name'], { cwd: checkout, env });
  const dir = path.join(s.home, 'patches', NEW);
  fs.mkdirSync(dir, { recursive: true });
  const { stdout } = await run('git', ['format-patch', '-1', '--stdout'], { cwd: checkout });
  fs.writeFileSync(path.join(dir, name), stdout);
}

const SECURITY_FIX = '// Escapes the skin name (security fix).\n';
const addFix = (checkout: string) => fs.appendFileSync(path.join(checkout, 'includes/WebStart.php'), SECURITY_FIX);

describe('train records', () => {
  it('moves inside deploy windows, waits for a closed one unless approved, and records every step', async () => {
    // Windows in a timezone where it is about noon now, so that no day ends while the test runs (in UTC, a run
    // started shortly before midnight would see "today" close under it). Etc/GMT+N is N hours behind UTC.
    const hour = 3600_000;
    const behind = new Date().getUTCHours() - 12;
    const timezone = behind === 0 ? 'Etc/GMT' : `Etc/GMT${behind > 0 ? '+' : '-'}${Math.abs(behind)}`;
    const now = new Date(Date.now() - behind * hour); // the wall clock there, read through the UTC getters
    const today = WEEKDAYS[now.getUTCDay()];
    const tomorrow = WEEKDAYS[(now.getUTCDay() + 1) % 7];
    sandbox = await startSandbox({
      configure: (c) => {
        signedAuth()(c); // alice is the approver: she signs the approval outside the window
        c.train = {
          ...c.train,
          gate: 'window',
          windows: {
            timezone,
            testwikis: { day: today },
            group0: { day: today },
            group1: { day: today },
            group2: { day: tomorrow },
          },
        };
      },
    });
    await makePatch(sandbox, '0001-escape-skin-name.patch', addFix);
    const irc = loadInventory(sandbox.config).vars.sandboxIrc;
    expect(irc, 'ngircd is installed by `signalbox setup`').toBeTruthy();
    listener = new IrcListener(irc, '#wikimedia-operations');
    await listener.joined;

    const handle = await startTrain(
      sandbox.client,
      sandbox.config,
      trainInputFrom(sandbox.config, NEW, { autoApprove: false }),
    );
    const waiting = await waitFor(
      'the train to wait for the group2 window',
      async () => {
        const s = await handle.query(trainStatusQuery);
        return s.state === 'awaiting-window' && s;
      },
      120_000,
    );
    expect(waiting.nextStation).toBe('group2');
    const midnight = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) + behind * hour);
    expect(waiting.windowOpensAt).toBe(midnight.toISOString());
    expect(waiting.versions).toEqual({ testwikis: NEW, group0: NEW, group1: NEW, group2: '1.41.0-wmf.25' });

    // The security patch is in what every host runs, and nowhere in the forge.
    for (const host of loadInventory(sandbox.config).hosts) {
      expect(
        fs.readFileSync(path.join(host.root, 'mediawiki', `php-${NEW}`, 'includes/WebStart.php'), 'utf8'),
      ).toContain(SECURITY_FIX);
    }
    expect(await sandbox.forge.readFile('mediawiki', `refs/heads/wmf/${NEW}`, 'includes/WebStart.php')).not.toContain(
      'security fix',
    );
    expect(await sandbox.forge.branches('mediawiki-config')).toContain(`wmf/${NEW}`);

    const roadmap = JSON.parse(fs.readFileSync(path.join(sandbox.home, 'sandbox', 'records', 'wiki.json'), 'utf8'));
    const page = roadmap['MediaWiki 1.41/Roadmap'].revisions.at(-1);
    expect(page.content).toMatch(/\{\{WMFReleaseTableRow\|26\|\d{4}-\d\d-\d\d\|1\}\}/);
    expect(page.user).toBe('Signalbox');

    // An approver may move a station outside its window.
    const signed = await signedRequest(demoKey(sandbox.home, 'alice'), 'alice', 'approve', handle.workflowId, 'group2');
    await handle.executeUpdate(approveStation, {
      args: [{ ...signed, comment: 'fixing a group2-only bug', station: 'group2' }],
    });
    const result: TrainStatus = await handle.result();
    expect(result.state).toBe('complete');

    const sal = fs.readFileSync(path.join(sandbox.home, 'sal.log'), 'utf8').trim().split('\n');
    expect(sal[0]).toMatch(
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\S+: ${NEW.replace(/\./g, '\\.')}: branch cut and staged ${NEW.replace(/\./g, '\\.')}-[0-9a-f]{12} with 1 security patch\\(es\\) \\(wmf/1\\.41\\.0-wmf\\.25\\.\\.[0-9a-f]{12}\\)`,
      ),
    );
    expect(
      sal.some((l) =>
        /signalbox \(group1 deploy window\): .*move group1 to .*: done and verified \([0-9a-f]{12}\.\.[0-9a-f]{12}\)/.test(
          l,
        ),
      ),
    ).toBe(true);
    expect(sal.some((l) => /alice \[SHA256:\S+\]: .*move group2 to .*done and verified/.test(l))).toBe(true);
    await waitFor(
      'the IRC log lines',
      async () => listener!.said.filter((m) => m.startsWith('!log ')).length >= sal.length - 1 && true,
      15_000,
    );
    expect(listener.said).toContain(`[Train] ${NEW} is on all wikis`);
    const completion = mails(sandbox).find((m) => m.includes(`Subject: [Train] ${NEW} is on all wikis`));
    expect(completion).toMatch(/To: ops@lists\.sandbox\.local, wikitech-l@lists\.sandbox\.local/);
    expect(fs.readFileSync(slackFile(path.join(sandbox.home, 'sandbox')), 'utf8')).toContain(`is on all wikis`);

    const report = await cli(sandbox, ['train', 'report', NEW]);
    expect(report.code).toBe(0);
    expect(report.stdout).toContain(`# Incident documentation: train-${NEW}`);
    expect(report.stdout).toMatch(/approve by alice: fixing a group2-only bug \(group2\)/);
    expect(report.stdout).toMatch(/signalbox \(group0 deploy window\): move group0 to .*: done and verified/);
    expect(report.stdout).toContain('train ended complete');
  });

  it('stops at stage when a security patch does not apply, tells people, and goes on after a fix and resume', async () => {
    sandbox = await startSandbox({ configure: (c) => (c.train = { ...c.train, autoApprove: true }) });
    await makePatch(sandbox, '0001-escape-skin-name.patch', (checkout) =>
      fs.writeFileSync(path.join(checkout, 'index.php'), '<?php\n// rewritten on main\n'),
    );
    // The patch was made against a file that then changes differently on the branch: it cannot apply.
    await sandbox.forge.land({
      repo: 'mediawiki',
      branch: 'main',
      files: { 'index.php': '<?php\nrequire __DIR__ . "/includes/Setup.php";\n' },
      subject: 'Move setup',
      changeId: 'move-setup',
      author: 'dev',
    });
    const handle = await startTrain(sandbox.client, sandbox.config, trainInputFrom(sandbox.config, NEW));
    const blocked = await waitFor(
      'the train to block at stage',
      async () => {
        const s = await handle.query(trainStatusQuery);
        return s.state === 'blocked' && s;
      },
      60_000,
    );
    // Embargoed: the public blocker, SAL, IRC, Slack and lists say a patch does not apply, and nothing more.
    expect(blocked.blocker).toBe(
      `stage of ${NEW}: a security patch does not apply to wmf/${NEW}; the security team has the details`,
    );
    expect(blocked.station).toBe(-1);
    for (const host of await serviceOnEveryHost(sandbox, 'mediawiki')) expect(host.links[`php-${NEW}`]).toBeUndefined();
    const update = await waitFor(
      'the status update mail',
      async () => mails(sandbox!).find((m) => m.includes(`Subject: [Train] ${NEW} status update`)),
      15_000,
    );
    expect(update).toContain('a security patch does not apply');
    const embargoed = await waitFor(
      'the private mail',
      async () => mails(sandbox!).find((m) => m.includes('blocked by a security patch (embargoed)')),
      15_000,
    );
    expect(embargoed).toMatch(/To: security@lists\.sandbox\.local\r?\n/);
    expect(embargoed).toMatch(/security patch 0001-escape-skin-name\.patch does not apply \(git am: /);
    const everythingPublic = [
      fs.readFileSync(path.join(sandbox.home, 'sal.log'), 'utf8'),
      fs.existsSync(slackFile(path.join(sandbox.home, 'sandbox')))
        ? fs.readFileSync(slackFile(path.join(sandbox.home, 'sandbox')), 'utf8')
        : '',
      ...mails(sandbox).filter((m) => !m.includes('(embargoed)')),
    ].join('\n');
    expect(everythingPublic).not.toContain('0001-escape-skin-name');
    expect(everythingPublic).not.toContain('git am');

    await makePatch(sandbox, '0001-escape-skin-name.patch', addFix);
    expect((await cli(sandbox, ['train', 'resume', NEW])).code).toBe(0);
    const result: TrainStatus = await handle.result();
    expect(result.state).toBe('complete');
    for (const host of loadInventory(sandbox.config).hosts) {
      expect(
        fs.readFileSync(path.join(host.root, 'mediawiki', `php-${NEW}`, 'includes/WebStart.php'), 'utf8'),
      ).toContain(SECURITY_FIX);
    }
  });
});
