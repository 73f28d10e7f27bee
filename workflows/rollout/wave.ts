// One wave: a child workflow that switches its batches of hosts one after another, so no history grows with the
// fleet; and how a rollout's waves are grouped into at most MAX_WAVE_CHILDREN children.
import type { Release } from '../../activities/releases';
import type { HostResult } from '../definitions';
import { chunk, type Wave } from '../plan';
import {
  ACTIVITIES_IN_FLIGHT,
  FAILURES_KEPT,
  HOSTS_PER_ACTIVITY,
  MAX_WAVE_CHILDREN,
  hostActivities,
  inParallel,
  mayPassOnRetry,
} from './activities';

export interface WaveInput {
  service: string;
  release: Release;
  /** One or more batches, switched one after another: several when a tiny batch size would mean thousands of children. */
  batches: string[][];
  /** Failures this child may still see before it stops without starting its next batch. */
  failuresAllowed: number;
  by: string;
  runId: string;
  movingBack?: boolean;
  /** The parent rollout's run, which its rollback fences on each host. */
  fence?: string;
}

export interface WaveResult {
  /** Per batch: hosts on the release now, and failures. */
  batches: { done: number; failed: number }[];
  /** Failures, at most FAILURES_KEPT of them, with their count in `failed`. */
  failures: HostResult[];
  failed: number;
  /** Batches not started because the failure limit was crossed. */
  notStarted: number;
  /** Every failed host that may yet succeed on a retry (unreachable and the like), by name. */
  retryable: string[];
}

export async function rolloutWaveWorkflow(input: WaveInput): Promise<WaveResult> {
  const result: WaveResult = { batches: [], failures: [], failed: 0, notStarted: 0, retryable: [] };
  for (const [index, hosts] of input.batches.entries()) {
    if (result.failed > input.failuresAllowed) {
      result.notStarted = input.batches.length - index;
      break;
    }
    const parts = chunk(hosts, HOSTS_PER_ACTIVITY);
    const results = (
      await inParallel(parts, ACTIVITIES_IN_FLIGHT, (part) =>
        hostActivities.promoteHosts({
          service: input.service,
          release: input.release,
          hosts: part,
          by: input.by,
          runId: input.runId,
          concurrency: part.length,
          movingBack: input.movingBack,
          fence: input.fence,
        }),
      )
    ).flat();
    const failures = results.filter((r) => r.outcome === 'failed');
    result.batches.push({ done: results.length - failures.length, failed: failures.length });
    result.failed += failures.length;
    result.failures.push(...failures.slice(0, Math.max(0, FAILURES_KEPT - result.failures.length)));
    result.retryable.push(...failures.filter((f) => mayPassOnRetry(f)).map((f) => f.host));
  }
  return result;
}

/** Groups consecutive batches so that no rollout starts more than MAX_WAVE_CHILDREN children. */
export function groupBatches(waves: Wave[]): { name: string; waves: Wave[] }[] {
  const canary = waves[0]?.name === 'canary' ? [waves[0]] : [];
  const batches = waves.slice(canary.length);
  const perChild = Math.max(1, Math.ceil(batches.length / (MAX_WAVE_CHILDREN - canary.length)));
  const groups = chunk(batches, perChild).map((group) => ({
    name:
      group.length === 1 ? group[0].name : `${group[0].name}-${group[group.length - 1].name.replace(/^batch /, '')}`,
    waves: group,
  }));
  return [...canary.map((w) => ({ name: w.name, waves: [w] })), ...groups];
}
