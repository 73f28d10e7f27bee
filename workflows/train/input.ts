// What a train is started with, and the checks it must pass before anything happens.
import type { AnalysisSpec } from '../analysis/index';
import type { Thresholds } from '../analysis';
import { checkVersion, parseAmount } from '../names';
import type { Strategy } from '../plan';
import type { DeployWindows } from '../windows';

export interface TrainInput {
  version: string;
  fromVersion?: string;
  autoApprove: boolean;
  /**
   * Trains started before approvals were decided by auth.roles.approvers carry the old train.approvers list here.
   * It is ignored: who may approve is the verified signer's role, checked by the worker.
   */
  approvers?: string[];
  verifyEveryMs: number;
  verifyTimeoutMs: number;
  watchMs: number;
  /** How the error watch judges after a station move: `judge` is the analysis run's spec; the rest, older trains'. */
  watch?: Thresholds & { everyMs: number; newErrorMin?: number; judge?: Partial<AnalysisSpec> };
  /** approval: each station waits for an approver. window: it moves by itself inside its deploy window when no blocker is open. */
  gate?: 'approval' | 'window';
  windows?: DeployWindows;
  /** How often open blockers are checked; absent when no blocker tracker is configured. */
  blockersPollMs?: number;
  /** The train's page in the Temporal UI, linked from status updates. */
  link?: string;
  strategy: Strategy;
  codeService: string;
  configService: string;
  by: string;
}

export const DEFAULT_WATCH = {
  everyMs: 60_000,
  maxErrorRate: 0.01,
  maxRatioToBaseline: 5,
  minRequests: 50,
  newErrorMin: 5,
};

/** The watch's analysis spec: the configured judging, else one built from the thresholds older inputs carry. */
/** The watch's intervals: the watch split into samples of about `everyMs`, the last one ending at `watchMs`. */
export function watchCadence(input: TrainInput): { windowSamples: number; everyMs: number } {
  const windowSamples = Math.max(1, Math.ceil(input.watchMs / (input.watch?.everyMs ?? DEFAULT_WATCH.everyMs)));
  return { windowSamples, everyMs: input.watchMs / windowSamples };
}

export function watchSpec(watch: TrainInput['watch']): Partial<AnalysisSpec> {
  const thresholds = { ...DEFAULT_WATCH, ...watch };
  return (
    watch?.judge ?? {
      fixed: {
        maxErrorRate: thresholds.maxErrorRate,
        maxRatioToBaseline: thresholds.maxRatioToBaseline,
        minRequests: thresholds.minRequests,
      },
      minRequests: thresholds.minRequests,
      newSignatures: { minCount: thresholds.newErrorMin },
    }
  );
}

export function checkTrainInput(input: TrainInput): void {
  checkVersion(input.version);
  if (input.fromVersion !== undefined) checkVersion(input.fromVersion);
  parseAmount(input.strategy.batch, 100, 'batch');
  parseAmount(input.strategy.maxFail, 100, 'max-fail');
  if (input.strategy.canary !== null) parseAmount(input.strategy.canary, 100, 'canary');
  if (input.watch && !(input.watch.everyMs >= 1000))
    throw new Error(`the watch interval must be at least 1000 ms, not ${input.watch.everyMs}`);
  if (!(input.watchMs >= 0)) throw new Error(`the watch length must be a number of milliseconds, not ${input.watchMs}`);
}
