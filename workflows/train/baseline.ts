// Before a station moves, its window before the move must be long enough for the watch after it to vouch for the
// release: the watch holds the group against that window, and against a few seconds of it no watch can pass. The
// train measures the group for as long as that takes, up to four times the watch, and says what it waits for.
// When even that would not be enough (a group with too little traffic), it moves at once: its watch will hold for
// a person and say what it lacked.
import { condition, patched } from '@temporalio/workflow';
import { duration, referenceBetween, referenceTimeNeeded, thousands, withDefaults } from '../analysis/index';
import type { Station } from '../names';
import type { Train } from './context';
import { watchCadence, watchSpec } from './input';

/** Trains that started before it move without measuring first, and replay that way. */
export const BASELINE_WAIT_PATCH = 'train-baseline-wait';

/** Measures the group before its move until its watch could reach the power asked. False when interrupted. */
export async function measureBeforeMove(train: Train, moved: Station): Promise<boolean> {
  const { input, state, readings } = train;
  const spec = withDefaults(watchSpec(input.watch));
  if (!train.analysisRun || input.watchMs <= 0 || spec.judge !== 'sequential' || !(spec.power > 0)) return true;
  // Only a train that moves by itself waits here. One held for a person (blocked, rolled back, or an approval gate)
  // keeps its state and measures while it waits for them: an approval is theirs to give, and moves at once.
  const movesByItself = (input.autoApprove || input.gate === 'window') && !state.holdForHuman;
  if (!movesByItself || !patched(BASELINE_WAIT_PATCH)) return true;
  const cadence = watchCadence(input);
  // A doomed watch costs a whole watch and a person. Held against a window no longer than itself, a watch has
  // little power (the window's uncertainty counts against it), so the train measures up to four watches first.
  const until = Date.now() + 4 * input.watchMs;
  try {
    // The gate's reading (or the last watch's end) first: most moves already have the window they need.
    let now = readings.latest();
    for (;;) {
      // A read that fails ends the wait: the reading before the move then blocks the train and says why.
      if (!now) return true;
      const from = readings.windowBefore(moved, readings.sinceLastMove ?? now);
      const reference = referenceBetween(
        { at: from.at, metrics: from.reading?.metrics },
        { at: now.at, metrics: now.reading?.metrics },
        moved,
      );
      const left = until - Date.now();
      // A window shorter than one of the watch's intervals is measured for that long before it is judged.
      const needed =
        reference.durationMs >= cadence.everyMs
          ? referenceTimeNeeded(reference, spec, cadence, spec.power, left, cadence.everyMs)
          : left >= cadence.everyMs
            ? cadence.everyMs - reference.durationMs
            : undefined;
      if (!needed) return true;
      state.status.state = 'measuring-baseline';
      state.status.baseline = `measuring ${moved} before its move so its watch can vouch for the release: ${thousands(reference.requests)} requests in ${duration(reference.durationMs)} so far, about ${duration(needed)} more needed`;
      state.report();
      const interrupted = await condition(
        () => state.paused || state.abortRequested || state.pendingRollback !== null,
        Math.min(needed, cadence.everyMs),
      );
      if (interrupted) return false;
      now = await readings.measure(`${moved} before its move`).catch(() => undefined);
    }
  } finally {
    state.status.baseline = undefined;
    state.report();
  }
}
