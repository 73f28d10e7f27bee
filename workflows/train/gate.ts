// The gate before each station: its deploy window and open blockers, or an approver. An operator stepping in
// (abort, rollback) or a pause keeps the station where it is.
import { condition } from '@temporalio/workflow';
import type { Station } from '../names';
import { describeWindow, untilWindowOpens } from '../windows';
import { acts } from './activities';
import { measureBeforeMove } from './baseline';
import type { Train } from './context';
import type { Snapshot } from './readings';

/** Let through: who moves the station, and where its window before the move starts. */
export interface Through {
  by: string;
  windowStart: Snapshot | null;
}

/** Null when the station does not move now (interrupted, not approved, paused): the loop looks again. */
export async function gate(train: Train, moved: Station): Promise<Through | null> {
  const { input, state, readings, analysisRun } = train;
  let movedBy = input.by;
  // The analysis run does without it (the group's window then starts at an earlier or a later reading).
  readings.sinceLastMove ??= analysisRun
    ? await readings.measure('the end of stage').catch(() => null)
    : await readings.measure('the end of stage');
  const windowStart = readings.sinceLastMove;
  if (!(await measureBeforeMove(train, moved))) return null;
  if (input.gate === 'window' && !state.holdForHuman) {
    const how = await windowGate(train, moved);
    if (how === 'interrupted') return null;
    if (how === 'window') movedBy = `signalbox (${moved} deploy window)`;
  } else if (!input.autoApprove || state.holdForHuman) {
    if (state.status.state !== 'blocked' && state.status.state !== 'rolled-back')
      state.status.state = 'awaiting-approval';
    state.report();
    await condition(() => state.approvedOrInterrupted());
    if (!state.approved) return null;
  }
  // Paused while the gate was open: nothing moves until resumed (the approval, if any, is kept).
  if (state.paused) return null;
  if (state.approved) movedBy = state.lastApprover ?? movedBy;
  state.approved = false;
  state.holdForHuman = false;
  state.status.blocker = undefined;
  return { by: movedBy, windowStart };
}

/**
 * The deploy-window gate: sleeps until the next station's window opens, then moves when no blocker is open,
 * checking the blockers every poll. An approval moves it at any time. Returns how it was let through.
 */
async function windowGate(
  { input, state, records }: Train,
  station: Station,
): Promise<'window' | 'approved' | 'interrupted'> {
  const status = state.status;
  const windows = input.windows!;
  for (;;) {
    const wait = untilWindowOpens(new Date(), windows.stations[station], windows.timezone);
    if (wait > 0) {
      status.state = 'awaiting-window';
      status.windowOpensAt = new Date(Date.now() + wait).toISOString();
      state.report();
      state.note(`waiting for the ${station} window, ${describeWindow(windows.stations[station], windows.timezone)}`);
      if (await condition(() => state.approvedOrInterrupted(), wait, { summary: `${station} window opens` })) break;
      continue;
    }
    status.windowOpensAt = undefined;
    if (input.blockersPollMs === undefined) return 'window';
    const blockers = await acts.openBlockers({ version: input.version });
    if (!blockers.open.length) {
      if (status.state === 'blocked') records.record('blockers resolved', 'signalbox');
      records.announcedBlockers = '';
      return 'window';
    }
    records.block(blockers.open);
    if (await condition(() => state.approvedOrInterrupted(), input.blockersPollMs, { summary: 'open blockers' })) break;
  }
  return state.approved ? 'approved' : 'interrupted';
}
