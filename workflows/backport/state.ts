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
  /** The question the last accepted confirmation answered. */
  private answered = 0;
  abortRequest: { by: string; reason: string } | null = null;
  acknowledgement: { by: string; reason: string } | null = null;

  constructor(changes: number[], by: string, emergency: boolean) {
    this.status = {
      changes,
      by,
      step: 'checking',
      syncs: [],
      current: 0,
      testServers: [],
      emergency,
      question: 0,
      events: [],
    };
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

  /** Asks the next question; an answer to an earlier one cannot answer it. */
  ask(what: string, deadline: string): number {
    this.status.question++;
    this.status.confirmBy = deadline;
    this.waitFor('awaiting-confirmation', what);
    return this.status.question;
  }

  confirmed(question: number): boolean {
    return this.answered === question;
  }

  validateConfirm(request: BackportConfirmRequest): void {
    if (!CONFIRMABLE.includes(this.status.step))
      throw new Error(`backport is ${this.status.step}; there is nothing to confirm`);
    if (request.question !== undefined && request.question !== this.status.question)
      throw new Error(
        `the confirmation answers question ${request.question}, but question ${this.status.question} is waiting: ${this.status.waitingFor}`,
      );
  }

  confirm(): void {
    this.answered = this.status.question;
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
