// Metric analysis of canaries against the rest of the fleet (the baseline), from Prometheus's HTTP API or by
// scraping the hosts' /metrics directly. A measurement fails only when the canaries' error rate is above both the
// absolute ceiling and the baseline times the allowed ratio, so a fleet-wide problem is not blamed on the release.
// Too little traffic is inconclusive: the engine pauses for a human rather than guessing.
import type { HostSpec, SignalboxConfig } from '../config/load';
import type { Release } from './releases';
import { judge, type Counts, type GroupCounts, type Measurement } from '../workflows/analysis';
import type { AnalysisSpec as JudgeSpec, MetricReading, SideReading } from '../workflows/analysis/model';
import { eachWithLimit } from './hosts';
import { loadInventory } from './inventory';
import { poolStates } from './loadbalancer';

export interface AnalysisResult {
  result: 'pass' | 'fail' | 'inconclusive';
  summary: string;
  measurements: Measurement[];
  notes: string[];
}

/**
 * Every series of `metric` in Prometheus text exposition format, with its labels unescaped. A sample line is
 * `name{labels} value [timestamp]`: the value is the first field after the labels, never the timestamp.
 */
export function* counterSeries(
  text: string,
  metric: string,
): Generator<{ labels: Record<string, string>; value: number }> {
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric) || (line[metric.length] !== '{' && line[metric.length] !== ' ')) continue;
    const labelText = line[metric.length] === '{' ? line.slice(metric.length, labelsEnd(line, metric.length) + 1) : '';
    const [valueText] = line
      .slice(metric.length + labelText.length)
      .trim()
      .split(/\s+/);
    const value = valueText === '+Inf' ? Infinity : Number(valueText);
    if (Number.isNaN(value) || valueText === '') continue;
    const labels: Record<string, string> = {};
    for (const m of labelText.matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]] = m[2].replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
    }
    yield { labels, value };
  }
}

/** Index of the `}` that closes the label set opening at `open`, skipping quoted values (which may hold `}`). */
function labelsEnd(line: string, open: number): number {
  let quoted = false;
  for (let i = open + 1; i < line.length; i++) {
    if (quoted && line[i] === '\\') i++;
    else if (line[i] === '"') quoted = !quoted;
    else if (!quoted && line[i] === '}') return i;
  }
  return line.length - 1;
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
  return {
    requests: sumCounter(text, 'mediawiki_requests_total').total,
    errors: sumCounter(text, 'mediawiki_errors_total').total,
  };
}

/** Cumulative requests, errors and errors by signature per wiki group, summed over the given hosts' /metrics. */
async function scrapeGroups(hosts: HostSpec[]): Promise<Record<string, GroupCounts>> {
  const texts = await eachWithLimit(hosts, 64, async (h) => {
    const res = await fetch(`http://${h.address}:${h.port}/metrics`, { signal: AbortSignal.timeout(5000) }).catch(
      () => undefined,
    );
    return res?.ok ? res.text() : '';
  });
  const groups: Record<string, GroupCounts> = {};
  const groupOf = (name: string) => (groups[name] ??= { requests: 0, errors: 0, signatures: {} });
  for (const text of texts) {
    for (const { labels, value } of counterSeries(text, 'mediawiki_requests_total'))
      if (labels.group) groupOf(labels.group).requests += value;
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
  return counts.reduce((a, b) => ({ requests: a.requests + b.requests, errors: a.errors + b.errors }), {
    requests: 0,
    errors: 0,
  });
}

export async function promSeries(
  baseUrl: string,
  query: string,
): Promise<{ labels: Record<string, string>; value: number }[]> {
  const res = await fetch(`${baseUrl}/api/v1/query?query=${encodeURIComponent(query)}`, {
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json()) as {
    status: string;
    error?: string;
    data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
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

/** What one host served to one wiki group, as cumulative counters. */
interface GroupTotals {
  requests: number;
  errors: number;
  signatures: Record<string, number>;
  buckets: Record<string, number>;
}
/** Per host (the series name), per wiki group; and every error signature seen, with the versions it was seen on. */
type FleetTotals = Map<string, Record<string, GroupTotals>> & { seenOn?: Map<string, Set<string>> };

function noteSeen(fleet: FleetTotals, signature: string, version: string | undefined, count: number): void {
  if (!(count > 0)) return;
  fleet.seenOn ??= new Map();
  const versions = fleet.seenOn.get(signature) ?? new Set();
  versions.add(version ?? 'unknown');
  fleet.seenOn.set(signature, versions);
}

/** Most signatures a reading says are known elsewhere: enough for any real error mix, bounded for history. */
const MAX_KNOWN = 200;

/** Signatures seen on any version but `version`: errors the older release has too are not new with this one. */
function seenOnOtherVersions(fleet: FleetTotals, version: string): string[] {
  return [...(fleet.seenOn ?? [])]
    .filter(([, versions]) => [...versions].some((v) => v !== version))
    .map(([signature]) => signature)
    .sort()
    .slice(0, MAX_KNOWN);
}

/** One reading of every metric an analysis run judges, taken at `at` (ms since the epoch). */
export interface Reading {
  at: number;
  metrics: Record<string, MetricReading>;
}

/** Beyond this many hosts a side is read as sums only: per-host series would make each sample too big for history. */
const MAX_SERIES = 2000;
/** Signatures kept per side: the most frequent; the rest are counted in errors only. */
const MAX_SIGNATURES = 50;
const DURATION_METRIC = 'mediawiki_request_duration_seconds_bucket';

const emptyTotals = (): GroupTotals => ({ requests: 0, errors: 0, signatures: {}, buckets: {} });
function totalsOf(fleet: FleetTotals, host: string, group: string): GroupTotals {
  let groups = fleet.get(host);
  if (!groups) fleet.set(host, (groups = {}));
  return (groups[group] ??= emptyTotals());
}

function addHostText(fleet: FleetTotals, host: string, text: string): void {
  fleet.set(host, fleet.get(host) ?? {});
  for (const { labels, value } of counterSeries(text, 'mediawiki_requests_total'))
    totalsOf(fleet, host, labels.group ?? 'unknown').requests += value;
  for (const { labels, value } of counterSeries(text, 'mediawiki_errors_total')) {
    const totals = totalsOf(fleet, host, labels.group ?? 'unknown');
    totals.errors += value;
    const signature = labels.signature ?? 'unknown';
    totals.signatures[signature] = (totals.signatures[signature] ?? 0) + value;
    noteSeen(fleet, signature, labels.version, value);
  }
  for (const { labels, value } of counterSeries(text, DURATION_METRIC)) {
    const totals = totalsOf(fleet, host, labels.group ?? 'unknown');
    if (labels.le) totals.buckets[labels.le] = (totals.buckets[labels.le] ?? 0) + value;
  }
}

/** The hosts' own /metrics. A host that does not answer is left out: its series keep their last values. */
async function scrapeTotals(hosts: HostSpec[]): Promise<FleetTotals> {
  const fleet: FleetTotals = new Map();
  const texts = await eachWithLimit(hosts, 64, async (h) => {
    const res = await fetch(`http://${h.address}:${h.port}/metrics`, { signal: AbortSignal.timeout(5000) }).catch(
      () => undefined,
    );
    return res?.ok ? res.text().catch(() => undefined) : undefined;
  });
  texts.forEach((text, i) => text !== undefined && addHostText(fleet, hosts[i].name, text));
  if (hosts.length && !fleet.size) throw new Error(`none of the ${hosts.length} hosts answered on /metrics`);
  return fleet;
}

/** The same counters from Prometheus, per host; a query that fails fails the reading. */
async function prometheusTotals(baseUrl: string, hosts: HostSpec[]): Promise<FleetTotals> {
  const selector = `{host=~"${hostRegex(hosts)}"}`;
  const [requests, errors, buckets] = await Promise.all([
    promSeries(baseUrl, `sum by (host, group) (mediawiki_requests_total${selector})`),
    promSeries(baseUrl, `sum by (host, group, signature, version) (mediawiki_errors_total${selector})`),
    promSeries(baseUrl, `sum by (host, group, le) (${DURATION_METRIC}${selector})`),
  ]);
  const fleet: FleetTotals = new Map();
  for (const { labels, value } of requests) totalsOf(fleet, labels.host, labels.group ?? 'unknown').requests += value;
  for (const { labels, value } of errors) {
    const totals = totalsOf(fleet, labels.host, labels.group ?? 'unknown');
    totals.errors += value;
    totals.signatures[labels.signature ?? 'unknown'] = (totals.signatures[labels.signature ?? 'unknown'] ?? 0) + value;
    noteSeen(fleet, labels.signature ?? 'unknown', labels.version, value);
  }
  for (const { labels, value } of buckets)
    if (labels.le) totalsOf(fleet, labels.host, labels.group ?? 'unknown').buckets[labels.le] = value;
  return fleet;
}

/**
 * One side of a comparison: the given hosts' counters summed over the groups `inGroup` accepts, with a series
 * per host (so one host's restart resets only its own counters) and the side's size in hosts.
 */
function sideReading(fleet: FleetTotals, hosts: string[], inGroup: (group: string) => boolean): SideReading {
  const side: Required<Pick<SideReading, 'series' | 'signatures' | 'buckets'>> & SideReading = {
    requests: 0,
    errors: 0,
    hosts: hosts.length,
    series: {},
    signatures: {},
    buckets: {},
  };
  for (const host of hosts) {
    const groups = fleet.get(host);
    if (!groups) continue;
    const series = { requests: 0, errors: 0 };
    for (const [group, totals] of Object.entries(groups)) {
      if (!inGroup(group)) continue;
      series.requests += totals.requests;
      series.errors += totals.errors;
      for (const [signature, n] of Object.entries(totals.signatures))
        side.signatures[signature] = (side.signatures[signature] ?? 0) + n;
      for (const [le, n] of Object.entries(totals.buckets)) side.buckets[le] = (side.buckets[le] ?? 0) + n;
    }
    side.series[host] = series;
    side.requests += series.requests;
    side.errors += series.errors;
  }
  side.signatures = Object.fromEntries(
    Object.entries(side.signatures)
      .sort(([, a], [, b]) => b - a)
      .slice(0, MAX_SIGNATURES),
  );
  if (!Object.keys(side.buckets).length) delete (side as SideReading).buckets;
  if (hosts.length > MAX_SERIES) delete (side as SideReading).series;
  return side;
}

export function createMetricsActivities(config: SignalboxConfig) {
  /** Per-host counters of the given hosts, from the service's configured source. */
  async function fleetTotals(service: string, hosts: HostSpec[]): Promise<FleetTotals> {
    const spec = config.services[service]?.analysis;
    if (spec?.source !== 'prometheus') return scrapeTotals(hosts);
    if (!spec.prometheusUrl)
      throw new Error(`services.${service}.analysis.prometheusUrl is required with source: prometheus`);
    return prometheusTotals(spec.prometheusUrl, hosts);
  }

  /**
   * One sample of the canaries against the rest of the pooled fleet (the baseline). Cumulative counters: the
   * workflow waits between samples with timers, and assess() turns them into increases.
   */
  async function measureCanary(request: { service: string; canaries: string[] }): Promise<Reading> {
    const inventory = loadInventory(config);
    const pools = await poolStates(inventory.loadBalancer);
    const canarySet = new Set(request.canaries);
    const baseline = inventory.hosts
      .filter((h) => !canarySet.has(h.name) && pools[h.name] !== false)
      .map((h) => h.name);
    const fleet = await fleetTotals(
      request.service,
      inventory.hosts.filter((h) => canarySet.has(h.name) || baseline.includes(h.name)),
    );
    if (!baseline.some((h) => fleet.has(h)))
      throw new Error(`no baseline host answered (${baseline.length} pooled hosts besides the canaries)`);
    const everyGroup = () => true;
    return {
      at: Date.now(),
      metrics: {
        errors: {
          subject: sideReading(fleet, request.canaries, everyGroup),
          baseline: sideReading(fleet, baseline, everyGroup),
        },
      },
    };
  }

  /**
   * One sample of every wiki group's counters over the whole fleet: the train's watch judges the moved group's.
   * With `version`, each group also names the signatures seen on other versions: not new with this one.
   */
  async function measureGroups(request: { groups: string[]; version?: string }): Promise<Reading> {
    const hosts = loadInventory(config).hosts;
    const fleet = await fleetTotals(config.train.configService, hosts);
    const names = hosts.map((h) => h.name);
    const known = request.version ? { known: seenOnOtherVersions(fleet, request.version) } : {};
    return {
      at: Date.now(),
      metrics: Object.fromEntries(
        request.groups.map((g) => [g, { subject: sideReading(fleet, names, (group) => group === g), ...known }]),
      ),
    };
  }

  async function analyzeCanary(request: {
    service: string;
    release: Release;
    canaries: string[];
  }): Promise<AnalysisResult> {
    const spec = config.services[request.service]?.analysis;
    if (!spec) return { result: 'pass', summary: 'no metric analysis configured', measurements: [], notes: [] };
    const inventory = loadInventory(config);
    const pools = await poolStates(inventory.loadBalancer).catch(() => ({}) as Record<string, boolean>);
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
          if (!spec.prometheusUrl)
            throw new Error(`services.${request.service}.analysis.prometheusUrl is required with source: prometheus`);
          await new Promise((r) => setTimeout(r, spec.intervalMs));
          [canary, base] = await Promise.all([
            promCounts(spec.prometheusUrl, canaries, spec.intervalMs),
            promCounts(spec.prometheusUrl, baseline, spec.intervalMs),
          ]);
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
          return {
            result: 'fail',
            summary: `measurement ${n + 1}: ${m.why}`,
            measurements,
            notes: measurements.map((x) => `${x.verdict}: ${x.why}`),
          };
        }
      }
      const inconclusive = measurements.filter((m) => m.verdict === 'inconclusive').length;
      const notes = measurements.map((x) => `${x.verdict}: ${x.why}`);
      if (inconclusive * 2 > measurements.length)
        return {
          result: 'inconclusive',
          summary: `${inconclusive} of ${measurements.length} measurements had too little data`,
          measurements,
          notes,
        };
      return {
        result: 'pass',
        summary: `${measurements.length} measurements, ${failures} failed (limit ${spec.failureLimit})`,
        measurements,
        notes,
      };
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
      const [requests, errors] = await Promise.all([
        promSeries(url, 'sum by (group) (mediawiki_requests_total)'),
        promSeries(url, 'sum by (group, signature) (mediawiki_errors_total)'),
      ]);
      const groups: Record<string, GroupCounts> = {};
      for (const { labels, value } of requests) groups[labels.group] = { requests: value, errors: 0, signatures: {} };
      for (const { labels, value } of errors) {
        const counts = (groups[labels.group] ??= { requests: 0, errors: 0, signatures: {} });
        counts.errors += value;
        counts.signatures[labels.signature ?? 'unknown'] =
          (counts.signatures[labels.signature ?? 'unknown'] ?? 0) + value;
      }
      return groups;
    }
    return scrapeGroups(loadInventory(config).hosts);
  }

  /** How a service's canaries are judged, from the worker's config; null when it has no analysis. */
  async function canaryAnalysisPlan(request: {
    service: string;
  }): Promise<{ everyMs: number; windowSamples: number; spec: Partial<JudgeSpec> } | null> {
    const spec = config.services[request.service]?.analysis;
    return spec ? { everyMs: spec.intervalMs, windowSamples: spec.measurements, spec: spec.judge } : null;
  }

  return { analyzeCanary, canaryAnalysisPlan, groupCounters, measureCanary, measureGroups };
}
