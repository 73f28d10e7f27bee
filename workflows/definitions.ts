// Messages, queries and search attributes, defined once and shared by workflows, the worker and the CLI.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Station } from './names';
import type { AnalysisView } from './analysis/index';

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

// ---- who may do what ---------------------------------------------------------------------------------------

/** Every steering action; each is signed by the person who asks for it (unless auth is `none`). */
export const ACTIONS = [
  'approve',
  'rollback',
  'pause',
  'resume',
  'abort',
  'ack',
  'deploy',
  'schedule',
  'backport',
  'emergency',
  'confirm',
] as const;
export type Action = (typeof ACTIONS)[number];
export type Role = 'deployers' | 'approvers' | 'admins';

/**
 * Anyone on the team may stop the line; moving it forward takes an approver; ending it takes an admin. A deployer
 * confirms what the test servers show; starting a backport takes an approver (or a deployer, with
 * backport.deployersMay), and starting one outside the backport windows (emergency) always an approver.
 */
export const ROLE_GRANTS: Record<Role, Action[]> = {
  deployers: ['pause', 'rollback', 'ack', 'confirm'],
  approvers: ['approve', 'resume', 'deploy', 'backport', 'emergency', 'confirm'],
  admins: ['abort', 'schedule'],
};

/** The signed words: what, on which workflow, for which station or release, by whom, once, and when. */
export interface ActionStatement {
  action: Action;
  workflowId: string;
  target?: string;
  principal: string;
  nonce: string;
  at: string;
}

/** A statement as signed text and its SSHSIG signature (`ssh-keygen -Y sign -n signalbox-action`). */
export interface SignedAction {
  statement: string;
  signature: string;
}

/** Who asked, as verified by the worker: the principal and the key's fingerprint (none in open mode). */
export interface Identity {
  principal: string;
  fingerprint: string | null;
}

export const SIGNATURE_NAMESPACE = 'signalbox-action';

/** A change to the weekly Schedule, made by a workflow once the admin's signature checks out. */
export type ScheduleChange =
  | {
      change: 'create';
      scheduleId: string;
      dayOfWeek: string;
      hour: number;
      minute: number;
      timezone: string;
      trainInput: unknown;
      taskQueue: string;
    }
  | { change: 'delete'; scheduleId: string };

/** How the records name a person: the key fingerprint when verified, "unverified" in open mode. */
export function describeIdentity(identity: Identity): string {
  return identity.fingerprint
    ? `${identity.principal} [${identity.fingerprint}]`
    : `${identity.principal} (unverified: auth none)`;
}

/** The statement inside a signed action, or an error saying what is wrong with it. Pure: validators use it. */
export function readStatement(signed: SignedAction | undefined): ActionStatement {
  if (!signed?.statement || !signed.signature)
    throw new Error(
      'unsigned: this signalbox requires every action to be signed with your SSH key (see README, "Who may do what")',
    );
  let statement: ActionStatement;
  try {
    statement = JSON.parse(signed.statement);
  } catch {
    throw new Error('the signed statement is not JSON');
  }
  if (
    !ACTIONS.includes(statement.action) ||
    !statement.workflowId ||
    !statement.principal ||
    !statement.nonce ||
    !statement.at
  ) {
    throw new Error('the signed statement lacks its action, workflow, principal, nonce or time');
  }
  return statement;
}

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
    | 'not-on-release'
    | 'busy'
    | 'fenced';
  /** At most about 300 characters. */
  detail?: string;
  previous?: string | null;
  /** The worker's log file with the full text: `<home>/logs/<runId>/<host>.log`. */
  log?: string;
}

export type RolloutPhase =
  | 'planning'
  | 'fetching'
  | 'canary'
  | 'analysis'
  | 'batches'
  | 'paused'
  | 'rolling-back'
  | 'done'
  | 'rolled-back'
  | 'aborted';

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
  /** The canary analysis: where it stands or what it decided, with its evidence. */
  analysis?: AnalysisView;
}

export interface ControlRequest {
  by: string;
  reason?: string;
  /** The person's signed statement; required unless auth is `none`. */
  signed?: SignedAction;
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
  | 'measuring-baseline'
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
  /** The error watch of the last station moved: where it stands or what it decided, with its evidence. */
  watch?: AnalysisView;
  /** When the train measures a group before its move so its watch can vouch for it: what it waits for. */
  baseline?: string;
  /** When the train waits for a deploy window, when it opens. */
  windowOpensAt?: string;
  events: TrainEvent[];
}

export interface ApproveRequest {
  by: string;
  signed?: SignedAction;
  comment?: string;
  /** When given, the approval only counts for this station, so a stale approval cannot move the train twice. */
  station?: Station;
}

export interface TrainRollbackRequest {
  by: string;
  signed?: SignedAction;
  reason: string;
  /** The last station that keeps the new version; 'start' moves every group back. */
  toStation?: Station | 'start';
}

export interface AcknowledgeRequest {
  by: string;
  signed?: SignedAction;
  signature: string;
  reason: string;
}

export const approveStation = defineUpdate<TrainStatus, [ApproveRequest]>('approve');
export const rollbackTrain = defineUpdate<TrainStatus, [TrainRollbackRequest]>('rollback');
export const abortTrain = defineUpdate<TrainStatus, [ControlRequest]>('abort');
export const pauseTrain = defineUpdate<TrainStatus, [ControlRequest]>('pause');
export const resumeTrain = defineUpdate<TrainStatus, [ControlRequest]>('resume');
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

// ---- backport ----------------------------------------------------------------------------------------------

export type BackportStep =
  | 'checking'
  | 'waiting-for-lease'
  | 'merging'
  | 'staging'
  | 'testing'
  | 'awaiting-confirmation'
  | 'deploying'
  | 'reverting'
  | 'awaiting-ack'
  | 'done'
  | 'refused'
  | 'aborted'
  | 'rolled-back';

/** One sync of a backport: the changes of one repository and branch, merged, tested and deployed together. */
export interface BackportSync {
  project: string;
  branch: string;
  service: string;
  changes: { number: number; subject: string; owner: string; tasks: string[]; alreadyMerged: boolean }[];
  state: 'waiting' | 'merging' | 'merged' | 'on-test-servers' | 'deploying' | 'live' | 'reverted' | 'rolled-back';
  /** The branch head before this backport merged anything. */
  before?: string;
  /** The staged release: what the test servers ran is what production gets, byte for byte. */
  release?: string;
}

export interface BackportStatus {
  changes: number[];
  by: string;
  step: BackportStep;
  syncs: BackportSync[];
  /** Index into syncs of the one in progress. */
  current: number;
  /** What the backport waits for now, and how to answer it. */
  waitingFor?: string;
  /** When the test-server wait ends by itself (reverting), ISO time. */
  confirmBy?: string;
  /** The number of the question waiting (each question gets the next), so a confirmation answers only it. */
  question: number;
  testServers: { host: string; address: string; port?: number }[];
  /** Why it was refused, stopped or rolled back. */
  outcome?: string;
  emergency: boolean;
  events: TrainEvent[];
}

export interface BackportConfirmRequest extends ControlRequest {
  /** Which question the confirmation answers (status.question), so a stale one cannot answer the next. */
  question?: number;
}

export const confirmBackport = defineUpdate<BackportStatus, [BackportConfirmRequest]>('confirm');
export const abortBackport = defineUpdate<BackportStatus, [ControlRequest]>('abort');
export const ackBackport = defineUpdate<BackportStatus, [ControlRequest]>('ack');
export const backportStatusQuery = defineQuery<BackportStatus>('backportStatus');
export const backportWorkflowId = (change: number) => `backport-${change}`;
