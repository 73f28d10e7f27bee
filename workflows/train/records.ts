// Records go out in order, behind the train: a slow IRC server never delays a rollback, and nothing is dropped
// for a short outage. Each carries an id, so a retried activity writes each line and message once.
import { workflowInfo } from '@temporalio/workflow';
import { renderStatusUpdate, type Blocker } from '../render';
import { acts, causeOf, records } from './activities';
import type { TrainInput } from './input';
import type { TrainState } from './state';

/** Records sent one after another in the background; one that cannot be sent is noted, never thrown. */
export class InOrder {
  private inOrder: Promise<void> = Promise.resolve();

  constructor(private readonly noteFailure: (what: string) => void) {}

  inBackground(send: () => Promise<unknown>, what: string): void {
    this.inOrder = this.inOrder.then(() =>
      send().then(
        () => undefined,
        (err) => this.noteFailure(`${what}: ${causeOf(err)}`),
      ),
    );
  }

  /** Every record sent so far, done (or given up on). */
  sent(): Promise<void> {
    return this.inOrder;
  }
}

export class TrainRecords extends InOrder {
  private seq = 0;
  /** The blockers last announced: the status update goes out once per distinct set. */
  announcedBlockers = '';

  constructor(
    private readonly trainId: string,
    private readonly input: TrainInput,
    private readonly state: TrainState,
  ) {
    super((what) => state.note(what));
  }

  /** A SAL line for an action (who, what, commit range), also logged to IRC. */
  record(what: string, by: string, range?: string): void {
    this.state.note(what, by);
    const entry = {
      id: `${this.trainId}#${++this.seq}`,
      at: new Date().toISOString(),
      by,
      what: `${this.input.version}: ${what}`,
      range,
    };
    this.inBackground(() => records.logAction(entry), 'SAL entry not written');
  }

  announce(subject: string, body: string): void {
    const message = { id: `${this.trainId}-msg${++this.seq}`, subject, body };
    this.inBackground(() => records.sendNotification(message), 'notification not sent');
  }

  /** A failure's embargoed details (a security patch's name, git am's words) go to private destinations only. */
  sendPrivately(embargoed: string): void {
    const message = {
      id: `${this.trainId}-embargo${++this.seq}`,
      subject: `[Train] ${this.input.version} blocked by a security patch (embargoed)`,
      body: `${embargoed}\n-- signalbox\n\n${this.input.link ?? this.trainId}`,
    };
    this.inBackground(() => records.sendPrivately(message), 'embargoed details not sent privately');
  }

  /** Marks the train blocked and sends the status update, once per distinct set of blockers. */
  block(blockers: Blocker[]): void {
    const status = this.state.status;
    status.state = 'blocked';
    status.blocker = blockers.map((b) => b.title).join('; ');
    this.state.report();
    const key = JSON.stringify(blockers);
    if (key === this.announcedBlockers) return;
    this.announcedBlockers = key;
    this.record(`blocked: ${status.blocker}`, 'signalbox');
    const update = renderStatusUpdate(status, blockers, { train: this.input.link ?? this.trainId });
    this.announce(update.subject, update.body);
  }

  /** After a failure: the reason and what every host runs now, and the train waits for a person. */
  async blockAfterFailure(reason: string): Promise<void> {
    this.state.holdForHuman = true;
    const picture = await acts
      .fleetPicture({ services: [this.input.configService] })
      .catch((err: unknown) => `the fleet could not be read: ${causeOf(err)}`);
    this.block([{ title: `${reason}. Fleet now: ${picture}` }]);
  }

  /** The roadmap page shows the highest group on the new version (0, 1, 2), as release engineers set it by hand. */
  updateRoadmap(): void {
    const station = this.state.status.station;
    const deployedTo = station >= 1 ? String(station - 1) : '';
    const row = {
      version: this.input.version,
      deployedTo,
      date: workflowInfo().startTime.toISOString().slice(0, 10),
      by: this.input.by,
    };
    this.inBackground(() => records.updateRoadmap(row), 'roadmap not updated');
  }
}
