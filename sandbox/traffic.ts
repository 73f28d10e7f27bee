// What makes the sandbox's traffic look like production's: a background error rate on every version alike, a few
// noisy hosts, fleet-wide bursts, Poisson arrivals and a latency histogram. Pure apart from the random draws each
// piece is handed (sandbox/random.ts: seeded) and a hash, so each piece can be tested on its own.
import crypto from 'node:crypto';
import type { Random } from './random';
import type { Station } from '../workflows/names';

/** The share of requests that fail on every version, in every group, when the config does not say. */
export const BACKGROUND_ERROR_RATE = 0.003;

/**
 * Errors production logs every day on every version. None may match the default log-scan pattern (Fatal|startup),
 * in any case, or every deploy's log-scan check would fail on noise.
 */
export const BACKGROUND_SIGNATURES = [
  'Wikimedia\\Rdbms\\DBQueryError: Lock wait timeout exceeded; try restarting transaction',
  'Wikimedia\\Rdbms\\DBConnectionError: Cannot access the database: Too many connections',
  'Notice: Undefined index: title',
  'Warning: Memcached::get(): timeout',
  'Warning: Invalid argument supplied for foreach()',
] as const;

export const NOISY_FACTOR = 3;
export const BURST_FACTOR = 5;
export const BURST_MEAN_GAP_MS = 180_000;
/** Bursts this close would read as one burst of twice the length. */
export const BURST_MIN_GAP_MS = 30_000;
export const BURST_MIN_MS = 5_000;
export const BURST_MAX_MS = 15_000;

/** The background rate of each group: one number for all, a partial map (the rest default), or nothing. */
export function groupErrorRates(rates: number | Partial<Record<Station, number>> | undefined): Record<Station, number> {
  const of = (group: Station) => (typeof rates === 'number' ? rates : (rates?.[group] ?? BACKGROUND_ERROR_RATE));
  return { testwikis: of('testwikis'), group0: of('group0'), group1: of('group1'), group2: of('group2') };
}

export function pickBackgroundSignature(random: Random): string {
  return BACKGROUND_SIGNATURES[Math.floor(random() * BACKGROUND_SIGNATURES.length)];
}

/** One host in ten (rounded; one at least from 5 hosts): those whose names hash lowest, the same ones every time. */
export function noisyHosts(names: readonly string[]): Set<string> {
  const hashOf = (name: string) => crypto.createHash('sha256').update(name).digest().readUInt32BE(0);
  const count = names.length >= 5 ? Math.max(1, Math.round(names.length / 10)) : 0;
  return new Set([...names].sort((a, b) => hashOf(a) - hashOf(b)).slice(0, count));
}

/** Knuth's method for small means; for large ones a normal approximation, which Knuth's underflows on. */
export function poisson(mean: number, random: Random): number {
  if (mean <= 0) return 0;
  if (mean < 30) {
    const limit = Math.exp(-mean);
    let count = 0;
    for (let product = random(); product > limit; product *= random()) count++;
    return count;
  }
  return Math.max(0, Math.round(mean + Math.sqrt(mean) * standardNormal(random)));
}

function standardNormal(random: Random): number {
  // Box-Muller; 1 - random() keeps the logarithm away from 0.
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export function exponential(mean: number, random: Random): number {
  return -mean * Math.log(1 - random());
}

/**
 * Fleet-wide bursts of background errors, each 5 to 15 s, starting on average every 3 minutes: a gap of at least
 * 30 s plus an exponential draw. Worked out lazily from the clock, so there is no timer to stop.
 */
export class Bursts {
  private startsAt: number;
  private endsAt: number;

  constructor(
    readonly enabled: boolean,
    private readonly random: Random,
    private readonly now = Date.now,
  ) {
    this.startsAt = now() + this.gap();
    this.endsAt = this.startsAt + this.duration();
  }

  /** From the start of one burst to the start of the next, 3 minutes on average. */
  private gap(): number {
    return BURST_MIN_GAP_MS + exponential(BURST_MEAN_GAP_MS - BURST_MIN_GAP_MS, this.random);
  }

  private duration(): number {
    return BURST_MIN_MS + this.random() * (BURST_MAX_MS - BURST_MIN_MS);
  }

  /** The burst under way, if any, and when the next one starts. */
  state(): { bursting: boolean; startsAt: number; endsAt: number } {
    const now = this.now();
    while (now >= this.endsAt) {
      this.startsAt += this.gap();
      this.endsAt = this.startsAt + this.duration();
    }
    return { bursting: this.enabled && now >= this.startsAt, startsAt: this.startsAt, endsAt: this.endsAt };
  }

  factor(): number {
    return this.state().bursting ? BURST_FACTOR : 1;
  }
}

/** A few milliseconds with a short tail, as a cached page view takes. */
export function baseLatencyMs(random: Random): number {
  return 2 + Math.min(exponential(2, random), 40);
}

export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** One Prometheus histogram series: counts per upper bound (not yet cumulative), the sum and the count. */
export class LatencyHistogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    const bucket = LATENCY_BUCKETS.findIndex((le) => seconds <= le);
    this.counts[bucket === -1 ? LATENCY_BUCKETS.length : bucket]++;
    this.sum += seconds;
    this.count++;
  }

  /** Exposition lines for `metric`, with `labels` already formatted as `a="b",c="d"`. Buckets are cumulative. */
  lines(metric: string, labels: string): string[] {
    let cumulative = 0;
    const bounds = [...LATENCY_BUCKETS.map(String), '+Inf'];
    return [
      ...bounds.map((le, i) => `${metric}_bucket{${labels},le="${le}"} ${(cumulative += this.counts[i])}`),
      `${metric}_sum{${labels}} ${this.sum}`,
      `${metric}_count{${labels}} ${this.count}`,
    ];
  }
}
