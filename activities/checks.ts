// Per-host checks after a switch: a TCP port, an HTTP request, a command on the host, new errors in a log.
import http from 'node:http';
import net from 'node:net';
import type { CheckSpec } from '../config/load';
import { logSince } from './host-ops';
import { fill } from './inventory';
import type { Transport } from './transport';

export interface CheckContext {
  host: string;
  transport: Transport;
  vars: Record<string, string | number | undefined>;
  /** Log sizes taken before the switch, so a log scan sees only what came after. */
  logOffsets: Map<string, number>;
}

export function checkName(check: CheckSpec): string {
  if (check.name) return check.name;
  if (check.tcp) return `tcp ${check.tcp.port}`;
  if (check.http) return `http ${check.http.url}`;
  if (check.command) return `command ${check.command[0]}`;
  return `log ${check.logScan!.file}`;
}

export function tcpOpen(address: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`port ${port} did not answer within ${timeoutMs} ms`));
    });
    socket.once('error', (err) => reject(new Error(`port ${port}: ${err.message}`)));
  });
}

/** node's fetch will not send a Host header, which is how a wiki is chosen, so this uses http directly. */
export function httpGet(
  url: string,
  hostHeader: string | undefined,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: hostHeader ? { host: hostHeader } : {}, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

async function attempt(check: CheckSpec, ctx: CheckContext, timeoutMs: number): Promise<void> {
  const f = (t: string) => fill(t, ctx.vars);
  if (check.tcp) {
    await tcpOpen(String(ctx.vars.address), Number(f(String(check.tcp.port))), timeoutMs);
  } else if (check.http) {
    const url = f(check.http.url);
    const res = await httpGet(url, check.http.hostHeader && f(check.http.hostHeader), timeoutMs);
    const want = check.http.status ?? 200;
    if (res.status !== want)
      throw new Error(`${url} answered ${res.status}, expected ${want}: ${res.body.slice(0, 200).trim()}`);
    const body = check.http.body && f(check.http.body);
    if (body && !res.body.includes(body))
      throw new Error(`${url} answered without "${body}": ${res.body.slice(0, 200).trim()}`);
  } else if (check.command) {
    const result = await ctx.transport.run(check.command.map(f), { timeoutMs });
    if (result.code !== 0)
      throw new Error(`exit ${result.code}: ${(result.stderr || result.stdout).trim().slice(0, 300)}`);
  } else if (check.logScan) {
    const file = f(check.logScan.file);
    const fresh = await logSince(ctx.transport, ctx.host, file, ctx.logOffsets.get(file) ?? 0);
    const pattern = new RegExp(check.logScan.pattern);
    const ignored = (check.logScan.ignore ?? []).map((p) => new RegExp(p));
    const hit = fresh.split('\n').find((line) => pattern.test(line) && !ignored.some((i) => i.test(line)));
    if (hit) throw new Error(`new error in ${file}: ${hit.slice(0, 300)}`);
  }
}

/** The log files that log-scan checks read, so their sizes can be taken with the host's state before a switch. */
export function logScanFiles(checks: CheckSpec[], vars: CheckContext['vars']): string[] {
  return checks.flatMap((check) => (check.logScan ? [fill(check.logScan.file, vars)] : []));
}

/** Runs every check that applies to this host; throws with the first one that fails all its attempts. */
export async function runChecks(checks: CheckSpec[], hostGroups: string[], ctx: CheckContext): Promise<void> {
  for (const check of checks) {
    if (check.groups && !check.groups.some((g) => hostGroups.includes(g))) continue;
    const attempts = check.attempts ?? 1;
    for (let n = 1; ; n++) {
      try {
        await attempt(check, ctx, check.timeoutMs ?? 5000);
        break;
      } catch (err) {
        if (n >= attempts) throw new Error(`check "${checkName(check)}" failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, check.intervalMs ?? 1000));
      }
    }
  }
}
