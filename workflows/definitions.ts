// Messages, queries and search attributes, defined once and shared by workflows, the worker and the CLI.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Station } from './names';

export const TASK_QUEUE = 'signalbox';

export const searchAttributes = {
  kind: defineSearchAttributeKey('SignalboxKind', SearchAttributeType.KEYWORD),
  version: defineSearchAttributeKey('SignalboxVersion', SearchAttributeType.KEYWORD),
  station: defineSearchAttributeKey('SignalboxStation', SearchAttributeType.KEYWORD),
  service: defineSearchAttributeKey('SignalboxService', SearchAttributeType.KEYWORD),
};

/** What `signalbox dev` registers on the server; temporal-dev.yml is tested against this list. */
export const SEARCH_ATTRIBUTE_REGISTRATIONS: Record<string, 'Keyword'> = Object.fromEntries(
  Object.values(searchAttributes).map((key) => [key.name, 'Keyword' as const]),
);

// ---- rollout engine ----------------------------------------------------------------------------------------

export type HostOutcome = 'done' | 'already' | 'failed' | 'rolled-back' | 'skipped';

/** Goes into workflow history, so it stays small: the whole story of a host is in `log`. */
export interface HostResult {
  host: string;
  outcome: HostOutcome;
  /** What went wrong (or what was found), for programs to branch on. */
  code?:
    | 'unreachable'
    | 'fetch-failed'
    | 'not-fetched'
    | 'depool-failed'
    | 'switch-failed'
    | 'restart-failed'
    | 'check-failed'
    | 'repool-failed'
    | 'left-depooled'
    | 'check-failed-moving-back'
    | 'never-switched'
    | 'not-on-release';
  /** At most about 300 characters. */
  detail?: string;
  previous?: string | null;
  /** The worker's log file with the full text: `<home>/logs/<runId>/<host>.log`. */
  log?: string;
}

export type RolloutPhase = 'planning' | 'fetching' | 'canary' | 'analysis' | 'batches' | 'paused' | 'rolling-back' | 'done' | 'rolled-back' | 'aborted';

export interface RolloutStatus {
  service: string;
  release: string;
  phase: RolloutPhase;
  paused: boolean;
  pauseReason?: string;
  total: number;
  done: number;
  failed: number;
  maxFail: number;
  waves: { name: string; hosts: number; done: number; failed: number }[];
  failures: HostResult[];
}

export interface ControlRequest {
  by: string;
  reason?: string;
}

export const pauseRollout = defineUpdate<RolloutStatus, [ControlRequest]>('pause');
export const resumeRollout = defineUpdate<RolloutStatus, [ControlRequest]>('resume');
export const abortRollout = defineUpdate<RolloutStatus, [ControlRequest]>('abort');
export const rollbackRollout = defineUpdate<RolloutStatus, [ControlRequest]>('rollback');
export const rolloutStatusQuery = defineQuery<RolloutStatus>('rolloutStatus');

// ---- train -------------------------------------------------------------------------------------------------

export type TrainState =
  | 'staging'
  | 'awaiting-approval'
  | 'awaiting-window'
  | 'deploying'
  | 'verifying'
  | 'watching'
  | 'rolling-back'
  | 'blocked'
  | 'paused'
  | 'complete'
  | 'rolled-back'
  | 'aborted';

/** Train states in which the train changes nothing and waits for a person: another train may then start. */
export const TRAIN_AT_REST: TrainState[] = ['blocked', 'complete', 'aborted', 'rolled-back'];

export interface TrainEvent {
  at: string;
  what: string;
  by?: string;
}

export interface TrainStatus {
  version: string;
  fromVersion: string;
  state: TrainState;
  /** Index into STATIONS of the last station that serves the new version; -1 before testwikis. */
  station: number;
  versions: Record<Station, string>;
  nextStation: Station | null;
  blocker?: string;
  /** Error signatures an operator has said are known; the error watch does not count them as new. */
  acknowledged: { signature: string; by: string; reason: string }[];
  /** When the train waits for a deploy window, when it opens. */
  windowOpensAt?: string;
  events: TrainEvent[];
}

export interface ApproveRequest {
  by: string;
  comment?: string;
  /** When given, the approval only counts for this station, so a stale approval cannot move the train twice. */
  station?: Station;
}

export interface TrainRollbackRequest {
  by: string;
  reason: string;
  /** The last station that keeps the new version; 'start' moves every group back. */
  toStation?: Station | 'start';
}

export interface AcknowledgeRequest {
  by: string;
  signature: string;
  reason: string;
}

export const approveStation = defineUpdate<TrainStatus, [ApproveRequest]>('approve');
export const rollbackTrain = defineUpdate<TrainStatus, [TrainRollbackRequest]>('rollback');
export const abortTrain = defineUpdate<TrainStatus, [ControlRequest]>('abort');
export const pauseTrain = defineSignal<[ControlRequest]>('pause');
export const resumeTrain = defineSignal<[ControlRequest]>('resume');
export const acknowledgeError = defineUpdate<TrainStatus, [AcknowledgeRequest]>('acknowledge');
export const trainStatusQuery = defineQuery<TrainStatus>('trainStatus');

// ---- one change at a time per service -----------------------------------------------------------------------

/** Who holds a service's lease: the workflow changing it, and the person behind that workflow. */
export interface LeaseHolder {
  workflowId: string;
  by: string;
  since: string;
}

export interface LeaseRequest {
  holder: LeaseHolder;
  /** Take the lease over from this workflow id, which the caller has seen closed. */
  replacing?: string;
  /** The parent workflow: a train's move holds the lease, and the rollout it starts works under it. */
  parent?: string;
}

export const leaseWorkflowId = (service: string) => `lease-${service}`;
export const acquireLease = defineUpdate<LeaseHolder, [LeaseRequest]>('acquireLease');
export const releaseLease = defineUpdate<LeaseHolder | null, [{ workflowId: string }]>('releaseLease');
export const leaseHolderQuery = defineQuery<LeaseHolder | null>('leaseHolder');
