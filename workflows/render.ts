// The scap-style picture of a train: each station and the version it runs. Shared by the workflow's UI details
// and the CLI's `train status`.
import type { TrainStatus } from './definitions';
import { STATIONS } from './names';

export function renderTrain(status: TrainStatus): string {
  const cells = ['START', ...STATIONS];
  const values = ['', ...STATIONS.map((s) => status.versions[s])];
  const width = Math.max(...cells.map((c) => c.length), ...values.map((v) => v.length)) + 2;
  const arrow = cells.map((_, i) => (i === status.station + 1 ? '^'.padEnd(width) : ''.padEnd(width))).join('');
  return [
    `train ${status.version} (from ${status.fromVersion}): ${status.state}${status.blocker ? ` — ${status.blocker}` : ''}`,
    cells.map((c) => c.padEnd(width)).join(''),
    values.map((v) => v.padEnd(width)).join(''),
    arrow.trimEnd(),
  ].join('\n');
}
