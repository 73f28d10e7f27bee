// The backport's status and the flags people set through updates, with the rules for when each may be asked.
import { setCurrentDetails } from '@temporalio/workflow';
import type { BackportConfirmRequest, BackportStatus, BackportStep, ControlRequest } from '../definitions';
import { renderBackport } from '../render';

/** Steps at which a confirmation is what the backport waits for. */
const CONFIRMABLE: BackportStep[] = ['awaiting-confirmation'];
/** Steps before production: an abort reverts and syncs the test servers back, and production is never touched. */
const ABORTABLE: BackportStep[] = [
  'checking',
  'waiting-for-lease',
  'merging',
  'staging',
  'testing',
  'awaiting-confirmation',
];

export class BackportState {
  readonly status: BackportStatus;
  /** Confirmations accepted, by sync index. */
  private confirmations = new Set<number>();
  abortRequest: { by: string; reason: string } | null = null;
  acknowledgement: { by: string; reason: string } | null = null;

  constructor(changes: number[], by: string, emergency: boolean) {
    this.status = { changes, by, step: 'checking', syncs: [], current: 0, testServers: [], emergency, events: [] };
  }

  note(what: string, by?: string): void {
    const { events } = this.status;
    events.push({ at: new Date().toISOString(), what, by });
    if (events.length > 200) events.splice(0, events.length - 200);
  }

  report(): void {
    setCurrentDetails(
      [
        '```',
        renderBackport(this.status),
        '```',
        ...this.status.events.slice(-5).map((e) => `- ${e.at} ${e.what}${e.by ? ` (${e.by})` : ''}`),
      ].join('\n'),
    );
  }

  /** Waits for a person: says what for, and how to answer. */
  waitFor(step: BackportStep, what: string): void {
    this.status.step = step;
    this.status.waitingFor = what;
    this.report();
  }

  moveTo(step: BackportStep): void {
    this.status.step = step;
    this.status.waitingFor = undefined;
    this.status.confirmBy = undefined;
    this.report();
  }

  confirmed(sync: number): boolean {
    return this.confirmations.has(sync);
  }

  /** Takes back a confirmation once used, so the next question of the same sync needs a fresh one. */
  spendConfirmation(sync: number): void {
    this.confirmations.delete(sync);
  }

  validateConfirm(request: BackportConfirmRequest): void {
    if (!CONFIRMABLE.includes(this.status.step))
      throw new Error(`backport is ${this.status.step}; there is nothing to confirm`);
    if (request.sync !== undefined && request.sync !== this.status.current + 1)
      throw new Error(`the confirmation is for sync ${request.sync}, but sync ${this.status.current + 1} is waiting`);
  }

  confirm(): void {
    this.confirmations.add(this.status.current);
  }

  validateAbort(request: ControlRequest): void {
    if (!request.reason?.trim()) throw new Error('an abort says why (--reason)');
    if (this.abortRequest) throw new Error('an abort is already under way');
    if (!ABORTABLE.includes(this.status.step))
      throw new Error(
        this.status.step === 'deploying'
          ? 'production is being deployed: its canaries judge it, and a failure rolls back and reverts by itself'
          : `backport is ${this.status.step}; there is nothing to abort`,
      );
  }

  validateAck(request: ControlRequest): void {
    if (this.status.step !== 'awaiting-ack')
      throw new Error(`backport is ${this.status.step}; there is nothing to acknowledge`);
    if (!request.reason?.trim())
      throw new Error('an acknowledgement says what comes next (--reason), such as "fix in 123457"');
  }
}
