// The scap-style picture of a train: each station and the version it runs. Shared by the workflow's UI details
// and the CLI's `train status`.
import type { TrainStatus } from './definitions';
import { STATIONS } from './names';
import { viewLine } from './analysis/index';

export function renderTrain(status: TrainStatus): string {
  const cells = ['START', ...STATIONS];
  const values = ['', ...STATIONS.map((s) => status.versions[s])];
  const width = Math.max(...cells.map((c) => c.length), ...values.map((v) => v.length)) + 2;
  const arrow = cells.map((_, i) => (i === status.station + 1 ? '^'.padEnd(width) : ''.padEnd(width))).join('');
  return [
    `train ${status.version} (from ${status.fromVersion}): ${status.state}${status.blocker ? ` — ${status.blocker}` : ''}${status.baseline ? ` — ${status.baseline}` : ''}`,
    cells.map((c) => c.padEnd(width)).join(''),
    values.map((v) => v.padEnd(width)).join(''),
    arrow.trimEnd(),
    ...(status.watch ? [`watch of ${viewLine(status.watch)}`] : []),
  ].join('\n');
}

export interface Blocker {
  title: string;
  url?: string;
}

/**
 * The status update sent when the train is blocked, in the shape release engineers use: subject
 * "[Train] <version> status update", where the version is deployed, each blocker with its link, what happens next.
 */
export function renderStatusUpdate(
  status: TrainStatus,
  blockers: Blocker[],
  links: { train: string; versions?: string },
): { subject: string; body: string } {
  const deployedTo = STATIONS.filter((s) => status.versions[s] === status.version);
  const lines = [
    `Train ${status.version} is blocked [0].`,
    deployedTo.length
      ? `It runs on ${deployedTo.join(', ')} [1] and will not move further until these are resolved:`
      : `It is not on any group yet [1] and will not move until these are resolved:`,
    '',
    ...blockers.map((b) => `* ${b.title}${b.url ? ` - ${b.url}` : ''}`),
    '',
    'When they are resolved the train continues with the next station in its deploy window; a fix that lands late in the week waits for the next working day.',
    '',
    'Thanks to everyone helping to unblock it.',
    '-- signalbox',
    '',
    `[0] ${links.train}`,
    `[1] ${links.versions ?? 'signalbox train status ' + status.version}`,
  ];
  return { subject: `[Train] ${status.version} status update`, body: lines.join('\n') };
}
