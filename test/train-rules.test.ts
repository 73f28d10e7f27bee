// The train's pure rules: deploy windows, new error signatures, the roadmap row, the status update, versions.
import { describe, expect, it } from 'vitest';
import { insideWindow, untilWindowOpens, checkWindows, DEFAULT_WINDOWS } from '../workflows/windows';
import { newSignatures, signatureDelta } from '../workflows/analysis';
import { renderStatusUpdate } from '../workflows/render';
import { compareVersions } from '../workflows/names';
import { setRoadmapRow } from '../activities/wiki';
import { salLine } from '../activities/notify';
import type { TrainStatus } from '../workflows/definitions';

describe('deploy windows', () => {
  const group1 = { day: 'Wed' as const, from: '11:00', to: '13:00' };
  it('knows when a window is open, in its timezone', () => {
    // 2026-11-25 is a Wednesday; 19:30 UTC is 11:30 in Los Angeles (PST, UTC-8).
    expect(insideWindow(new Date('2026-11-25T19:30:00Z'), group1, 'America/Los_Angeles')).toBe(true);
    expect(insideWindow(new Date('2026-11-25T11:30:00Z'), group1, 'America/Los_Angeles')).toBe(false);
    expect(insideWindow(new Date('2026-11-25T11:30:00Z'), group1, 'UTC')).toBe(true);
  });
  it('says how long until the next opening, across a daylight-saving change', () => {
    expect(untilWindowOpens(new Date('2026-11-25T19:30:00Z'), group1, 'America/Los_Angeles')).toBe(0);
    // From Tuesday 2026-11-24 19:00 UTC (11:00 PST) to Wednesday 11:00 PST: exactly one day.
    expect(untilWindowOpens(new Date('2026-11-24T19:00:00Z'), group1, 'America/Los_Angeles')).toBe(24 * 3600_000);
    // Saturday 2027-03-13 12:00 PST to Wednesday 2027-03-17 11:00 PDT: 95 h of wall clock, but clocks went forward on the 14th, so 94 h.
    expect(untilWindowOpens(new Date('2027-03-13T20:00:00Z'), group1, 'America/Los_Angeles')).toBe(94 * 3600_000);
  });
  it('refuses an unknown timezone and an empty window', () => {
    expect(() => checkWindows({ timezone: 'Mars/Olympus', stations: DEFAULT_WINDOWS })).toThrow(
      /unknown timezone "Mars\/Olympus"/,
    );
    expect(() =>
      checkWindows({
        timezone: 'UTC',
        stations: { ...DEFAULT_WINDOWS, group2: { day: 'Thu', from: '13:00', to: '12:00' } },
      }),
    ).toThrow(/window of group2/);
  });
});

describe('error signatures', () => {
  it('counts a signature as new only when unseen before the move, frequent enough and not acknowledged', () => {
    const during = signatureDelta({ 'Fatal: A': 12, 'Notice: B': 40, 'Fatal: C': 2 }, { 'Notice: B': 30 });
    expect(during).toEqual({ 'Fatal: A': 12, 'Notice: B': 10, 'Fatal: C': 2 });
    expect(newSignatures(during, { 'Notice: B': 7 }, [], 5)).toEqual([{ signature: 'Fatal: A', count: 12 }]);
    expect(newSignatures(during, { 'Notice: B': 7 }, ['Fatal: A'], 5)).toEqual([]);
    expect(newSignatures(during, {}, [], 1).map((s) => s.signature)).toEqual(['Fatal: A', 'Notice: B', 'Fatal: C']);
  });
});

describe('records', () => {
  it('sets the roadmap row of a version, or adds it before the footer', () => {
    const page = '{{WMFReleaseTableHead}}\n{{WMFReleaseTableRow|25|2026-11-17|2}}\n{{WMFReleaseTableFooter}}\n';
    const added = setRoadmapRow(page, '1.41.0-wmf.26', '', '2026-11-24');
    expect(added).toBe(
      '{{WMFReleaseTableHead}}\n{{WMFReleaseTableRow|25|2026-11-17|2}}\n{{WMFReleaseTableRow|26|2026-11-24|}}\n{{WMFReleaseTableFooter}}\n',
    );
    const moved = setRoadmapRow(added, '1.41.0-wmf.26', '1', '2026-11-30');
    expect(moved).toContain('{{WMFReleaseTableRow|26|2026-11-24|1}}');
    expect(moved).toContain('{{WMFReleaseTableRow|25|2026-11-17|2}}');
    expect(setRoadmapRow(moved, '1.41.0-wmf.26', '1', '2026-11-30')).toBe(moved);
  });

  it('writes the status update with the version, where it runs and each blocker', () => {
    const status = {
      version: '1.41.0-wmf.26',
      versions: {
        testwikis: '1.41.0-wmf.26',
        group0: '1.41.0-wmf.26',
        group1: '1.41.0-wmf.25',
        group2: '1.41.0-wmf.25',
      },
    } as TrainStatus;
    const update = renderStatusUpdate(status, [{ title: '#12 Fatal in SkinTemplate', url: 'https://example.org/12' }], {
      train: 'http://ui/train',
    });
    expect(update.subject).toBe('[Train] 1.41.0-wmf.26 status update');
    expect(update.body).toContain('runs on testwikis, group0');
    expect(update.body).toContain('* #12 Fatal in SkinTemplate - https://example.org/12');
    expect(update.body).toContain('[0] http://ui/train');
  });

  it('writes a SAL line with who, what and the commit range', () => {
    expect(
      salLine({
        id: 'train-x#3',
        at: '2026-11-24T19:02:03.000Z',
        by: 'alice',
        what: '1.41.0-wmf.26: move group1',
        range: 'abc..def',
      }),
    ).toBe('2026-11-24 19:02:03 alice: 1.41.0-wmf.26: move group1 (abc..def) [train-x#3]');
  });

  it('orders versions by number', () => {
    expect(['1.41.0-wmf.26', '1.42.0-wmf.1', '1.41.0-wmf.9'].sort(compareVersions)).toEqual([
      '1.41.0-wmf.9',
      '1.41.0-wmf.26',
      '1.42.0-wmf.1',
    ]);
  });
});
