// Increases of cumulative counters between two readings, with counter resets handled the way Prometheus'
// increase() does: a counter that went down restarted from 0, so everything it holds now is new.
import type { Counters, MetricReading, Reference, SideReading } from './model';

/** How much a counter grew from `previous` to `current`; a drop means it restarted from 0. */
export function increase(previous: number, current: number): number {
  return current >= previous ? current - previous : current;
}

/**
 * Requests and errors of one series. A restart resets both counters together, so a drop in either one means
 * both restarted; taken one by one, an error counter that climbed back above its old value would hide the reset.
 */
function seriesIncrease(previous: Counters | undefined, current: Counters): Counters {
  if (!previous || current.requests < previous.requests || current.errors < previous.errors)
    return { requests: current.requests, errors: current.errors };
  return { requests: current.requests - previous.requests, errors: current.errors - previous.errors };
}

/**
 * Requests and errors one side served between two readings: summed per series when both readings have them, else
 * from the totals. A series first seen now starts from its first value: it is usually a host that did not answer
 * before, whose whole past would otherwise count as this interval's (a host missing from one reading keeps its
 * last value, see carrySeries). One absent now adds nothing. Errors are capped at requests, since every error
 * answered a request and the two counters are read apart.
 */
export function sideIncrease(previous: SideReading, current: SideReading): Counters {
  let total: Counters;
  if (previous.series && current.series) {
    total = { requests: 0, errors: 0 };
    for (const name in current.series) {
      if (!previous.series[name]) continue;
      const grew = seriesIncrease(previous.series[name], current.series[name]);
      total.requests += grew.requests;
      total.errors += grew.errors;
    }
  } else {
    total = seriesIncrease(previous, current);
  }
  return { requests: total.requests, errors: Math.min(total.errors, total.requests) };
}

/** Per signature, how many times it was seen between two readings. */
export function signatureIncrease(
  previous: Record<string, number> = {},
  current: Record<string, number> = {},
): Record<string, number> {
  const grew: Record<string, number> = {};
  for (const [signature, count] of Object.entries(current)) {
    const d = increase(previous[signature] ?? 0, count);
    if (d > 0) grew[signature] = d;
  }
  return grew;
}

/** The series as last seen over both readings: what the next reading's increase is measured from. */
export function carrySeries(previous: SideReading | undefined, current: SideReading): SideReading {
  if (!previous?.series || !current.series) return current;
  return { ...current, series: { ...previous.series, ...current.series } };
}

/**
 * The q-quantile, in ms, of the requests that ended between two readings of a cumulative histogram, interpolated
 * inside its bucket as Prometheus' histogram_quantile() does. Undefined without requests or buckets to read.
 */
export function intervalQuantile(
  previous: Record<string, number> | undefined,
  current: Record<string, number> | undefined,
  q: number,
): number | undefined {
  if (!current) return undefined;
  const bounds = Object.keys(current)
    .map((le) => ({ le, seconds: le === '+Inf' ? Infinity : Number(le) }))
    .filter((b) => !Number.isNaN(b.seconds))
    .sort((a, b) => a.seconds - b.seconds);
  // A reset (any bucket went down) means everything in the buckets now is new.
  const reset = bounds.some((b) => (previous?.[b.le] ?? 0) > current[b.le]);
  const counts = bounds.map((b) => current[b.le] - (reset ? 0 : (previous?.[b.le] ?? 0)));
  const total = counts[counts.length - 1] ?? 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i] < rank) continue;
    const upper = bounds[i].seconds;
    const lower = i > 0 ? bounds[i - 1].seconds : 0;
    if (!Number.isFinite(upper)) return lower * 1000;
    const below = i > 0 ? counts[i - 1] : 0;
    const inBucket = counts[i] - below;
    return (lower + (upper - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1)) * 1000;
  }
  return undefined;
}

/**
 * What a metric served between two readings of every metric (ms on one clock): the reference a run without a
 * concurrent baseline (the train's watch) judges against. Empty when either reading lacks it.
 */
export function referenceBetween(
  from: { at: number; metrics?: Record<string, MetricReading> },
  to: { at: number; metrics?: Record<string, MetricReading> },
  metric: string,
): Reference {
  const [earlier, later] = [from.metrics?.[metric]?.subject, to.metrics?.[metric]?.subject];
  const durationMs = to.at - from.at;
  if (!earlier || !later || !(durationMs > 0)) return { requests: 0, errors: 0, durationMs: Math.max(0, durationMs) };
  const p99 = intervalQuantile(earlier.buckets, later.buckets, 0.99);
  return {
    ...sideIncrease(earlier, later),
    durationMs,
    signatures: signatureIncrease(earlier.signatures, later.signatures),
    ...(p99 !== undefined ? { latency: { p99 } } : {}),
  };
}
