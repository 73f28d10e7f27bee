// The scap-style picture of a train (each station and the version it runs) and of a backport. Shared by the
// workflows' UI details and the CLI's status commands.
import type { BackportStatus, TrainStatus } from './definitions';
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

/** A backport as a few lines: where it stands, each sync with its changes and state, and what it waits for. */
export function renderBackport(status: BackportStatus): string {
  const lines = [
    `backport of ${status.changes.join(', ')}${status.emergency ? ' (emergency)' : ''} by ${status.by}: ${status.step}`,
  ];
  status.syncs.forEach((sync, i) => {
    const release = sync.release ? ` as ${sync.release}` : '';
    lines.push(`  sync ${i + 1} ${sync.project} ${sync.branch}: ${sync.state}${release}`);
    for (const c of sync.changes)
      lines.push(
        `    ${c.number} ${c.subject} (${c.owner}${c.tasks.length ? `, ${c.tasks.join(' ')}` : ''})${c.alreadyMerged ? ' [merged already]' : ''}`,
      );
  });
  if (status.waitingFor) lines.push(`  waiting: ${status.waitingFor}`);
  if (status.outcome) lines.push(`  ${status.outcome}`);
  return lines.join('\n');
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
