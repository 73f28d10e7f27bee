// Secrets stay where they are kept. Gerrit, GitHub, the roadmap wiki, SMTP and a stage build are made to fail with
// known secret values in play, through the real activities and a real train on the test's Temporal server; then
// the full workflow histories, the SAL, IRC, the Slack payloads, the mail and the child processes' argv are
// searched for those values, in every form they travel in. None may be found.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { GerritForge } from '../activities/gerrit';
import { createGitHubActivities } from '../activities/github';
import { loadInventory } from '../activities/inventory';
import { createNotifyActivities } from '../activities/notify';
import { RedactingFailureConverter, REDACTED, redactingCodec, withRedactedErrors } from '../activities/redact';
import { stageFromForge } from '../activities/releases';
import { createTrainActivities } from '../activities/train';
import { createWikiActivities } from '../activities/wiki';
import type { SignalboxConfig } from '../config/load';
import { mailDir, slackFile } from '../sandbox/records';
import { startTrain, trainInputFrom } from '../cli/client';
import { trainStatusQuery, type TrainStatus } from '../workflows/definitions';
import { replay } from './github-replay';
import { cli, NEW, startSandbox, waitFor, type Sandbox } from './helpers';

const unique = () => crypto.randomBytes(9).toString('hex');
const GERRIT_USER = 'signalbox';
const SECRET = {
  gerrit: { env: 'SIGNALBOX_SECRETS_GERRIT_PASSWORD', value: `gerrit-pw-${unique()}` },
  github: { env: 'SIGNALBOX_SECRETS_GITHUB_TOKEN', value: `ghp_${unique()}` },
  wiki: { env: 'SIGNALBOX_SECRETS_WIKI_PASSWORD', value: `wiki-pw-${unique()}` },
};

/** Every form a secret travels in: as is, URL-encoded, and inside an HTTP basic auth header. */
function secretForms(sandbox?: Sandbox): Record<string, string> {
  const forms: Record<string, string> = {};
  for (const [name, { value }] of Object.entries(SECRET)) {
    forms[name] = value;
    forms[`${name} (base64)`] = Buffer.from(value).toString('base64');
  }
  forms['gerrit basic auth'] = Buffer.from(`${GERRIT_USER}:${SECRET.gerrit.value}`).toString('base64');
  if (sandbox) {
    const vars = loadInventory(sandbox.config).vars;
    forms['sandbox wiki password'] = vars.sandboxWikiPassword;
    forms['sandbox Slack webhook'] = vars.sandboxSlack;
  }
  return forms;
}

/** The names of the secrets found in `text`: empty is the only good answer. */
function secretsIn(text: string, sandbox?: Sandbox): string[] {
  return Object.entries(secretForms(sandbox))
    .filter(([, form]) => text.includes(form))
    .map(([name]) => name);
}

/** Text of a history with every payload's bytes decoded, since the JSON form would show them as base64. */
function textOf(value: unknown, seen = new Set<unknown>()): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (typeof value !== 'object') return String(value);
  if (seen.has(value)) return '';
  seen.add(value);
  return Object.entries(value)
    .map(([k, v]) => `${k}: ${textOf(v, seen)}`)
    .join('\n');
}

/** A person in the channel (a nick of its own, at most 9 characters): joins the sandbox's ngIRCd and keeps what is said there. */
function listenOnIrc(server: string, channel: string): { said: string[]; joined: Promise<void>; close(): void } {
  const [host, port] = server.split(':');
  const socket = net.connect(Number(port), host);
  socket.setEncoding('utf8');
  const said: string[] = [];
  let buffer = '';
  const joined = new Promise<void>((resolve) => {
    socket.on('connect', () => socket.write(`NICK w${unique().slice(0, 7)}\r\nUSER watcher 0 * :test\r\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end; (end = buffer.indexOf('\n')) >= 0; buffer = buffer.slice(end + 1)) {
        const line = buffer.slice(0, end).replace(/\r$/, '');
        const words = line.split(' ');
        if (words[0] === 'PING') socket.write(`PONG ${words[1]}\r\n`);
        if (words[1] === '001') socket.write(`JOIN ${channel}\r\n`);
        if (words[1] === '366') resolve();
        if (words[1] === 'PRIVMSG') said.push(line.slice(line.indexOf(' :') + 2));
      }
    });
  });
  return { said, joined, close: () => socket.destroy() };
}

/** The sandbox's mail, with quoted-printable undone so a secret split over lines is still found. */
function mailText(s: Sandbox): string {
  const dir = mailDir(path.join(s.home, 'sandbox'));
  if (!fs.existsSync(dir)) return '';
  return fs
    .readdirSync(dir)
    .map((f) =>
      fs
        .readFileSync(path.join(dir, f), 'utf8')
        .replace(/=\r?\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    )
    .join('\n');
}

/** An HTTP server whose handler the test supplies; closed after the file. */
async function serve(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A wiki whose login fails and says back the password it was sent, as a badly written extension might. */
function echoingWiki(): http.RequestListener {
  return (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const params = new URLSearchParams(req.method === 'POST' ? body : new URL(req.url ?? '/', 'http://x').search);
      const reply = (value: unknown) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      if (params.get('meta') === 'tokens') return reply({ query: { tokens: { logintoken: 'token+\\' } } });
      if (params.get('action') === 'login')
        return reply({
          login: {
            result: 'Failed',
            reason: `Incorrect password "${params.get('lgpassword')}" for ${params.get('lgname')}`,
          },
        });
      return reply({ error: { code: 'badvalue', info: 'unexpected' } });
    });
  };
}

async function failureOf(pending: Promise<unknown>): Promise<Error> {
  const err = await pending.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the call should have failed').toBeInstanceOf(Error);
  return err as Error;
}

/** What reaches a history for this error: the worker's failure converter, as the worker runs it. */
function asRecorded(err: Error): string {
  return textOf(new RedactingFailureConverter().errorToFailure(err, defaultPayloadConverter));
}

let sandbox: Sandbox;
const closers: (() => unknown)[] = [];

beforeAll(async () => {
  for (const { env, value } of Object.values(SECRET)) process.env[env] = value;
  sandbox = await startSandbox({ worker: false });
}, 180_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await sandbox?.stop();
  for (const { env } of Object.values(SECRET)) delete process.env[env];
});

describe('Gerrit', () => {
  const spec = (url: string) => ({ url, user: GERRIT_USER, passwordEnv: SECRET.gerrit.env, mergeTimeoutMs: 5000 });

  it('gives git its credentials in the environment, never the argv, and a failed fetch names no secret', async () => {
    // A Gerrit that holds requests until released, so the git processes can be looked at while they run.
    const requests: http.IncomingHttpHeaders[] = [];
    const held: http.ServerResponse[] = [];
    let holding = true;
    const refuse = (res: http.ServerResponse) =>
      res.writeHead(401, { 'www-authenticate': 'Basic realm="Gerrit Code Review"' }).end('Unauthorized');
    const release = () => {
      holding = false;
      held.splice(0).forEach(refuse);
    };
    const slow = await serve((req, res) => {
      requests.push(req.headers);
      if (holding) held.push(res);
      else refuse(res);
    });
    closers.push(slow.close);
    const forge = new GerritForge(spec(slow.url), fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-secrets-mirror-')));
    const reading = failureOf(forge.readFile('mediawiki-config', 'refs/heads/main', 'wikiversions.json'));
    await waitFor('git to ask the slow Gerrit', async () => requests.length > 0, 30_000);
    // git did authenticate, with the basic auth header it got through its environment ...
    expect(requests[0].authorization).toBe(
      `Basic ${Buffer.from(`${GERRIT_USER}:${SECRET.gerrit.value}`).toString('base64')}`,
    );
    // ... and no process on this machine shows a secret in its argv, though the git processes talking to Gerrit do run.
    const argvs = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .map((pid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
        } catch {
          return ''; // ended meanwhile
        }
      });
    expect(
      argvs.filter((argv) => argv.includes(slow.url)).length,
      'git processes fetching from the slow Gerrit',
    ).toBeGreaterThan(0);
    expect(argvs.flatMap((argv) => secretsIn(argv))).toEqual([]);
    release();
    const err = await reading;
    expect(err.message).toMatch(/git fetch of mediawiki-config from http:\/\/127\.0\.0\.1:\d+ failed/);
    expect(secretsIn(`${err.message}\n${err.stack}`)).toEqual([]);
  });

  it('redacts a Gerrit answer that repeats the credentials, at the activity boundary and in what the worker records', async () => {
    // A proxy in front of Gerrit that refuses and quotes the request's Authorization header back.
    const echoing = await serve((req, res) => {
      const [, encoded = ''] = (req.headers.authorization ?? '').split(' ');
      res
        .writeHead(401, { 'content-type': 'text/plain' })
        .end(`refused ${req.headers.authorization} (${Buffer.from(encoded, 'base64').toString()})`);
    });
    closers.push(echoing.close);
    const config: SignalboxConfig = { ...sandbox.config, forge: { gerrit: spec(echoing.url) } };
    // Listing branches is a REST call, which reports Gerrit's answer.
    const unredacted = await failureOf(createTrainActivities(config).nextTrainVersion());
    expect(
      secretsIn(unredacted.message),
      'the refusal should quote the secret, or this test proves nothing',
    ).not.toEqual([]);
    const err = await failureOf(withRedactedErrors(config, createTrainActivities(config)).nextTrainVersion());
    expect(err.message).toContain(REDACTED);
    expect(secretsIn(`${err.message}\n${err.stack}`)).toEqual([]);
    expect(secretsIn(asRecorded(unredacted))).toEqual([]);
  });
});

describe('GitHub', () => {
  it('redacts a 401 that repeats the token, and sends the token only in its header', async () => {
    const github = await replay([
      {
        method: 'GET',
        path: '/search/issues',
        respond: {
          status: 401,
          body: {
            message: `Bad credentials: ${SECRET.github.value}`,
            documentation_url: 'https://docs.github.com/rest',
          },
        },
      },
    ]);
    closers.push(github.close);
    const config = {
      ...sandbox.config,
      train: {
        ...sandbox.config.train,
        blockers: {
          pollMs: 1000,
          github: { repository: 'wikimedia/train-blockers', apiUrl: github.url, tokenEnv: SECRET.github.env },
        },
      },
    };
    const err = await failureOf(
      withRedactedErrors(config, createGitHubActivities(config)).openBlockers({ version: NEW }),
    );
    expect(github.seen[0].headers.authorization).toBe(`token ${SECRET.github.value}`);
    expect(err.message).toContain(`Bad credentials: ${REDACTED}`);
    expect(secretsIn(`${err.message}\n${err.stack}\n${asRecorded(err)}`)).toEqual([]);
  });
});

describe('the roadmap wiki', () => {
  it('redacts a login refusal that repeats the bot password, and a password written into the API URL', async () => {
    const wiki = await serve(echoingWiki());
    closers.push(wiki.close);
    const row = { version: NEW, deployedTo: '0', date: '2026-01-06', by: 'test' };
    const echoed = {
      ...sandbox.config,
      roadmap: { api: `${wiki.url}/w/api.php`, page: 'Roadmap', user: 'Signalbox@train', passwordEnv: SECRET.wiki.env },
    };
    const refused = await failureOf(withRedactedErrors(echoed, createWikiActivities(echoed)).updateRoadmap(row));
    expect(refused).toBeInstanceOf(ApplicationFailure);
    expect(refused.message).toContain(`Incorrect password "${REDACTED}"`);
    // fetch refuses a URL with credentials in it, and quotes the URL when it does.
    const inUrl = {
      ...sandbox.config,
      roadmap: { api: `http://bot:${SECRET.wiki.value}@127.0.0.1:1/w/api.php`, page: 'Roadmap' },
    };
    const unredacted = await failureOf(createWikiActivities(inUrl).updateRoadmap(row));
    expect(
      secretsIn(`${unredacted.message}\n${unredacted.stack}`),
      'fetch should quote the URL, or this test proves nothing',
    ).not.toEqual([]);
    const redacted = await failureOf(withRedactedErrors(inUrl, createWikiActivities(inUrl)).updateRoadmap(row));
    expect(redacted.message).toContain(`http://${REDACTED}@127.0.0.1:1`);
    for (const err of [refused, redacted])
      expect(secretsIn(`${err.message}\n${err.stack}\n${asRecorded(err)}`)).toEqual([]);
  });
});

describe('records', () => {
  it('sends and writes no secret to the SAL, IRC, Slack or mail, and an SMTP server that rejects and echoes gets none to echo', async () => {
    const received: string[] = [];
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, _session, callback) {
        let data = '';
        stream.on('data', (c: Buffer) => (data += c.toString()));
        stream.on('end', () => {
          received.push(data);
          const err = Object.assign(new Error(`rejected: ${data.replace(/\s+/g, ' ').slice(-300)}`), {
            responseCode: 554,
          });
          callback(err);
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => smtp.close(() => resolve())));
    const smtpAddress = `127.0.0.1:${((smtp as unknown as { server: net.Server }).server.address() as AddressInfo).port}`;
    const irc = loadInventory(sandbox.config).vars.sandboxIrc;
    const listener = listenOnIrc(irc, '#wikimedia-operations');
    closers.push(() => listener.close());
    await listener.joined;

    const config: SignalboxConfig = {
      ...sandbox.config,
      notify: {
        ...sandbox.config.notify,
        email: { smtp: smtpAddress, from: 'signalbox@localhost', to: ['ops@lists.sandbox.local'] },
      },
    };
    const notify = createNotifyActivities(config);
    const leaky = `fetch https://${GERRIT_USER}:${SECRET.gerrit.value}@gerrit.example/r failed; token ${SECRET.github.value}; wiki ${SECRET.wiki.value}`;
    await notify.logAction({
      id: `secrets-${unique()}`,
      at: new Date().toISOString(),
      by: 'signalbox',
      what: `blocked: ${leaky}`,
    });
    const err = await failureOf(
      notify.sendNotification({
        id: `secrets-${unique()}`,
        subject: `[Train] ${NEW} status update: ${SECRET.github.value}`,
        body: `Blocked: ${leaky}`,
      }),
    );
    expect(err.message).toMatch(/not delivered to email: .*rejected/);

    await waitFor('the messages on IRC', async () => listener.said.length >= 2, 15_000);
    const sal = fs.readFileSync(sandbox.config.notify.salFile, 'utf8');
    const slack = fs.readFileSync(slackFile(path.join(sandbox.home, 'sandbox')), 'utf8');
    // They were sent, with the secrets taken out.
    for (const text of [sal, slack, received.join('\n'), listener.said.join('\n')]) expect(text).toContain(REDACTED);
    expect(secretsIn([sal, slack, ...received, ...listener.said, err.message].join('\n'), sandbox)).toEqual([]);
  });
});

describe('the stage build', () => {
  it('runs with an allowlisted environment: no token, password, key or secret of the worker', async () => {
    const dump = ['sh', '-c', 'env > build-env.txt'];
    const release = await stageFromForge(
      sandbox.forge,
      loadInventory(sandbox.config).stagingDir,
      'mediawiki-config',
      'mediawiki-config',
      'refs/heads/main',
      'env-dump',
      { build: dump },
    );
    const env = fs.readFileSync(
      path.join(loadInventory(sandbox.config).stagingDir, 'mediawiki-config', release.id, 'build-env.txt'),
      'utf8',
    );
    const names = env
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split('=')[0]);
    expect(names).toContain('PATH');
    expect(env).toContain('SIGNALBOX_RELEASE=env-dump');
    expect(names.filter((n) => /(TOKEN|PASSWORD|KEY|SECRET)$/i.test(n))).toEqual([]);
    expect(secretsIn(env, sandbox)).toEqual([]);
  });
});

describe('a real train', () => {
  it('keeps secrets out of every workflow history, the blocker, SAL, IRC, Slack and mail when stage and roadmap fail', async () => {
    const wiki = await serve(echoingWiki());
    closers.push(wiki.close);
    // A build that fails printing credentials, as a build tool might when it cannot fetch, until a fix exists.
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-secrets-build-'));
    closers.push(() => fs.rmSync(scratch, { recursive: true, force: true }));
    const fixed = path.join(scratch, 'fixed');
    fs.writeFileSync(
      path.join(scratch, 'tool-output.txt'),
      [
        `fetching https://${GERRIT_USER}:${SECRET.gerrit.value}@gerrit.example/r/mediawiki: 401`,
        `Authorization: Basic ${Buffer.from(`${GERRIT_USER}:${SECRET.gerrit.value}`).toString('base64')}`,
        `GITHUB_TOKEN=${SECRET.github.value}`,
        '',
      ].join('\n'),
    );
    sandbox.reconfigure((raw) => {
      raw.train = { ...raw.train, autoApprove: true };
      raw.roadmap = {
        api: `${wiki.url}/w/api.php`,
        page: 'MediaWiki 1.41/Roadmap',
        user: 'Signalbox@train',
        passwordEnv: SECRET.wiki.env,
      };
      raw.services.mediawiki.build = [
        'sh',
        '-c',
        `test -f ${fixed} || { cat ${path.join(scratch, 'tool-output.txt')}; exit 3; }; ${raw.services.mediawiki.build[2]}`,
      ];
    });
    const listener = listenOnIrc(loadInventory(sandbox.config).vars.sandboxIrc, '#wikimedia-operations');
    closers.push(() => listener.close());
    await listener.joined;
    await sandbox.startWorker();
    closers.push(() => sandbox.stopWorker());

    const handle = await startTrain(sandbox.client, sandbox.config, trainInputFrom(sandbox.config, NEW));
    const blocked = await waitFor(
      'the train to block at stage',
      async () => {
        const s = await handle.query(trainStatusQuery);
        return s.state === 'blocked' && s;
      },
      90_000,
    );
    expect(blocked.blocker).toMatch(/^stage of .*build .* failed \(exit 3\)/);
    expect(blocked.blocker).toContain(REDACTED);
    await waitFor(
      'the status update mail',
      async () => mailText(sandbox).includes(`[Train] ${NEW} status update`),
      30_000,
    );

    fs.writeFileSync(fixed, '');
    expect((await cli(sandbox, ['train', 'resume', NEW])).code).toBe(0);
    const result: TrainStatus = await handle.result();
    expect(result.state).toBe('complete');
    // The roadmap refused the bot password and said it back; the train noted that, redacted.
    expect(
      result.events.some(
        (e) => e.what.startsWith('roadmap not updated') && e.what.includes(`Incorrect password "${REDACTED}"`),
      ),
    ).toBe(true);
    await waitFor(
      'the train end on IRC',
      async () => listener.said.some((m) => m.includes(`${NEW} is on all wikis`)),
      30_000,
    );

    const histories: string[] = [];
    for await (const execution of sandbox.client.workflow.list()) {
      histories.push(
        textOf(await sandbox.client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory()),
      );
    }
    expect(histories.length).toBeGreaterThan(1); // the train and its deploys
    const everything = {
      histories: histories.join('\n'),
      sal: fs.readFileSync(sandbox.config.notify.salFile, 'utf8'),
      irc: listener.said.join(''), // a long message goes out in parts: joined, a secret split between two is still found
      slack: fs.readFileSync(slackFile(path.join(sandbox.home, 'sandbox')), 'utf8'),
      mail: mailText(sandbox),
    };
    for (const [where, text] of Object.entries(everything)) {
      expect(text, `${where} should carry the redacted build failure`).toMatch(
        /build `sh -c [^\n]*failed \(exit 3\)[^\n]*\[redacted\]/,
      );
      expect(secretsIn(text, sandbox), where).toEqual([]);
    }
  });
});

describe('the worker converters', () => {
  it('redact failures at every level and payloads with secrets, and leave other payloads byte for byte', async () => {
    const cause = new Error(`connect to https://${GERRIT_USER}:${SECRET.gerrit.value}@gerrit.example failed`);
    const failure = new RedactingFailureConverter().errorToFailure(
      new Error(`stage failed: token ${SECRET.github.value}`, { cause }),
      defaultPayloadConverter,
    );
    expect(failure.message).toBe(`stage failed: token ${REDACTED}`);
    expect(failure.cause?.message).toBe(`connect to https://${REDACTED}@gerrit.example failed`);
    expect(secretsIn(textOf(failure))).toEqual([]);

    const plain = defaultPayloadConverter.toPayload({ blocker: 'stage of 1.41.0-wmf.26: build failed', hosts: 12 });
    const leaky = defaultPayloadConverter.toPayload({
      blocker: `wiki said ${SECRET.wiki.value}`,
      [SECRET.wiki.env]: 1,
    });
    const [same, redacted] = await redactingCodec.encode([plain, leaky]);
    expect(same).toBe(plain);
    expect(defaultPayloadConverter.fromPayload(redacted)).toEqual({
      blocker: `wiki said ${REDACTED}`,
      [SECRET.wiki.env]: 1,
    });
    expect(await redactingCodec.decode([redacted])).toEqual([redacted]);
  });
});
