// Where the sandbox's train records go: an SMTP server that keeps every mail, a Slack-style webhook, a small
// MediaWiki action API for the roadmap page, and an IRC server (ngIRCd, from Debian) for #wikimedia-operations.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { tcpOpen } from '../activities/checks';
import type { SandboxFleetFile } from '../activities/inventory';

export const ROADMAP_PAGE = 'MediaWiki 1.41/Roadmap';
export const WIKI_BOT_USER = 'Signalbox@train';

export const recordsDir = (sandbox: string) => path.join(sandbox, 'records');
export const mailDir = (sandbox: string) => path.join(recordsDir(sandbox), 'mail');
export const slackFile = (sandbox: string) => path.join(recordsDir(sandbox), 'slack.jsonl');
const wikiFile = (sandbox: string) => path.join(recordsDir(sandbox), 'wiki.json');

export function ngircdPath(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v ngircd || ls /usr/sbin/ngircd 2>/dev/null'], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n')[0];
  return found || null;
}

interface WikiPage {
  revisions: { revid: number; timestamp: string; user: string; comment: string; content: string }[];
}

/** The roadmap table the train edits, one row per wmf branch: {{WMFReleaseTableRow|<N>|<date>|<group>}}. */
export function initialRoadmap(rows: { wmf: number; date: string; group: string }[]): string {
  return [
    '{{WMFReleaseTableHead}}',
    ...rows.map((r) => `{{WMFReleaseTableRow|${r.wmf}|${r.date}|${r.group}}}`),
    '{{WMFReleaseTableFooter}}',
    '',
  ].join('\n');
}

export function seedRoadmap(sandbox: string, content: string): void {
  fs.mkdirSync(recordsDir(sandbox), { recursive: true });
  const pages: Record<string, WikiPage> = {
    [ROADMAP_PAGE]: {
      revisions: [{ revid: 1, timestamp: new Date().toISOString(), user: 'sandbox', comment: 'seed', content }],
    },
  };
  fs.writeFileSync(wikiFile(sandbox), JSON.stringify(pages, null, 2));
}

/** Starts the SMTP sink and ngIRCd; returns the HTTP handler for the webhook and wiki paths, and a stop. */
export async function serveRecords(
  sandbox: string,
  fleet: SandboxFleetFile,
): Promise<{
  handle: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => boolean;
  stop: () => Promise<void>;
}> {
  const records = fleet.records!;
  fs.mkdirSync(mailDir(sandbox), { recursive: true });
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const name = `${Date.now()}-${session.id}.eml`;
        fs.writeFileSync(path.join(mailDir(sandbox), name), Buffer.concat(chunks));
        callback();
      });
    },
  });
  const [smtpHost, smtpPort] = records.smtp.split(':');
  await new Promise<void>((resolve) => smtp.listen(Number(smtpPort), smtpHost, () => resolve()));

  let ircd: ChildProcess | null = null;
  const ngircd = ngircdPath();
  if (records.irc && ngircd) {
    const [, ircPort] = records.irc.split(':');
    const conf = path.join(recordsDir(sandbox), 'ngircd.conf');
    fs.writeFileSync(
      conf,
      [
        '[Global]',
        '  Name = irc.sandbox.local',
        '  Info = signalbox sandbox',
        `  Ports = ${ircPort}`,
        '  Listen = 127.0.0.1',
        `  PidFile = ${path.join(recordsDir(sandbox), 'ngircd.pid')}`,
        '[Limits]',
        '  MaxConnectionsIP = 0',
        '  PingTimeout = 120',
        '[Options]',
        '  PAM = no',
        '  Ident = no',
        '  DNS = no',
        '[Channel]',
        '  Name = #wikimedia-operations',
        '  Topic = sandbox deploys',
        '',
      ].join('\n'),
    );
    ircd = spawn(ngircd, ['-n', '-f', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
    // The first !log may come right after start: answer only once ngircd listens.
    await waitForListening('127.0.0.1', Number(ircPort), 10_000, 'ngircd');
  }

  // The wiki keeps pages in a JSON file; logins make a session cookie, edits need that session's CSRF token.
  const sessions = new Map<string, { user?: string; loginToken: string; csrf: string }>();
  const readPages = (): Record<string, WikiPage> => {
    try {
      return JSON.parse(fs.readFileSync(wikiFile(sandbox), 'utf8'));
    } catch {
      return {};
    }
  };
  const wikiApi = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => {
    const params = new URLSearchParams(new URL(req.url ?? '/', 'http://x').search);
    if (req.method === 'POST') for (const [k, v] of new URLSearchParams(body)) params.set(k, v);
    const cookie = /sandboxwiki_session=([0-9a-f]+)/.exec(req.headers.cookie ?? '')?.[1];
    let session = cookie ? sessions.get(cookie) : undefined;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (!session) {
      const id = crypto.randomBytes(16).toString('hex');
      session = {
        loginToken: `${crypto.randomBytes(8).toString('hex')}+\\`,
        csrf: `${crypto.randomBytes(8).toString('hex')}+\\`,
      };
      sessions.set(id, session);
      headers['set-cookie'] = `sandboxwiki_session=${id}; path=/; HttpOnly`;
    }
    const reply = (value: unknown) => res.writeHead(200, headers).end(JSON.stringify(value));
    const error = (code: string, info: string) => reply({ error: { code, info } });
    const action = params.get('action');
    if (action === 'query' && params.get('meta') === 'tokens') {
      const type = params.get('type') ?? 'csrf';
      return reply({
        batchcomplete: true,
        query: {
          tokens:
            type === 'login' ? { logintoken: session.loginToken } : { csrftoken: session.user ? session.csrf : '+\\' },
        },
      });
    }
    if (action === 'login') {
      if (params.get('lgtoken') !== session.loginToken) return reply({ login: { result: 'WrongToken' } });
      if (params.get('lgname') !== WIKI_BOT_USER || params.get('lgpassword') !== records.wikiPassword)
        return reply({
          login: { result: 'Failed', reason: 'Incorrect username or password entered. Please try again.' },
        });
      session.user = WIKI_BOT_USER.split('@')[0];
      return reply({ login: { result: 'Success', lguserid: 2, lgusername: session.user } });
    }
    if (action === 'query' && params.get('prop') === 'revisions') {
      const title = params.get('titles') ?? '';
      const page = readPages()[title];
      if (!page) return reply({ batchcomplete: true, query: { pages: [{ ns: 0, title, missing: true }] } });
      const rev = page.revisions[page.revisions.length - 1];
      return reply({
        batchcomplete: true,
        query: {
          pages: [
            {
              pageid: 1,
              ns: 0,
              title,
              revisions: [
                {
                  revid: rev.revid,
                  timestamp: rev.timestamp,
                  user: rev.user,
                  comment: rev.comment,
                  slots: { main: { contentmodel: 'wikitext', content: rev.content } },
                },
              ],
            },
          ],
        },
      });
    }
    if (action === 'edit') {
      if (!session.user || params.get('token') !== session.csrf) return error('badtoken', 'Invalid CSRF token.');
      const title = params.get('title');
      const text = params.get('text');
      if (!title || text === null) return error('missingparam', 'The title and text parameters must be set.');
      const pages = readPages();
      const page = (pages[title] ??= { revisions: [] });
      const last = page.revisions[page.revisions.length - 1];
      if (last?.content === text) return reply({ edit: { result: 'Success', title, nochange: true } });
      const revid = Math.max(0, ...Object.values(pages).flatMap((p) => p.revisions.map((r) => r.revid))) + 1;
      page.revisions.push({
        revid,
        timestamp: new Date().toISOString(),
        user: session.user,
        comment: params.get('summary') ?? '',
        content: text,
      });
      fs.writeFileSync(wikiFile(sandbox), JSON.stringify(pages, null, 2));
      return reply({ edit: { result: 'Success', title, newrevid: revid, oldrevid: last?.revid ?? 0 } });
    }
    return error('badvalue', `Unrecognized or unsupported action ${JSON.stringify(action)}.`);
  };

  const slackPath = new URL(records.slackWebhook).pathname;
  const handle = (req: http.IncomingMessage, res: http.ServerResponse, body: string): boolean => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname === new URL(records.wikiApi).pathname) {
      wikiApi(req, res, body);
      return true;
    }
    if (pathname.startsWith('/slack/')) {
      // Answers as Slack's incoming webhooks do: "ok", or a plain-text error code.
      if (pathname !== slackPath) res.writeHead(404, { 'content-type': 'text/plain' }).end('no_service');
      else {
        let payload: { text?: unknown };
        try {
          payload = JSON.parse(body);
        } catch {
          payload = {};
        }
        if (typeof payload.text !== 'string' || !payload.text)
          res.writeHead(400, { 'content-type': 'text/plain' }).end('invalid_payload');
        else {
          fs.appendFileSync(
            slackFile(sandbox),
            `${JSON.stringify({ at: new Date().toISOString(), text: payload.text })}\n`,
          );
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        }
      }
      return true;
    }
    return false;
  };

  return {
    handle,
    stop: async () => {
      ircd?.kill('SIGTERM');
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    },
  };
}

async function waitForListening(host: string, port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await tcpOpen(host, port, 1000);
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`${what} did not listen on ${host}:${port} within ${timeoutMs} ms: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
