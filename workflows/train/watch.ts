// The watch after a move: the moved group's errors, traffic and latency judged against its own window before the
// move. A failure rolls the group back at once; a watch that cannot decide holds the train for a person.
import { condition } from '@temporalio/workflow';
import { delta, judge, newSignatures, signatureDelta, type Counts, type Signatures } from '../analysis';
import { referenceBetween, type AnalysisView } from '../analysis/index';
import { runAnalysis } from '../analysis-run';
import type { Station } from '../names';
import { causeOf, measurements } from './activities';
import type { Train } from './context';
import { DEFAULT_WATCH, watchCadence, watchSpec } from './input';
import { rollBackTo, type Window } from './move';
import { NO_TRAFFIC, type Snapshot } from './readings';

/** Failed metric reads in a row that the watch rides out (Argo's consecutiveErrorLimit default) before asking a person. */
const WATCH_UNREADABLE_LIMIT = 4;

export type Verdict = Pick<AnalysisView, 'phase' | 'summary'>;

/** The watch phase: the verdict (null when an operator stepped in), and a reading that starts the next window. */
export async function watch(train: Train, moved: Station, window: Window): Promise<Verdict | null> {
  const { state, readings, analysisRun } = train;
  state.status.state = 'watching';
  state.report();
  const verdict = await watchGroup(train, moved, window.from, window.to);
  // A failed read here is not worth a block: the next station's window then starts at its next reading.
  readings.sinceLastMove = analysisRun
    ? await readings.measure(`${moved} after its watch`).catch(() => null)
    : await readings.measure(`${moved} after its watch`);
  // An approval given during the watch was for what it would find; a verdict other than pass asks again.
  if (analysisRun && verdict && verdict.phase !== 'pass') state.approved = false;
  return verdict;
}

/** "Always roll back an unexplained error within an hour of a train deployment" (seed 000), without waiting. */
export async function rollBackFailedWatch(train: Train, moved: Station, summary: string): Promise<void> {
  const { state, records } = train;
  state.note(`error watch: ${summary}`);
  if (await rollBackTo(train, state.status.station - 1, 'signalbox error watch', `errors rose on ${moved}`)) {
    state.holdForHuman = true;
    records.block([{ title: `${moved} was rolled back by the error watch: ${summary}` }]);
  }
}

/** The watch cannot vouch for the release (no metrics, too little traffic): a person decides, nothing moves. */
export function holdUndecided({ state, records }: Train, moved: Station, summary: string): void {
  state.note(`error watch: ${summary}`);
  state.holdForHuman = true;
  records.block([
    { title: `the error watch of ${moved} could not decide: ${summary}; approve to go on, or roll back` },
  ]);
}

/**
 * An analysis run judges the moved group's errors, traffic and latency against its own window before the move,
 * sample by sample, with the sequential judge. Null when an operator stepped in.
 */
async function watchGroup(train: Train, moved: Station, from: Snapshot, to: Snapshot): Promise<Verdict | null> {
  const { input, state } = train;
  if (!train.analysisRun) {
    const before = [to.legacy?.[moved] ?? NO_TRAFFIC, from.legacy?.[moved] ?? NO_TRAFFIC];
    const breach = await legacyWatchErrors(
      train,
      moved,
      delta(before[0], before[1]),
      signatureDelta(before[0].signatures, before[1].signatures),
    );
    return breach ? { phase: 'fail', summary: breach } : { phase: 'pass', summary: '' };
  }
  if (input.watchMs === 0) return { phase: 'pass', summary: 'no watch configured' };
  const { windowSamples, everyMs } = watchCadence(input);
  return runAnalysis({
    subject: `${moved} after its move`,
    read: () => measurements.measureGroups({ groups: [moved], version: input.version }),
    everyMs,
    spec: watchSpec(input.watch),
    context: () => ({
      windowSamples,
      reference: {
        [moved]: referenceBetween(
          { at: from.at, metrics: from.reading?.metrics },
          { at: to.at, metrics: to.reading?.metrics },
          moved,
        ),
      },
      acknowledged: state.status.acknowledged.map((a) => a.signature),
      baselineName: 'before the move',
    }),
    interrupted: () => state.abortRequested || state.pendingRollback !== null,
    progress: (view) => {
      state.status.watch = view;
      state.report();
    },
  });
}

/** The watch as trains that started before the analysis run had it: fixed thresholds per interval. */
async function legacyWatchErrors(
  { input, state, readings }: Train,
  moved: Station,
  before: Counts,
  signaturesBefore: Signatures,
): Promise<string | null> {
  const thresholds = { ...DEFAULT_WATCH, ...input.watch };
  let previous = (await readings.measure('the start of the watch')).legacy!;
  let unreadable = 0;
  for (let remaining = input.watchMs; remaining > 0;) {
    const step = Math.min(thresholds.everyMs, remaining);
    remaining -= step;
    if (
      await condition(() => state.abortRequested || state.pendingRollback !== null, step, {
        summary: `watch ${moved} on ${input.version}`,
      })
    )
      return null;
    // A failed read is not a measurement: the next one spans both intervals. Too many in a row, and a person decides.
    const now = await measurements.groupCounters().catch((err: unknown) => {
      if (++unreadable > WATCH_UNREADABLE_LIMIT)
        throw new Error(
          `the error watch of ${moved} could not read metrics ${unreadable} times in a row: ${causeOf(err)}`,
        );
      return null;
    });
    if (!now) continue;
    unreadable = 0;
    const [current, last] = [now[moved] ?? NO_TRAFFIC, previous[moved] ?? NO_TRAFFIC];
    const measured = judge(thresholds, delta(current, last), before, { subject: moved, baseline: 'before the move' });
    const unknown = newSignatures(
      signatureDelta(current.signatures, last.signatures),
      signaturesBefore,
      state.status.acknowledged.map((a) => a.signature),
      thresholds.newErrorMin,
    );
    previous = now;
    if (measured.verdict === 'fail') return measured.why;
    if (unknown.length)
      return `new error on ${moved}, seen ${unknown[0].count} times in ${Math.round(step / 1000)} s and never before the move: ${unknown[0].signature}`;
  }
  return null;
}
