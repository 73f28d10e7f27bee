// The sandbox fleet's server: one app server per host on its own address, plus the fleet's control plane (a
// load-balancer API and an init system that restarts hosts) and a traffic generator.
//
// An app server answers only from what is deployed in its host's folder, read when it (re)starts, as php-fpm
// does: the switch of a symlink takes effect at the restart that follows it.
//
// Traffic looks like production's (sandbox/traffic.ts): every version fails a little in the background, a few
// hosts are noisy, bursts hit the whole fleet alike, and faults (per version) come on top of that.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { HostSpec } from '../config/load';
import { fleetFile, sandboxDir, type SandboxFleetFile } from '../activities/inventory';
import { TRAFFIC_SHARE, type WikiInfo } from './wikis';
import { serveRecords } from './records';
import type { Station } from '../workflows/names';
import {
  baseLatencyMs,
  Bursts,
  groupErrorRates,
  LatencyHistogram,
  NOISY_FACTOR,
  noisyHosts,
  pickBackgroundSignature,
  poisson,
} from './traffic';
import { chooseSeed, randomStream, type Random } from './random';

export interface GroupFault {
  errorRate: number;
  latencyMs?: number;
  /** The error rate grows from 0 to errorRate over this many minutes from the host's first request on the version. */
  rampMinutes?: number;
  /** Only these wikis (database names) fail or slow down; absent means every wiki of the group. */
  wikis?: string[];
}

export interface Fault {
  groups: Partial<Record<Station, GroupFault>>;
  /** The app fails to start on this version. */
  crash?: boolean;
  /** The app starts and answers, then dies after about 3 s and stays down about 10 s until restarted, over and over. */
  crashLoop?: boolean;
  signature?: string;
}

/** Faults by MediaWiki version, or by the id of a config release (a bad config change, such as a backport's). */
export type FaultFile = Record<string, Fault>;

export const faultsFile = (home: string) => path.join(sandboxDir(home), 'faults.json');
const poolsFile = (home: string) => path.join(sandboxDir(home), 'pools.json');

const CRASH_LOOP_UP_MS = 3_000;
const CRASH_LOOP_DOWN_MS = 10_000;
const DURATION_METRIC = 'mediawiki_request_duration_seconds';

interface Loaded {
  wikis: Record<string, WikiInfo>;
  byDomain: Map<string, string>;
  versionOf: Record<string, string>;
  /** The config release the host serves: the folder its link points at. */
  configRelease: string;
}

class AppServer {
  server?: http.Server;
  loaded?: Loaded;
  startError?: string;
  /** Why a crash-looping app is down, until the init system brings it back. */
  crashError?: string;
  requests = new Map<string, number>();
  errors = new Map<string, number>();
  durations = new Map<string, LatencyHistogram>();
  served = 0;
  /** When this app first served each version: a fault's ramp counts from then. */
  private firstServed = new Map<string, number>();
  private crashTimer?: NodeJS.Timeout;
  private respawnTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;
  private disposed = false;

  constructor(
    readonly host: HostSpec,
    private readonly faults: () => FaultFile,
    /** The background error rate of a group on this host right now (noise and bursts included). */
    private readonly backgroundRate: (group: Station) => number,
    readonly noisy: boolean,
    /** This host's own seeded stream: its errors, latencies and crash timing. */
    private readonly random: Random,
  ) {}

  /** Within 10% either way, so hosts of one fleet do not crash in step. */
  private roughly(ms: number): number {
    return ms * (0.9 + this.random() * 0.2);
  }

  get up(): boolean {
    return this.server !== undefined && this.loaded !== undefined;
  }

  private load(): Loaded {
    const config = path.join(this.host.root, 'mediawiki-config', 'current');
    const wikis: Record<string, WikiInfo> = JSON.parse(fs.readFileSync(path.join(config, 'wikis.json'), 'utf8'));
    const wikiversions: Record<string, string> = JSON.parse(
      fs.readFileSync(path.join(config, 'wikiversions.json'), 'utf8'),
    );
    const versionOf: Record<string, string> = {};
    for (const [db, dir] of Object.entries(wikiversions)) {
      const versionFile = path.join(this.host.root, 'mediawiki', dir, 'VERSION');
      if (!fs.existsSync(versionFile))
        throw new Error(`${db} is set to ${dir}, which is not deployed on ${this.host.name}`);
      versionOf[db] = fs.readFileSync(versionFile, 'utf8').trim();
    }
    const crashing = [...new Set(Object.values(versionOf))].filter((v) => this.faults()[v]?.crash);
    if (crashing.length)
      throw new Error(
        `PHP Fatal error: ${this.faults()[crashing[0]]?.signature ?? 'Allowed memory size exhausted'} (MediaWiki ${crashing[0]} fails to start)`,
      );
    return {
      wikis,
      versionOf,
      byDomain: new Map(Object.entries(wikis).map(([db, w]) => [w.domain, db])),
      configRelease: path.basename(fs.realpathSync(config)),
    };
  }

  /**
   * Loads what is deployed and (re)binds the port. A version with a crash fault leaves the host down; one with a
   * crash loop comes up and dies a few seconds later.
   */
  async restart(): Promise<void> {
    this.clearCrashLoop();
    try {
      this.loaded = this.load();
      this.startError = undefined;
    } catch (err) {
      this.loaded = undefined;
      this.startError = (err as Error).message;
      await this.stop();
      this.logError(`[${new Date().toISOString()}] startup ${this.startError}`);
      throw err;
    }
    await this.closing;
    if (!this.server) {
      const server = http.createServer((req, res) => this.handle(req, res));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.host.port, this.host.address, () => resolve());
      });
      this.server = server;
    }
    const looping = [...new Set(Object.values(this.loaded.versionOf))].find((v) => this.faults()[v]?.crashLoop);
    if (looping) this.crashTimer = setTimeout(() => void this.crash(looping), this.roughly(CRASH_LOOP_UP_MS));
  }

  /** A crash of a crash-looping version: the port closes, and the init system restarts the app a while later. */
  private async crash(version: string): Promise<void> {
    this.crashTimer = undefined;
    const downMs = this.roughly(CRASH_LOOP_DOWN_MS);
    // php-fpm's words for a dead child; they must not match the log-scan check's Fatal|startup, as a crash
    // that comes seconds after the checks is the point of a crash loop.
    const died = 'WARNING: [pool www] child exited on signal 11 (SIGSEGV - core dumped)';
    this.logError(`[${new Date().toISOString()}] ${died} serving MediaWiki ${version}`);
    const downFor = `${Math.round(downMs / 1000)} s`;
    this.crashError = `MediaWiki ${version} crashed (crash loop); the init system restarts it in ${downFor}`;
    await this.close();
    if (this.disposed) return;
    this.respawnTimer = setTimeout(() => {
      this.respawnTimer = undefined;
      this.restart().catch(() => undefined);
    }, downMs);
  }

  private clearCrashLoop(): void {
    clearTimeout(this.crashTimer);
    clearTimeout(this.respawnTimer);
    this.crashTimer = this.respawnTimer = undefined;
    this.crashError = undefined;
  }

  async stop(): Promise<void> {
    this.clearCrashLoop();
    await this.close();
  }

  /** Stops for good: a crash loop's pending restart must not bring the port back after the fleet shuts down. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await this.stop();
  }

  private async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await this.closing;
  }

  private logError(line: string): void {
    fs.appendFile(path.join(this.host.root, 'logs', 'error.log'), `${line}\n`, () => undefined);
  }

  private count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  private metrics(): string {
    const lines = [
      '# HELP mediawiki_requests_total Requests served, by wiki, group, version and status code.',
      '# TYPE mediawiki_requests_total counter',
      ...[...this.requests].map(([k, v]) => {
        const [wiki, group, version, code] = k.split('|');
        return `mediawiki_requests_total{host="${this.host.name}",wiki="${wiki}",group="${group}",version="${version}",code="${code}"} ${v}`;
      }),
      '# HELP mediawiki_errors_total Errors logged, by wiki, group, version and signature (the error message).',
      '# TYPE mediawiki_errors_total counter',
      ...[...this.errors].map(([k, v]) => {
        const [wiki, group, version, signature] = k.split('|');
        return `mediawiki_errors_total{host="${this.host.name}",wiki="${wiki}",group="${group}",version="${version}",signature="${labelValue(signature)}"} ${v}`;
      }),
      `# HELP ${DURATION_METRIC} Time to answer a request, by group and version.`,
      `# TYPE ${DURATION_METRIC} histogram`,
      ...[...this.durations].flatMap(([k, histogram]) => {
        const [group, version] = k.split('|');
        return histogram.lines(DURATION_METRIC, `host="${this.host.name}",group="${group}",version="${version}"`);
      }),
      '# TYPE mediawiki_up gauge',
      `mediawiki_up{host="${this.host.name}"} 1`,
    ];
    return `${lines.join('\n')}\n`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    if (url.pathname === '/metrics')
      return void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.metrics());
    if (url.pathname === '/healthz') return void res.writeHead(200).end('ok\n');
    const loaded = this.loaded;
    if (!loaded) return void res.writeHead(503).end('not started\n');
    const hostHeader = (req.headers.host ?? '').split(':')[0];
    const db = url.searchParams.get('wiki') ?? loaded.byDomain.get(hostHeader);
    if (!db || !loaded.wikis[db])
      return void res.writeHead(404, { 'content-type': 'text/plain' }).end(`no wiki is served at ${hostHeader}\n`);
    const version = loaded.versionOf[db];
    const group = loaded.wikis[db].group;
    const arrived = performance.now();
    const servedBy = this.server;
    if (!this.firstServed.has(version)) this.firstServed.set(version, Date.now());
    const versionFault = this.faults()[version] ?? this.faults()[loaded.configRelease];
    const groupFault = versionFault?.groups[group];
    const onThisWiki = groupFault && (!Array.isArray(groupFault.wikis) || groupFault.wikis.includes(db));
    const fault = onThisWiki ? groupFault : undefined;
    const respond = () => {
      // A crash while the request waited took its connection: it was never answered, so it is not counted.
      if (this.server !== servedBy) return;
      this.served++;
      this.observe(group, version, (performance.now() - arrived) / 1000);
      const failWith = (signature: string) => {
        this.count(this.requests, `${db}|${group}|${version}|500`);
        this.count(this.errors, `${db}|${group}|${version}|${signature.replace(/\|/g, '/')}`);
        this.logError(`[${new Date().toISOString()}] ${db} ${version} ${req.method} ${url.pathname} ${signature}`);
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`MediaWiki internal error.\n${signature}\n`);
      };
      if (fault && this.random() < this.faultErrorRate(fault, version)) {
        return failWith(versionFault?.signature ?? 'Error: Call to undefined method SkinTemplate::getTabs()');
      }
      if (this.random() < this.backgroundRate(group)) return failWith(pickBackgroundSignature(this.random));
      this.count(this.requests, `${db}|${group}|${version}|200`);
      if (url.pathname === '/w/api.php' && url.searchParams.get('meta') === 'siteinfo') {
        const body = {
          batchcomplete: '',
          query: {
            general: {
              generator: `MediaWiki ${version}`,
              wikiid: db,
              servername: loaded.wikis[db].domain,
              host: this.host.name,
            },
          },
        };
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      }
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end(
          `<!DOCTYPE html><html><head><meta name="generator" content="MediaWiki ${version}"></head><body>${db}${url.pathname}</body></html>`,
        );
    };
    setTimeout(respond, baseLatencyMs(this.random) + (fault?.latencyMs ?? 0));
  }

  private faultErrorRate(fault: GroupFault, version: string): number {
    const rampMs = (Number(fault.rampMinutes) || 0) * 60_000;
    if (rampMs <= 0) return fault.errorRate;
    return fault.errorRate * Math.min(1, (Date.now() - (this.firstServed.get(version) ?? Date.now())) / rampMs);
  }

  private observe(group: string, version: string, seconds: number): void {
    const key = `${group}|${version}`;
    let histogram = this.durations.get(key);
    if (!histogram) this.durations.set(key, (histogram = new LatencyHistogram()));
    histogram.observe(seconds);
  }
}

export async function serveFleet(home: string): Promise<() => Promise<void>> {
  const fleet: SandboxFleetFile = JSON.parse(fs.readFileSync(fleetFile(home), 'utf8'));
  let faults: FaultFile = {};
  let faultsMtime = -1;
  const refreshFaults = () => {
    try {
      const mtime = fs.statSync(faultsFile(home)).mtimeMs;
      if (mtime !== faultsMtime) {
        faults = JSON.parse(fs.readFileSync(faultsFile(home), 'utf8'));
        faultsMtime = mtime;
      }
    } catch {
      faults = {};
    }
  };
  refreshFaults();
  const faultTimer = setInterval(refreshFaults, 200);

  let pooled: Record<string, boolean> = {};
  try {
    pooled = JSON.parse(fs.readFileSync(poolsFile(home), 'utf8'));
  } catch {
    pooled = {};
  }
  const savePools = () => fs.writeFileSync(poolsFile(home), JSON.stringify(pooled));
  // A host in no pool (a test server) starts out of the load balancer; only a person would pool it.
  for (const host of fleet.hosts) if (host.pool === null) pooled[host.name] = false;

  // Old fleet files have no errorRate, bursts or seed: they get the defaults (a seed of their own).
  const errorRates = groupErrorRates(fleet.errorRate);
  const seed = fleet.seed ?? chooseSeed();
  const bursts = new Bursts(fleet.bursts !== false, randomStream(seed, 'bursts'));
  const noisy = noisyHosts(fleet.hosts.map((h) => h.name));
  const backgroundRate = (host: string) => (group: Station) =>
    Math.min(1, (errorRates[group] ?? 0) * (noisy.has(host) ? NOISY_FACTOR : 1) * bursts.factor());
  const apps = new Map(
    fleet.hosts.map((h) => {
      const random = randomStream(seed, `host/${h.name}`);
      return [h.name, new AppServer(h, () => faults, backgroundRate(h.name), noisy.has(h.name), random)] as const;
    }),
  );
  for (const app of apps.values()) {
    await app.restart().catch((err) => console.error(`${app.host.name}: ${(err as Error).message}`));
  }

  const json = (res: http.ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  const readBody = (req: http.IncomingMessage) =>
    new Promise<string>((resolve) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => resolve(body));
    });
  const records = fleet.records ? await serveRecords(sandboxDir(home), fleet) : null;
  const control = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://control');
    const parts = url.pathname.split('/').filter(Boolean);
    if (records && (parts[0] === 'slack' || parts[0] === 'wiki') && records.handle(req, res, await readBody(req)))
      return;
    if (url.pathname === '/healthz') return json(res, 200, { ok: true, hosts: apps.size });
    if (url.pathname === '/traffic') {
      const burst = bursts.state();
      return json(res, 200, {
        trafficPerSecond: fleet.trafficPerSecond,
        seed,
        errorRate: errorRates,
        noisyHosts: [...noisy],
        bursts: {
          enabled: bursts.enabled,
          bursting: burst.bursting,
          startsAt: new Date(burst.startsAt).toISOString(),
          endsAt: new Date(burst.endsAt).toISOString(),
        },
      });
    }
    if (parts[0] === 'hosts' && parts.length === 1) {
      return json(
        res,
        200,
        [...apps.values()].map((a) => ({
          host: a.host.name,
          address: `${a.host.address}:${a.host.port}`,
          up: a.up,
          pooled: pooled[a.host.name] !== false,
          served: a.served,
          noisy: a.noisy,
          error: a.startError ?? a.crashError,
        })),
      );
    }
    const app = apps.get(parts[1] ?? '');
    if (parts[0] === 'hosts' && parts[2] === 'restart' && req.method === 'POST') {
      if (!app) return json(res, 404, { error: `no host ${parts[1]}` });
      try {
        await app.restart();
        return json(res, 200, { host: app.host.name, up: true });
      } catch (err) {
        return json(res, 500, { host: app.host.name, up: false, error: (err as Error).message });
      }
    }
    if (parts[0] === 'pools' && parts.length === 1)
      return json(res, 200, Object.fromEntries([...apps.keys()].map((h) => [h, pooled[h] !== false])));
    if (parts[0] === 'pools' && req.method === 'POST') {
      if (!app) return json(res, 404, { error: `no host ${parts[1]}` });
      let body: { pooled?: unknown };
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        return json(res, 400, { error: 'body must be JSON such as {"pooled": false}' });
      }
      if (typeof body.pooled !== 'boolean') return json(res, 400, { error: 'pooled must be true or false' });
      pooled[app.host.name] = body.pooled;
      savePools();
      return json(res, 200, { host: app.host.name, pooled: body.pooled });
    }
    json(res, 404, { error: 'unknown control path' });
  });
  const controlPort = Number(new URL(fleet.controlUrl).port);
  await new Promise<void>((resolve) => control.listen(controlPort, '127.0.0.1', () => resolve()));

  // Traffic from a keep-alive client, weighted by group, to pooled hosts that are up; Poisson arrivals per tick.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const wikisByGroup = new Map<string, { db: string; domain: string }[]>();
  const firstLoaded = [...apps.values()].find((a) => a.loaded)?.loaded;
  for (const [db, info] of Object.entries(firstLoaded?.wikis ?? {})) {
    wikisByGroup.set(info.group, [...(wikisByGroup.get(info.group) ?? []), { db, domain: info.domain }]);
  }
  const random = randomStream(seed, 'traffic');
  const pickGroup = () => {
    let r = random();
    for (const [group, share] of Object.entries(TRAFFIC_SHARE)) if ((r -= share) <= 0) return group;
    return 'group2';
  };
  const tickMs = 100;
  const trafficTimer = setInterval(() => {
    const arrivals = poisson((fleet.trafficPerSecond * tickMs) / 1000, random);
    const live = [...apps.values()].filter((a) => a.up && pooled[a.host.name] !== false);
    for (let n = 0; n < arrivals; n++) {
      const wikis = wikisByGroup.get(pickGroup());
      if (!wikis?.length || !live.length) continue;
      const wiki = wikis[Math.floor(random() * wikis.length)];
      const app = live[Math.floor(random() * live.length)];
      const req = http.request(
        { host: app.host.address, port: app.host.port, path: '/wiki/Main_Page', headers: { host: wiki.domain }, agent },
        (res) => res.resume(),
      );
      req.on('error', () => undefined);
      req.end();
    }
  }, tickMs);

  return async () => {
    clearInterval(trafficTimer);
    clearInterval(faultTimer);
    agent.destroy();
    await new Promise<void>((resolve) => {
      control.close(() => resolve());
      control.closeAllConnections();
    });
    await Promise.all([...apps.values()].map((a) => a.dispose()));
    await records?.stop();
  };
}

/** Prometheus label values escape backslash, double quote and newline. */
function labelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
