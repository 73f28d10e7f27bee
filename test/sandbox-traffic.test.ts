// The sandbox's traffic looks like production's: background errors on every version, noisy hosts, bursts, Poisson
// arrivals, a latency histogram, and faults (ramps, single wikis, crash loops) on top. Real HTTP against a real
// sandbox fleet; no Temporal is needed, so these fleets are made directly rather than with startSandbox.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_FILE, REPO_ROOT } from '../config/load';
import type { SandboxFleetFile } from '../activities/inventory';
import { createFleet, freePort, type SandboxNoise } from '../sandbox/fleet';
import { faultsFile, serveFleet, type FaultFile } from '../sandbox/server';
import {
  BACKGROUND_SIGNATURES,
  BURST_FACTOR,
  BURST_MAX_MS,
  BURST_MEAN_GAP_MS,
  BURST_MIN_MS,
  Bursts,
  groupErrorRates,
  LATENCY_BUCKETS,
  NOISY_FACTOR,
  noisyHosts,
  poisson,
} from '../sandbox/traffic';
import { chooseSeed, randomStream, seededRandom } from '../sandbox/random';
import { SANDBOX_START_VERSION } from '../sandbox/wikis';
import { binomialBand, TEST_SEED } from './seed';

const VERSION = SANDBOX_START_VERSION;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Fleet {
  home: string;
  fleet: SandboxFleetFile;
  /** Just before the server started: no host served anything earlier. */
  servingFrom: number;
  stop(): Promise<void>;
}

/** A fleet of its own, serving; faults given here are in place before the first request. */
async function startFleet(hosts: number, perSecond: number, noise: SandboxNoise, faults?: FaultFile): Promise<Fleet> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-traffic-'));
  const fleet = await createFleet(home, hosts, perSecond, await freePort(), { seed: TEST_SEED, ...noise });
  if (faults) writeFaults(home, faults);
  const servingFrom = Date.now();
  const stopServing = await serveFleet(home);
  return {
    home,
    fleet,
    servingFrom,
    async stop() {
      await stopServing();
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

function writeFaults(home: string, faults: FaultFile): void {
  fs.writeFileSync(`${faultsFile(home)}.next`, JSON.stringify(faults));
  fs.renameSync(`${faultsFile(home)}.next`, faultsFile(home));
}

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample of a /metrics page (comments skipped), labels unescaped. */
function parseMetrics(text: string): Series[] {
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const name = line.match(/^[a-zA-Z_:][\w:]*/)![0];
      const labels: Record<string, string> = {};
      for (const m of line.slice(name.length, line.lastIndexOf(' ')).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[m[1]] = m[2].replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
      }
      return { name, labels, value: Number(line.slice(line.lastIndexOf(' ') + 1)) };
    });
}

/** Every host's samples, scraped at once. */
async function scrape(fleet: SandboxFleetFile): Promise<Series[]> {
  const page = async (h: { address: string; port?: number }) =>
    (await fetch(`http://${h.address}:${h.port}/metrics`)).text();
  const pages = await Promise.all(fleet.hosts.map(page));
  return pages.flatMap(parseMetrics);
}

const sum = (series: Series[], name: string, where: (labels: Record<string, string>) => boolean = () => true) =>
  series.filter((s) => s.name === name && where(s.labels)).reduce((total, s) => total + s.value, 0);

interface HostState {
  host: string;
  up: boolean;
  noisy: boolean;
  served: number;
  error?: string;
}

async function hostsOf(fleet: SandboxFleetFile): Promise<HostState[]> {
  return (await fetch(`${fleet.controlUrl}/hosts`)).json() as never;
}

type Labels = Record<string, string>;

function get(address: string, port: number, wikiDomain: string, pathname = '/wiki/Main_Page') {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    http
      .get({ host: address, port, path: pathname, headers: { host: wikiDomain }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = await probe();
    if (found !== undefined) return found;
    await sleep(100);
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

describe('traffic pieces', () => {
  it('draws Poisson arrivals with the mean and variance of the mean, for small and large means', () => {
    const random = seededRandom(TEST_SEED);
    for (const mean of [0.4, 4, 40, 400]) {
      const draws = Array.from({ length: 20_000 }, () => poisson(mean, random));
      const average = draws.reduce((a, b) => a + b, 0) / draws.length;
      const variance = draws.reduce((a, b) => a + (b - average) ** 2, 0) / draws.length;
      expect(draws.every((d) => Number.isInteger(d) && d >= 0)).toBe(true);
      expect(Math.abs(average - mean) / mean).toBeLessThan(0.05);
      expect(Math.abs(variance - mean) / mean).toBeLessThan(0.1);
    }
    expect(poisson(0, random)).toBe(0);
  });

  it('draws the same sequence from the same seed, another from another seed or purpose, and reads a seed', () => {
    const draws = (random: () => number) => Array.from({ length: 1000 }, random);
    const first = draws(seededRandom(TEST_SEED));
    expect(draws(seededRandom(TEST_SEED))).toEqual(first);
    expect(draws(seededRandom(TEST_SEED + 1))).not.toEqual(first);
    expect(draws(randomStream(TEST_SEED, 'host/mw1001'))).toEqual(draws(randomStream(TEST_SEED, 'host/mw1001')));
    expect(draws(randomStream(TEST_SEED, 'host/mw1001'))).not.toEqual(draws(randomStream(TEST_SEED, 'host/mw1002')));
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = first.reduce((a, b) => a + b, 0) / first.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / first.length));
    expect(chooseSeed(7, { SIGNALBOX_SANDBOX_SEED: '9' })).toBe(7);
    expect(chooseSeed(undefined, { SIGNALBOX_SANDBOX_SEED: '9' })).toBe(9);
    expect(() => chooseSeed(undefined, { SIGNALBOX_SANDBOX_SEED: 'x1' })).toThrow(
      /SIGNALBOX_SANDBOX_SEED must be a whole number/,
    );
    expect(Number.isInteger(chooseSeed(undefined, {}))).toBe(true);
  });

  it('bursts come about every 3 minutes, last 5 to 15 s, multiply by 5, and stay off when disabled', () => {
    let now = 0;
    const bursts = new Bursts(true, seededRandom(TEST_SEED), () => now);
    const off = new Bursts(false, seededRandom(TEST_SEED), () => now);
    const runs: number[] = [];
    const factors = new Set<number>();
    let offFactors = 0;
    let inBurst = 0;
    const day = 24 * 3600_000;
    for (now = 0; now < day; now += 500) {
      offFactors += off.factor() - 1;
      const factor = bursts.factor();
      factors.add(factor);
      if (factor > 1) inBurst += 500;
      else if (inBurst) {
        runs.push(inBurst);
        inBurst = 0;
      }
    }
    expect(offFactors).toBe(0);
    expect([...factors].sort()).toEqual([1, BURST_FACTOR]);
    const meanGap = day / runs.length;
    expect(meanGap).toBeGreaterThan(BURST_MEAN_GAP_MS * 0.75);
    expect(meanGap).toBeLessThan(BURST_MEAN_GAP_MS * 1.35);
    expect(Math.min(...runs)).toBeGreaterThanOrEqual(BURST_MIN_MS - 500);
    expect(Math.max(...runs)).toBeLessThanOrEqual(BURST_MAX_MS + 500);
  });

  it('picks about one host in ten as noisy, the same ones every time, and at least one from five hosts', () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => `mw${1001 + i}`);
    expect(noisyHosts(names(1000)).size).toBe(100);
    expect(noisyHosts(names(12)).size).toBe(1);
    expect([...noisyHosts(names(50))]).toEqual([...noisyHosts(names(50))]);
    for (let n = 5; n <= 12; n++) expect(noisyHosts(names(n)).size).toBeGreaterThanOrEqual(1);
    expect(noisyHosts(names(1)).size).toBeLessThanOrEqual(1);
  });

  it('never gives a background error the words the default log-scan check looks for', () => {
    const pattern = fs.readFileSync(DEFAULT_CONFIG_FILE, 'utf8').match(/pattern: "([^"]+)"/)![1];
    expect(pattern).toBe('Fatal|startup');
    for (const signature of BACKGROUND_SIGNATURES) expect(signature).not.toMatch(new RegExp(pattern, 'i'));
  });

  it('reads the error rate as one number for all groups or per group, 0.3% by default', () => {
    expect(groupErrorRates(undefined)).toEqual({ testwikis: 0.003, group0: 0.003, group1: 0.003, group2: 0.003 });
    expect(groupErrorRates(0.01)).toEqual({ testwikis: 0.01, group0: 0.01, group1: 0.01, group2: 0.01 });
    expect(groupErrorRates({ group2: 0 })).toEqual({ testwikis: 0.003, group0: 0.003, group1: 0.003, group2: 0 });
  });
});

describe('a fleet serving realistic traffic', () => {
  const HOSTS = 5; // the fewest with a noisy host, so that it serves a fifth of the traffic
  const BACKGROUND = 0.2;
  let env: Fleet;
  let noisy: Set<string>;
  let during: Series[];
  let after: Series[];

  const unfaulted = (l: Labels) => l.group !== 'group1';
  const onNoisy = (l: Labels) => unfaulted(l) && noisy.has(l.host);
  const onQuiet = (l: Labels) => unfaulted(l) && !noisy.has(l.host);
  const delta = (name: string, where: (labels: Labels) => boolean) =>
    sum(after, name, where) - sum(during, name, where);

  beforeAll(async () => {
    // A high rate keeps the wait short; group1 has no background errors, to show the rate is per group.
    const errorRate = { testwikis: BACKGROUND, group0: BACKGROUND, group1: 0, group2: BACKGROUND };
    env = await startFleet(HOSTS, 400, { errorRate, bursts: false });
    noisy = new Set((await hostsOf(env.fleet)).filter((h) => h.noisy).map((h) => h.host));
    await sleep(500);
    during = await scrape(env.fleet);
    // Counts, not a time: a loaded machine serves fewer requests a second, so this waits for enough of them.
    await until('600 requests on the noisy host and 2,000 on the others', 60_000, async () => {
      after = await scrape(env.fleet);
      const enough =
        delta('mediawiki_requests_total', onNoisy) >= 600 && delta('mediawiki_requests_total', onQuiet) >= 2000;
      if (enough) return true;
      await sleep(400);
      return undefined;
    });
  }, 90_000);
  afterAll(() => env?.stop());

  /** The share of requests that failed, with the band in which a true share of `p` would put it. */
  const errorShare = (where: (labels: Labels) => boolean, p: number) => {
    const requests = delta('mediawiki_requests_total', where);
    const share = delta('mediawiki_errors_total', where) / requests;
    return { requests, share, ...binomialBand(p, requests) };
  };

  it('fails about the configured share of requests on an unfaulted version, with realistic signatures', () => {
    const quiet = errorShare(onQuiet, BACKGROUND);
    expect(quiet.requests).toBeGreaterThanOrEqual(2000);
    expect(quiet.share).toBeGreaterThan(quiet.low);
    expect(quiet.share).toBeLessThan(quiet.high);
    const errors = delta('mediawiki_errors_total', onQuiet);
    expect(delta('mediawiki_requests_total', (l) => onQuiet(l) && l.code === '500')).toBe(errors);
    const signatures = new Set(after.filter((s) => s.name === 'mediawiki_errors_total').map((s) => s.labels.signature));
    expect([...signatures].every((s) => (BACKGROUND_SIGNATURES as readonly string[]).includes(s))).toBe(true);
    expect(signatures.size).toBeGreaterThan(2);
    expect(sum(after, 'mediawiki_errors_total', (l) => l.group === 'group1')).toBe(0);
    expect(sum(after, 'mediawiki_requests_total', (l) => l.group === 'group1')).toBeGreaterThan(500);
  });

  it('fails about three times as often on a noisy host', () => {
    expect(noisy.size).toBe(1);
    const noisyShare = errorShare(onNoisy, NOISY_FACTOR * BACKGROUND);
    const quietShare = errorShare(onQuiet, BACKGROUND);
    expect(noisyShare.requests).toBeGreaterThanOrEqual(600);
    // Each within five standard deviations of its own share; the bands are far enough apart to tell 3x from 1x.
    expect(noisyShare.low).toBeGreaterThan(quietShare.high);
    expect(noisyShare.share).toBeGreaterThan(noisyShare.low);
    expect(noisyShare.share).toBeLessThan(noisyShare.high);
    expect(quietShare.share).toBeGreaterThan(quietShare.low);
    expect(quietShare.share).toBeLessThan(quietShare.high);
  });

  it('exposes a cumulative latency histogram per host, group and version whose count is the requests served', () => {
    const series = after.filter((s) => s.name.startsWith('mediawiki_request_duration_seconds'));
    const keys = new Set(series.map((s) => `${s.labels.host}|${s.labels.group}|${s.labels.version}`));
    expect(keys.size).toBe(HOSTS * 4);
    for (const key of keys) {
      const [host, group, version] = key.split('|');
      const ours = (l: Labels) => l.host === host && l.group === group && l.version === version;
      const mine = (name: string) => series.filter((s) => s.name === name && ours(s.labels));
      const buckets = mine('mediawiki_request_duration_seconds_bucket');
      expect(buckets.map((b) => b.labels.le)).toEqual([...LATENCY_BUCKETS.map(String), '+Inf']);
      for (let i = 1; i < buckets.length; i++) expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value);
      const count = mine('mediawiki_request_duration_seconds_count')[0].value;
      expect(buckets.at(-1)!.value).toBe(count);
      expect(count).toBe(sum(after, 'mediawiki_requests_total', ours));
      // A few milliseconds each, with room for a busy machine.
      const average = mine('mediawiki_request_duration_seconds_sum')[0].value / count;
      expect(average).toBeGreaterThan(0.001);
      expect(average).toBeLessThan(0.1);
    }
  });

  it('limits a fault to the wikis it names, and adds a latency fault to the histogram', async () => {
    const signature = 'Error: sandbox test fault on dewiki';
    const groups = { group2: { errorRate: 1, wikis: ['dewiki'] }, group0: { errorRate: 0, latencyMs: 300 } };
    writeFaults(env.home, { [VERSION]: { groups, signature } });
    await sleep(1000); // the server reads faults every 200 ms; let requests from before the fault finish
    const before = await scrape(env.fleet);
    const host = env.fleet.hosts[0];
    const dewiki = await get(host.address, host.port!, 'de.wikipedia.org');
    const enwiki = await get(host.address, host.port!, 'en.wikipedia.org');
    expect(dewiki.status).toBe(500);
    expect(dewiki.body).toContain(signature);
    expect(enwiki.body).not.toContain(signature);
    await sleep(3000);
    const later = await scrape(env.fleet);
    writeFaults(env.home, {});
    const change = (name: string, where: (labels: Labels) => boolean) =>
      sum(later, name, where) - sum(before, name, where);
    const dewikiRequests = change('mediawiki_requests_total', (l) => l.wiki === 'dewiki');
    expect(dewikiRequests).toBeGreaterThan(20);
    const dewikiErrors = change('mediawiki_errors_total', (l) => l.wiki === 'dewiki' && l.signature === signature);
    expect(dewikiErrors).toBe(dewikiRequests);
    expect(sum(later, 'mediawiki_errors_total', (l) => l.wiki !== 'dewiki' && l.signature === signature)).toBe(0);
    const group0 = (l: Labels) => l.group === 'group0';
    expect(change('mediawiki_request_duration_seconds_count', group0)).toBeGreaterThan(10);
    expect(change('mediawiki_request_duration_seconds_bucket', (l) => group0(l) && l.le === '0.25')).toBe(0);
  });
});

// Each waits for the clock with a fleet of its own, so they wait side by side.
describe.concurrent('faults that change over time', () => {
  it('ramps a fault up from near 0 over rampMinutes, from when the host first served the version', async () => {
    const env = await startFleet(
      2,
      300,
      { errorRate: 0 },
      { [VERSION]: { groups: { group2: { errorRate: 1, rampMinutes: 1 } } } },
    );
    try {
      const group2 = (l: Labels) => l.group === 'group2';
      const requests = (series: Series[]) => sum(series, 'mediawiki_requests_total', group2);
      const errors = (series: Series[]) => sum(series, 'mediawiki_errors_total');
      // The ramp runs from each host's first request, which comes after servingFrom and before both hosts are
      // seen serving; each request fails with the share the ramp had reached when it was answered.
      const servingBy = await until('both hosts serving group2', 10_000, async () => {
        const served = await scrape(env.fleet);
        const hosts = env.fleet.hosts.map((h) =>
          sum(served, 'mediawiki_requests_total', (l) => group2(l) && l.host === h.name),
        );
        return hosts.every((n) => n > 0) ? Date.now() : undefined;
      });
      const ramp = (ms: number) => Math.min(1, Math.max(0, ms / 60_000));
      await sleep(3000);
      const earlyFrom = Date.now();
      const early = await scrape(env.fleet);
      const earlyBy = Date.now();
      await sleep(6000);
      const later = await scrape(env.fleet);
      const laterBy = Date.now();
      // Early requests were answered by earlyBy, so failed at most at the share the ramp had then (2.5% on
      // average over the first 3 s of a 60 s ramp, 5% at its end).
      const earlyBand = binomialBand(ramp(earlyBy - env.servingFrom), requests(early));
      expect(errors(early) / requests(early)).toBeLessThan(earlyBand.high);
      // Later ones were answered between earlyFrom and laterBy (about 10% on average over those 6 s).
      const lateShare = (errors(later) - errors(early)) / (requests(later) - requests(early));
      const lateLow = binomialBand(ramp(earlyFrom - servingBy), requests(later) - requests(early)).low;
      const lateHigh = binomialBand(ramp(laterBy - env.servingFrom), requests(later) - requests(early)).high;
      expect(lateShare).toBeGreaterThan(lateLow);
      expect(lateShare).toBeLessThan(lateHigh);
    } finally {
      await env.stop();
    }
  });

  it('brings a crash-looping host up and answering, then down with its port refused, then back', async () => {
    const env = await startFleet(2, 200, { errorRate: 0 }, { [VERSION]: { groups: {}, crashLoop: true } });
    try {
      const host = env.fleet.hosts[0];
      // A check right after the restart passes.
      expect((await hostsOf(env.fleet))[0].up).toBe(true);
      const siteinfo = '/w/api.php?action=query&meta=siteinfo&format=json';
      expect((await get(host.address, host.port!, 'www.mediawiki.org', siteinfo)).status).toBe(200);
      const state = async () => (await hostsOf(env.fleet)).find((h) => h.host === host.name)!;
      const down = await until('the crash', 6000, async () => ((await state()).up ? undefined : state()));
      expect(down.error).toMatch(/crash loop/);
      await expect(get(host.address, host.port!, 'www.mediawiki.org')).rejects.toThrow(/ECONNREFUSED/);
      const servedWhileDown = down.served;
      await sleep(2000);
      expect((await state()).served).toBe(servedWhileDown);
      await until("the init system's restart", 14_000, async () => ((await state()).up ? true : undefined));
      expect((await get(host.address, host.port!, 'www.mediawiki.org')).status).toBe(200);
      const log = fs.readFileSync(path.join(host.root, 'logs', 'error.log'), 'utf8');
      expect(log).toMatch(/SIGSEGV/);
      expect(log).not.toMatch(/Fatal|startup/);
    } finally {
      await env.stop();
    }
  });
});

describe('signalbox sandbox fault', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-fault-cli-'));
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const env = { ...process.env, SIGNALBOX_HOME: home, SIGNALBOX_CONFIG: DEFAULT_CONFIG_FILE };
      const argv = [path.join(REPO_ROOT, 'scripts', 'signalbox.js'), 'sandbox', 'fault', ...args];
      execFile(process.execPath, argv, { env, encoding: 'utf8' }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });

  it('writes ramps, wikis and crash loops, and refuses unknown wikis and bad ramps', async () => {
    // Refusals write nothing, so they run beside the first fault that is set.
    const [unknown, fraction, elsewhere, noRate, set] = await Promise.all([
      run(['1.41.0-wmf.30', '--error-rate', '0.1', '--wiki', 'enwiki,nosuchwiki']),
      run(['1.41.0-wmf.30', '--error-rate', '0.1', '--ramp-minutes', '1.5']),
      run(['1.41.0-wmf.30', '--error-rate', '0.1', '--group', 'group1', '--wiki', 'enwiki']),
      run(['1.41.0-wmf.30', '--ramp-minutes', '5']),
      run([
        '1.41.0-wmf.30',
        '--error-rate',
        '0.2',
        '--ramp-minutes',
        '30',
        '--wiki',
        'enwiki',
        '--wiki',
        'dewiki,frwiki',
        '--crash-loop',
      ]),
    ]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/unknown wiki nosuchwiki; the sandbox's wikis are testwiki, .*enwiki/);
    expect(fraction.code).not.toBe(0);
    expect(fraction.stderr).toMatch(/whole number from 1 to 1440/);
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.stderr).toMatch(/enwiki is in group2/);
    expect(noRate.code).not.toBe(0);
    expect(noRate.stderr).toMatch(/--error-rate above 0/);
    expect(set.stderr).toBe('');
    // With --wiki alone, the fault goes to that wiki's group rather than the default group2.
    const alone = await run(['1.41.0-wmf.30', '--error-rate', '0.5', '--wiki', 'testwiki']);
    expect(alone.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(faultsFile(home), 'utf8'))).toEqual({
      '1.41.0-wmf.30': {
        groups: {
          group2: { errorRate: 0.2, rampMinutes: 30, wikis: ['enwiki', 'dewiki', 'frwiki'] },
          testwikis: { errorRate: 0.5, wikis: ['testwiki'] },
        },
        crashLoop: true,
      },
    });
  });
});
