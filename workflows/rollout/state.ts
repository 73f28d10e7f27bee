// A rollout's status and the flags operators set, with their rules; and the context every phase is handed.
import { setCurrentDetails } from '@temporalio/workflow';
import { viewLine } from '../analysis/index';
import type { authorizer } from '../authorize';
import type { ControlRequest, HostResult, RolloutStatus } from '../definitions';
import { FAILURES_KEPT } from './activities';
import type { RolloutInput } from './input';

export class RolloutState {
  readonly status: RolloutStatus;
  abortRequested = false;
  rollbackRequested = false;
  /** Every host a wave was started on: the rollback's whole target, whatever the wave reported back. */
  readonly attempted: string[] = [];

  constructor(
    private readonly service: string,
    private readonly releaseId: string,
  ) {
    this.status = {
      service,
      release: releaseId,
      phase: 'planning',
      paused: false,
      total: 0,
      done: 0,
      failed: 0,
      maxFail: 0,
      waves: [],
      failures: [],
    };
  }

  finished(): boolean {
    return ['done', 'rolled-back', 'aborted'].includes(this.status.phase);
  }

  refuseWhenFinished(_request?: ControlRequest): void {
    if (this.finished()) throw new Error(`rollout is already ${this.status.phase}`);
  }

  notPaused(): void {
    this.refuseWhenFinished();
    if (!this.status.paused) throw new Error('rollout is not paused');
  }

  /** What an operator waits on between waves: a resume, or an abort or rollback. */
  resumedOrStopped(): boolean {
    return !this.status.paused || this.abortRequested || this.rollbackRequested;
  }

  report(): void {
    const status = this.status;
    setCurrentDetails(
      [
        `**${this.service}** → \`${this.releaseId}\`: ${status.phase}${status.paused ? ` (paused: ${status.pauseReason})` : ''}`,
        `${status.done}/${status.total} hosts done, ${status.failed} failed (limit ${status.maxFail})`,
        ...status.waves
          .slice(0, 20)
          .map((w) => `- ${w.name}: ${w.done}/${w.hosts}${w.failed ? `, ${w.failed} failed` : ''}`),
        ...(status.analysis ? [`analysis of ${viewLine(status.analysis)}`] : []),
      ].join('\n'),
    );
  }

  recordFailures(failures: HostResult[], count = failures.length): void {
    this.status.failed += count;
    this.status.failures.push(...failures.slice(0, Math.max(0, FAILURES_KEPT - this.status.failures.length)));
  }
}

/** What every phase of a rollout is handed. */
export interface Rollout {
  /** Its `by` is the verified identity once a deploy from outside a train has been checked. */
  input: RolloutInput;
  /** The workflow id: wave children and host journals are keyed by it. */
  runId: string;
  /** A rollback fences this run on every host it rolls back, so a wave that died mid-switch never lands after it. */
  fence: string;
  auth: ReturnType<typeof authorizer>;
  state: RolloutState;
}
