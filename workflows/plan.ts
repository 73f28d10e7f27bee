// Turning a strategy and the hosts' own state into waves. Pure, so the workflow, --dry-run and the tests agree.
import { parseAmount } from './names';

export interface Strategy {
  /** "10%", "3", or null for no canary wave at all. Counts hosts already on the release (seed 004). */
  canary: string | null;
  /** Named canary hosts, taken before any other host when the canary wave is filled. */
  canaryHosts?: string[];
  /**
   * Hosts that serve no traffic (test servers in no pool): never canaries, since nothing would judge them, and not
   * counted as canaries when already on the release (a backport's test servers are, before production).
   */
  idleHosts?: string[];
  /** Hosts per rolling batch after the canaries: "25%" or "10". "0" stops after the canaries (seed 004's
   *  `sync --canary=10%`, widened later by running again with a larger canary). */
  batch: string;
  /** Failures tolerated before the rollout stops and rolls back: "0", "2", "5%". */
  maxFail: string;
  /** Hosts fetching at once. Fetch is wide because it changes nothing that serves traffic. */
  fetchConcurrency: number;
}

export const DEFAULT_STRATEGY: Strategy = { canary: '10%', batch: '25%', maxFail: '0', fetchConcurrency: 80 };

export interface Wave {
  name: string;
  hosts: string[];
}

export interface RolloutPlan {
  alreadyOnRelease: string[];
  waves: Wave[];
  maxFailures: number;
}

/**
 * `current` maps each target host to the release it serves now (null when it has none).
 * A host already on the release is never touched again, so re-running a rollout, or widening a canary from 10%
 * to 20%, adds only the hosts still needed.
 */
export function planRollout(current: Record<string, string | null>, release: string, strategy: Strategy): RolloutPlan {
  const hosts = Object.keys(current).sort();
  const total = hosts.length;
  const alreadyOnRelease = hosts.filter((h) => current[h] === release);
  const pending = hosts.filter((h) => current[h] !== release);
  const named = new Set(strategy.canaryHosts ?? []);
  const idle = new Set(strategy.idleHosts ?? []);
  const serving = pending.filter((h) => !idle.has(h));
  const byCanaryPreference = [
    ...serving.filter((h) => named.has(h)),
    ...serving.filter((h) => !named.has(h)),
    ...pending.filter((h) => idle.has(h)),
  ];

  const waves: Wave[] = [];
  let rest = byCanaryPreference;
  if (strategy.canary !== null) {
    const target = parseAmount(strategy.canary, hosts.filter((h) => !idle.has(h)).length, 'canary');
    const servingAlready = alreadyOnRelease.filter((h) => !idle.has(h)).length;
    const needed = Math.max(0, Math.min(serving.length, target - servingAlready));
    if (needed > 0) {
      waves.push({ name: 'canary', hosts: rest.slice(0, needed) });
      rest = rest.slice(needed);
    }
  }
  const batchSize = parseAmount(strategy.batch, total, 'batch');
  for (let i = 0; batchSize > 0 && i < rest.length; i += batchSize) {
    waves.push({
      name: `batch ${waves.length + (waves[0]?.name === 'canary' ? 0 : 1)}`,
      hosts: rest.slice(i, i + batchSize),
    });
  }
  return { alreadyOnRelease, waves, maxFailures: parseAmount(strategy.maxFail, total, 'max-fail') };
}

/** Splits a list into chunks of at most `size`, for activities that each handle a slice of hosts. */
export function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += Math.max(1, size)) out.push(items.slice(i, i + Math.max(1, size)));
  return out;
}
