// Before anything moves: the input is checked, no other train may be in motion, and the stations are read, which
// says where this train starts (a restarted train finds the groups it already moved).
import { ApplicationFailure } from '@temporalio/workflow';
import { STATIONS } from '../names';
import { acts } from './activities';
import type { Train } from './context';
import { checkTrainInput, type TrainInput } from './input';
import { Readings } from './readings';
import { TrainRecords } from './records';
import { TrainState } from './state';

export async function setOut(input: TrainInput, trainId: string, analysisRun: boolean): Promise<Train> {
  try {
    checkTrainInput(input);
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'BadInput');
  }
  // One train in motion at a time: this one starts only when every other is complete, blocked or aborted.
  const others = await acts.trainsInMotion({ except: trainId });
  if (others.length)
    throw ApplicationFailure.nonRetryable(
      `another train is in motion: ${others.join(', ')}; start this one when it is complete, blocked or aborted`,
      'TrainInMotion',
    );
  const { versions: before, catalog } = await acts.readStations();
  const fromVersion = input.fromVersion ?? before.group2;
  if (fromVersion === input.version)
    throw ApplicationFailure.nonRetryable(
      `group2 already runs ${input.version}; pass --from to say which version to move from`,
      'BadInput',
    );
  let reached = -1;
  while (reached < STATIONS.length - 1 && before[STATIONS[reached + 1]] === input.version) reached++;

  const state = new TrainState(input, fromVersion, reached, analysisRun);
  const records = new TrainRecords(trainId, input, state);
  return { input, id: trainId, analysisRun, fromVersion, catalog, state, records, readings: new Readings(analysisRun) };
}
