// Metric analysis of canaries against the rest of the fleet (the baseline), from Prometheus's HTTP API or by
// scraping the hosts' /metrics directly. A measurement fails only when the canaries' error rate is above both the
// absolute ceiling and the baseline times the allowed ratio, so a fleet-wide problem is not blamed on the release.
// Too little traffic is inconclusive: the engine pauses for a human rather than guessing.
import type { AnalysisSpec, HostSpec, SignalboxConfig } from '../config/load';
import type { Release } from './releases';
import { judge, type Counts, type GroupCounts, type Measurement } from '../workflows/analysis';
import { eachWithLimit } from './hosts';
import { loadInventory } from './inventory';
import { poolStates } from './loadbalancer';

export interface AnalysisResult {
  result: 'pass' | 'fail' | 'inconclusive';
  summary: string;
  measurements: Measurement[];
  notes: string[];
}

/** Every series of `metric` in Prometheus text exposition format, with its labels unescaped. */
export function* counterSeries(text: string, metric: string): Generator<{ labels: Record<string, string>; value: number }> {
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric) || (line[metric.length] !== '{' && line[metric.length] !== ' ')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (!Number.isFinite(value)) continue;
    const labels: Record<string, string> = {};
    for (const m of line.slice(metric.length, line.lastIndexOf(' ')).matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]] = m[2].replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
    }
    yield { labels, value };
  }
}

/** Sums a counter over every series in Prometheus text exposition format, optionally by one label's value. */
export function sumCounter(text: string, metric: string, byLabel?: string): Record<string, number> & { total: number } {
  const sums = { total: 0 } as Record<string, number> & { total: number };
  for (const { labels, value } of counterSeries(text, metric)) {
    sums.total += value;
    const label = byLabel && labels[byLabel];
    if (label) sums[label] = (sums[label] ?? 0) + value;
  }
  return sums;
}

async function scrape(host: HostSpec): Promise<Counts> {
  const res = await fetch(`http://${host.address}:${host.port}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${host.name} /metrics answered HTTP ${res.status}`);
  const text = await res.text();
  return { requests: sumCounter(text, 'mediawiki_requests_total').total, errors: sumCounter(text, 'mediawiki_errors_total').total };
}

/** Cumulative requests, errors and errors by signature per wiki group, summed over the given hosts' /metrics. */
async function scrapeGroups(hosts: HostSpec[]): Promise<Record<string, GroupCounts>> {
  const texts = await eachWithLimit(hosts, 64, async (h) => {
    const res = await fetch(`http://${h.address}:${h.port}/metrics`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    return res?.ok ? res.text() : '';
  });
  const groups: Record<string, GroupCounts> = {};
  const groupOf = (name: string) => (groups[name] ??= { requests: 0, errors: 0, signatures: {} });
  for (const text of texts) {
    for (const { labels, value } of counterSeries(text, 'mediawiki_requests_total')) if (labels.group) groupOf(labels.group).requests += value;
    for (const { labels, value } of counterSeries(text, 'mediawiki_errors_total')) {
      if (!labels.group) continue;
      const counts = groupOf(labels.group);
      counts.errors += value;
      const signature = labels.signature ?? 'unknown';
      counts.signatures[signature] = (counts.signatures[signature] ?? 0) + value;
    }
  }
  return groups;
}

async function scrapeAll(hosts: HostSpec[]): Promise<Counts> {
  const counts = await eachWithLimit(hosts, 64, (h) => scrape(h).catch(() => ({ requests: 0, errors: 0 })));
  return counts.reduce((a, b) => ({ requests: a.requests + b.requests, errors: a.errors + b.errors }), { requests: 0, errors: 0 });
}

export async function promSeries(baseUrl: string, query: string): Promise<{ labels: Record<string, string>; value: number }[]> {
  const res = await fetch(`${baseUrl}/api/v1/query?query=${encodeURIComponent(query)}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`Prometheus refused ${query}: ${body.error ?? res.status}`);
  return body.data!.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
}

export async function promQuery(baseUrl: string, query: string): Promise<number> {
  return (await promSeries(baseUrl, query)).reduce((sum, r) => sum + r.value, 0);
}

function hostRegex(hosts: HostSpec[]): string {
  return hosts.map((h) => h.name.replace(/[.]/g, '\\\\.')).join('|');
}

async function promCounts(baseUrl: string, hosts: HostSpec[], windowMs: number): Promise<Counts> {
  if (!hosts.length) return { requests: 0, errors: 0 };
  const range = `${Math.max(1, Math.round(windowMs / 1000))}s`;
  const selector = `{host=~"${hostRegex(hosts)}"}`;
  const [requests, errors] = await Promise.all([
    promQuery(baseUrl, `sum(increase(mediawiki_requests_total${selector}[${range}]))`),
    promQuery(baseUrl, `sum(increase(mediawiki_errors_total${selector}[${range}]))`),
  ]);
  return { requests, errors };
}

export function createMetricsActivities(config: SignalboxConfig) {
  async function analyzeCanary(request: { service: string; release: Release; canaries: string[] }): Promise<AnalysisResult> {
    const spec = config.services[request.service]?.analysis;
    if (!spec) return { result: 'pass', summary: 'no metric analysis configured', measurements: [], notes: [] };
    const inventory = loadInventory(config);
    const pools = await poolStates(inventory.loadBalancer).catch(() => ({} as Record<string, boolean>));
    const canarySet = new Set(request.canaries);
    const canaries = inventory.hosts.filter((h) => canarySet.has(h.name));
    const baseline = inventory.hosts.filter((h) => !canarySet.has(h.name) && pools[h.name] !== false);
    const measurements: Measurement[] = [];
    {
      let failures = 0;
      for (let n = 0; n < spec.measurements; n++) {
        let canary: Counts;
        let base: Counts;
        if (spec.source === 'prometheus') {
          if (!spec.prometheusUrl) throw new Error(`services.${request.service}.analysis.prometheusUrl is required with source: prometheus`);
          await new Promise((r) => setTimeout(r, spec.intervalMs));
          [canary, base] = await Promise.all([promCounts(spec.prometheusUrl, canaries, spec.intervalMs), promCounts(spec.prometheusUrl, baseline, spec.intervalMs)]);
        } else {
          const [c0, b0] = await Promise.all([scrapeAll(canaries), scrapeAll(baseline)]);
          await new Promise((r) => setTimeout(r, spec.intervalMs));
          const [c1, b1] = await Promise.all([scrapeAll(canaries), scrapeAll(baseline)]);
          canary = { requests: c1.requests - c0.requests, errors: c1.errors - c0.errors };
          base = { requests: b1.requests - b0.requests, errors: b1.errors - b0.errors };
        }
        const m = judge(spec, canary, base);
        measurements.push(m);
        if (m.verdict === 'fail' && ++failures > spec.failureLimit) {
          return { result: 'fail', summary: `measurement ${n + 1}: ${m.why}`, measurements, notes: measurements.map((x) => `${x.verdict}: ${x.why}`) };
        }
      }
      const inconclusive = measurements.filter((m) => m.verdict === 'inconclusive').length;
      const notes = measurements.map((x) => `${x.verdict}: ${x.why}`);
      if (inconclusive * 2 > measurements.length) return { result: 'inconclusive', summary: `${inconclusive} of ${measurements.length} measurements had too little data`, measurements, notes };
      return { result: 'pass', summary: `${measurements.length} measurements, ${failures} failed (limit ${spec.failureLimit})`, measurements, notes };
    }
  }

  /**
   * The fleet's cumulative requests and errors per wiki group right now: from Prometheus (the counters' current
   * sums) when the config service's analysis reads Prometheus, else from the hosts. Differences between two
   * snapshots give a window's error rate.
   */
  async function groupCounters(): Promise<Record<string, GroupCounts>> {
    const spec = config.services[config.train.configService]?.analysis;
    if (spec?.source === 'prometheus' && spec.prometheusUrl) {
      const url = spec.prometheusUrl;
      const [requests, errors] = await Promise.all([promSeries(url, 'sum by (group) (mediawiki_requests_total)'), promSeries(url, 'sum by (group, signature) (mediawiki_errors_total)')]);
      const groups: Record<string, GroupCounts> = {};
      for (const { labels, value } of requests) groups[labels.group] = { requests: value, errors: 0, signatures: {} };
      for (const { labels, value } of errors) {
        const counts = (groups[labels.group] ??= { requests: 0, errors: 0, signatures: {} });
        counts.errors += value;
        counts.signatures[labels.signature ?? 'unknown'] = (counts.signatures[labels.signature ?? 'unknown'] ?? 0) + value;
      }
      return groups;
    }
    return scrapeGroups(loadInventory(config).hosts);
  }

  return { analyzeCanary, groupCounters };
}
