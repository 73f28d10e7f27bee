// The train's readings of every group's counters: a group's window before its move starts at the first reading
// taken since its version last changed, so it holds only traffic of the version it runs now.
import type { GroupCounts } from '../analysis';
import { STATIONS, type Station } from '../names';
import { causeOf, measurements, type Activities } from './activities';

export const NO_TRAFFIC: GroupCounts = { requests: 0, errors: 0, signatures: {} };

/** Every group's counters at one moment: an analysis reading, or (trains started before it) plain sums. */
export interface Snapshot {
  /** Workflow time of the reading. */
  at: number;
  reading?: Awaited<ReturnType<Activities['measureGroups']>>;
  legacy?: Record<string, GroupCounts>;
}

export class Readings {
  /**
   * Every reading of all groups this train took, and per group the first one taken since its version last
   * changed: a group's window before its move starts there, so it holds only traffic of the version it runs now.
   */
  private readonly snapshots: Snapshot[] = [];
  private readonly unchangedSince: Partial<Record<Station, number>> = {};
  /** Counters when the last move's watch ended: the start of the next move's before-window. */
  sinceLastMove: Snapshot | null = null;

  constructor(private readonly analysisRun: boolean) {}

  /**
   * Landing: these groups' windows start again, at the next reading. That reading is taken at the top of the loop,
   * before the gate, so a group moved again after a rollback or a failed move is compared with the time between.
   */
  versionsChange(groups: readonly Station[]): void {
    if (!this.analysisRun) return;
    groups.forEach((g) => delete this.unchangedSince[g]);
    this.sinceLastMove = null;
  }

  /** Error counters per group; without them there is no watch, so a failure blocks the train before it moves. */
  async measure(when: string): Promise<Snapshot> {
    try {
      if (!this.analysisRun) return { at: Date.now(), legacy: await measurements.groupCounters() };
      const reading = await measurements.measureGroups({ groups: [...STATIONS] });
      // Stamped when the answer is in, like every sample of a run (see analysis-run.ts).
      const snapshot = { at: Date.now(), reading };
      this.snapshots.push(snapshot);
      for (const group of STATIONS) this.unchangedSince[group] ??= this.snapshots.length - 1;
      return snapshot;
    } catch (err) {
      throw new Error(`metrics could not be read at ${when}: ${causeOf(err)}`);
    }
  }

  /** The last reading taken, if any. */
  latest(): Snapshot | undefined {
    return this.snapshots[this.snapshots.length - 1];
  }

  /** Where the group's window before its move starts: as far back as it has run its present version. */
  windowBefore(group: Station, fallback: Snapshot): Snapshot {
    return this.snapshots[this.unchangedSince[group] ?? -1] ?? fallback;
  }
}
