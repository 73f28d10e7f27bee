// What every phase of the train is handed: its input and identity, its state, its records and its readings.
import type { Activities } from './activities';
import type { TrainInput } from './input';
import type { Readings } from './readings';
import type { TrainRecords } from './records';
import type { TrainState } from './state';

export interface Train {
  input: TrainInput;
  /** The workflow id: child workflows, change ids and record ids are built from it. */
  id: string;
  /** False for trains started before the analysis run: they keep their fixed-threshold watch when replayed. */
  analysisRun: boolean;
  fromVersion: string;
  /** Which wikis are in which group, and their domains, as read at the start. */
  catalog: Awaited<ReturnType<Activities['readStations']>>['catalog'];
  state: TrainState;
  records: TrainRecords;
  readings: Readings;
}
