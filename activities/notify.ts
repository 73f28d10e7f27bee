// Records and notifications: the Server Admin Log (a line per action: who, what, the commit range), and messages
// to IRC, a Slack webhook and email. Every message carries an id; a channel that already took it is not sent it
// again, so an activity retried after a crash half way through the channels repeats nothing. Everything written or
// sent goes through the redaction pass first: a secret in an error that reached a blocker stops here.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { ApplicationFailure } from '@temporalio/common';
import type { NotifyConfig, SignalboxConfig } from '../config/load';
import { fill, loadInventory } from './inventory';
import { redact, redactDeep, registerSecrets } from './redact';

export interface SalEntry {
  /** Unique per action, such as train-1.41.0-wmf.26#12. */
  id: string;
  at: string;
  by: string;
  what: string;
  /** old..new commit range, when the action moved code or config */
  range?: string;
}

export interface Message {
  id: string;
  subject: string;
  body: string;
}

export type Channel = 'irc' | 'slack' | 'email';

export function salLine(entry: SalEntry): string {
  return `${entry.at.slice(0, 19).replace('T', ' ')} ${entry.by}: ${entry.what}${entry.range ? ` (${entry.range})` : ''} [${entry.id}]`;
}

/** Sends one IRC message to a channel: register, join, PRIVMSG each line, quit. Plain RFC 1459, no library. */
export async function sendIrc(
  target: NonNullable<NotifyConfig['irc']>,
  lines: string[],
  timeoutMs = 15_000,
): Promise<void> {
  const [host, port] = target.server.split(':');
  const socket = net.connect(Number(port || 6667), host);
  socket.setEncoding('utf8');
  const send = (line: string) => socket.write(`${line.replace(/[\r\n]/g, ' ')}\r\n`);
  let nick = target.nick;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`IRC ${target.server}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    let buffer = '';
    socket.on('error', (err) => fail(new Error(`IRC ${target.server}: ${err.message}`)));
    socket.on('connect', () => {
      send(`NICK ${nick}`);
      send(`USER ${target.nick} 0 * :signalbox deploy bot`);
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, '');
        buffer = buffer.slice(end + 1);
        const [prefix, command, ...rest] = line.startsWith(':') ? line.split(' ') : ['', ...line.split(' ')];
        void prefix;
        if (command === 'PING') send(`PONG ${rest.join(' ')}`);
        else if (command === '433') send(`NICK ${(nick = `${nick}_`)}`);
        else if (command === '001') send(`JOIN ${target.channel}`);
        else if (command === '366') {
          // End of the channel's names list: we are in the channel.
          for (const text of lines)
            for (const part of text.match(/.{1,400}/gs) ?? ['']) send(`PRIVMSG ${target.channel} :${part}`);
          send('QUIT :done');
        } else if (/^(4|5)\d\d$/.test(command) && command !== '433')
          fail(new Error(`IRC ${target.server} refused: ${line}`));
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function sendSlack(webhookUrl: string, text: string): Promise<void> {
  const res = await fetch(webhookUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text }),
    signal: AbortSignal.timeout(10_000),
  });
  const answer = await res.text();
  if (!res.ok || answer.trim() !== 'ok')
    throw new Error(`Slack webhook answered HTTP ${res.status}: ${answer.slice(0, 200)}`);
}

export async function sendEmail(
  target: NonNullable<NotifyConfig['email']>,
  subject: string,
  body: string,
): Promise<void> {
  const [host, port] = target.smtp.split(':');
  const transport = nodemailer.createTransport({
    host,
    port: Number(port || 25),
    secure: false,
    connectionTimeout: 10_000,
  });
  try {
    await transport.sendMail({ from: target.from, to: target.to.join(', '), subject, text: body });
  } finally {
    transport.close();
  }
}

/** The notify config with {{sandbox...}} templates filled in from the inventory. */
function resolveTargets(config: SignalboxConfig): NotifyConfig {
  const { irc, slack, email } = config.notify;
  const vars = irc || slack || email ? loadInventory(config).vars : {};
  return {
    salFile: config.notify.salFile,
    irc: irc && { ...irc, server: fill(irc.server, vars) },
    slack: slack && { webhookUrl: fill(slack.webhookUrl, vars) },
    email: email && { ...email, smtp: fill(email.smtp, vars) },
  };
}

/** The end of the SAL file: far more than the lines a retried activity could have written. */
function salTail(file: string, bytes = 256 * 1024): string {
  if (!fs.existsSync(file)) return '';
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.min(bytes, size));
    fs.readSync(fd, buffer, 0, buffer.length, size - buffer.length);
    return buffer.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

export function createNotifyActivities(config: SignalboxConfig) {
  const sentDir = path.join(config.home, 'notify-sent');
  registerSecrets(config);
  const sentMarker = (id: string, channel: string) =>
    path.join(sentDir, `${id.replace(/[^A-Za-z0-9._-]/g, '_')}.${channel}`);

  /** Runs `send` once per message id and channel, even across retries. */
  async function once(id: string, channel: string, send: () => Promise<void>): Promise<boolean> {
    const marker = sentMarker(id, channel);
    if (fs.existsSync(marker)) return false;
    await send();
    fs.mkdirSync(sentDir, { recursive: true });
    fs.writeFileSync(marker, new Date().toISOString());
    return true;
  }

  /** Appends the action to the SAL file, once per id, and logs it to IRC as `!log` does. */
  async function logAction(given: SalEntry): Promise<string> {
    const entry = redactDeep(given);
    const notify = resolveTargets(config);
    const line = salLine(entry);
    await once(entry.id, 'sal', async () => {
      // A crash between the append and the marker must not write the line twice: the file itself says.
      if (salTail(notify.salFile).includes(`[${entry.id}]\n`)) return;
      fs.mkdirSync(path.dirname(notify.salFile), { recursive: true });
      fs.appendFileSync(notify.salFile, `${line}\n`);
    });
    if (notify.irc)
      await once(entry.id, 'irc', () =>
        sendIrc(notify.irc!, [`!log ${entry.by}: ${entry.what}${entry.range ? ` (${entry.range})` : ''}`]),
      );
    return line;
  }

  /** Sends a message to every configured channel; returns the channels it reached this time. */
  async function sendNotification(given: Message): Promise<Channel[]> {
    const message = redactDeep(given);
    const notify = resolveTargets(config);
    const reached: Channel[] = [];
    const problems: string[] = [];
    const attempt = async (channel: Channel, send: () => Promise<void>) => {
      try {
        if (await once(message.id, channel, send)) reached.push(channel);
      } catch (err) {
        problems.push(`${channel}: ${redact((err as Error).message)}`); // a server may echo what it was sent
      }
    };
    if (notify.irc) await attempt('irc', () => sendIrc(notify.irc!, [message.subject]));
    if (notify.slack)
      await attempt('slack', () => sendSlack(notify.slack!.webhookUrl, `*${message.subject}*\n${message.body}`));
    if (notify.email) await attempt('email', () => sendEmail(notify.email!, message.subject, message.body));
    // Channels that took the message keep their markers, so the retry sends only to the ones that failed.
    if (problems.length) throw new Error(`notification ${message.id} not delivered to ${problems.join('; ')}`);
    return reached;
  }

  /**
   * Embargoed news (a security patch that does not apply) goes only to the private destinations: the private
   * list through notify.email's server, and/or a private IRC channel. Never Slack, the public lists or channel.
   */
  async function sendPrivately(given: Message): Promise<Channel[]> {
    const message = redactDeep(given);
    const notify = resolveTargets(config);
    const destinations = config.notify.private;
    if (!destinations)
      throw ApplicationFailure.nonRetryable(
        'embargoed news has no private destination: set notify.private (email or ircChannel); it stays in the workflow history only',
        'NoPrivateDestination',
      );
    const reached: Channel[] = [];
    if (destinations.email) {
      if (!notify.email)
        throw ApplicationFailure.nonRetryable(
          'notify.private.email needs notify.email for its mail server',
          'NoPrivateDestination',
        );
      const target = { ...notify.email, to: destinations.email };
      if (await once(message.id, 'private-email', () => sendEmail(target, message.subject, message.body)))
        reached.push('email');
    }
    if (destinations.ircChannel) {
      if (!notify.irc)
        throw ApplicationFailure.nonRetryable(
          'notify.private.ircChannel needs notify.irc for its server',
          'NoPrivateDestination',
        );
      const target = { ...notify.irc, channel: destinations.ircChannel };
      if (
        await once(message.id, 'private-irc', () =>
          sendIrc(target, [message.subject, ...message.body.split('\n').filter(Boolean).slice(0, 10)]),
        )
      )
        reached.push('irc');
    }
    return reached;
  }

  return { logAction, sendNotification, sendPrivately };
}
