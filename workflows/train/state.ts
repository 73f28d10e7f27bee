// The train's status and the flags that steer it, with their rules: what each update may ask for, and when.
// The phases read and set these; the steering handlers only set flags the main loop waits on.
import { setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import {
  searchAttributes,
  type AcknowledgeRequest,
  type ApproveRequest,
  type TrainRollbackRequest,
  type TrainStatus,
} from '../definitions';
import { STATIONS, checkStation, type Station } from '../names';
import { renderTrain } from '../render';
import type { TrainInput } from './input';

/** A rollback that did not reach every host: `train resume` deploys it again; nothing moves forward before it. */
export interface UnfinishedRollback {
  target: number;
  by: string;
  why: string;
  changeId: string;
}

export class TrainState {
  readonly status: TrainStatus;
  approved = false;
  paused = false;
  abortRequested = false;
  holdForHuman = false;
  pendingRollback: TrainRollbackRequest | null = null;
  rollbacksDone = 0;
  moves = 0;
  resumes = 0;
  lastApprover: string | undefined;
  unfinishedRollback: UnfinishedRollback | null = null;
  /** The commit range of the last wikiversions change landed, for its SAL line. */
  lastRange: string | undefined;

  constructor(
    private readonly input: TrainInput,
    readonly fromVersion: string,
    reached: number,
    private readonly analysisRun: boolean,
  ) {
    this.status = {
      version: input.version,
      fromVersion,
      state: 'staging',
      station: reached,
      versions: this.versionsAt(reached),
      nextStation: STATIONS[reached + 1] ?? null,
      acknowledged: [],
      events: [],
    };
  }

  versionsAt(station: number): Record<Station, string> {
    return Object.fromEntries(
      STATIONS.map((s, i) => [s, i <= station ? this.input.version : this.fromVersion]),
    ) as Record<Station, string>;
  }

  note(what: string, by?: string): void {
    const { events } = this.status;
    events.push({ at: new Date().toISOString(), what, by });
    if (events.length > 200) events.splice(0, events.length - 200);
  }

  report(): void {
    const status = this.status;
    status.versions = this.versionsAt(status.station);
    status.nextStation = STATIONS[status.station + 1] ?? null;
    upsertSearchAttributes([{ key: searchAttributes.station, value: STATIONS[status.station] ?? 'start' }]);
    setCurrentDetails(
      [
        '```',
        renderTrain(status),
        '```',
        ...status.events.slice(-5).map((e) => `- ${e.at} ${e.what}${e.by ? ` (${e.by})` : ''}`),
      ].join('\n'),
    );
  }

  finished(): boolean {
    return ['complete', 'aborted'].includes(this.status.state);
  }

  refuseWhenFinished(): void {
    if (this.finished()) throw new Error(`the train is ${this.status.state}`);
  }

  validateAck(request: AcknowledgeRequest): void {
    if (!request?.by || !request.signature?.trim() || !request.reason?.trim())
      throw new Error('an acknowledgement needs who (by), the error signature and why it is known (reason)');
    this.refuseWhenFinished();
    if (this.status.acknowledged.some((a) => a.signature === request.signature))
      throw new Error(`"${request.signature}" is already acknowledged`);
  }

  validateApproval(request: ApproveRequest): void {
    const status = this.status;
    if (!request?.by) throw new Error('an approval must say who approves (by)');
    this.refuseWhenFinished();
    if (this.unfinishedRollback)
      throw new Error(
        `a rollback has not reached every host yet; \`signalbox train resume ${this.input.version}\` retries it before anything moves forward`,
      );
    if (status.nextStation === null && !(this.analysisRun && this.holdForHuman && status.state === 'blocked'))
      throw new Error('the train is already at group2; there is no station to approve');
    if (request.station !== undefined && request.station !== status.nextStation)
      throw new Error(`the next station is ${status.nextStation}, not ${request.station}`);
    if (this.approved) throw new Error(`${status.nextStation} is already approved`);
  }

  validateRollback(request: TrainRollbackRequest): void {
    if (!request?.by || !request.reason?.trim()) throw new Error('a rollback needs who (by) and why (reason)');
    this.refuseWhenFinished();
    const to = request.toStation ?? 'start';
    const index = to === 'start' ? -1 : STATIONS.indexOf(checkStation(to));
    if (index >= this.status.station)
      throw new Error(
        `the train is at ${STATIONS[this.status.station] ?? 'start'}; rolling back to ${to} would not move any group back`,
      );
    if (this.pendingRollback) throw new Error('a rollback is already under way');
  }

  validatePause(): void {
    this.refuseWhenFinished();
    if (this.paused) throw new Error('the train is already paused');
  }

  /** What the loop waits on at a gate: an approval, or an operator stepping in. */
  approvedOrInterrupted(): boolean {
    return this.approved || this.abortRequested || this.pendingRollback !== null;
  }
}
