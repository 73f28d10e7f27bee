// Deploy windows: testwikis and group0 on Tuesday, group1 on Wednesday, group2 on Thursday, in one timezone.
// Pure and clock-free (the caller passes workflow time), so the train can sleep until a window opens.
import type { Station } from './names';

export const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface DeployWindow {
  day: Weekday;
  /** "HH:MM" local time, inclusive */
  from: string;
  /** "HH:MM" local time, exclusive; "24:00" for the end of the day */
  to: string;
}

export interface DeployWindows {
  timezone: string;
  stations: Record<Station, DeployWindow>;
}

export const DEFAULT_WINDOWS: Record<Station, DeployWindow> = {
  testwikis: { day: 'Tue', from: '00:00', to: '24:00' },
  group0: { day: 'Tue', from: '00:00', to: '24:00' },
  group1: { day: 'Wed', from: '00:00', to: '24:00' },
  group2: { day: 'Thu', from: '00:00', to: '24:00' },
};

const minutesOf = (hhmm: string) => {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
};

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Weekday and minute of the day at `at` in `timezone`. */
export function localTime(at: Date, timezone: string): { day: Weekday; minute: number } {
  let format = formatters.get(timezone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(timezone, format);
  }
  const parts = format.formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { day: get('weekday') as Weekday, minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

export function insideWindow(at: Date, window: DeployWindow, timezone: string): boolean {
  const local = localTime(at, timezone);
  return local.day === window.day && local.minute >= minutesOf(window.from) && local.minute < minutesOf(window.to);
}

const MINUTE_MS = 60_000;

/**
 * Milliseconds from `at` until the window next opens (0 when open now). Walks forward a minute at a time, so
 * daylight-saving changes in the timezone are left to Intl rather than to arithmetic here.
 */
export function untilWindowOpens(at: Date, window: DeployWindow, timezone: string): number {
  if (insideWindow(at, window, timezone)) return 0;
  const start = Math.ceil(at.getTime() / MINUTE_MS) * MINUTE_MS;
  for (let t = start; t < start + 8 * 24 * 60 * MINUTE_MS; t += MINUTE_MS) {
    if (insideWindow(new Date(t), window, timezone)) return t - at.getTime();
  }
  return Number.POSITIVE_INFINITY;
}

/** Times of the week when something may start, such as the daily backport windows. */
export interface WeeklyWindows {
  timezone: string;
  times: { days: Weekday[]; from: string; to: string }[];
}

const eachDay = (windows: WeeklyWindows): [string, DeployWindow][] =>
  windows.times.flatMap((t, i) => t.days.map((day): [string, DeployWindow] => [`times[${i}] ${day}`, { ...t, day }]));

export function openAt(at: Date, windows: WeeklyWindows): boolean {
  return eachDay(windows).some(([, w]) => insideWindow(at, w, windows.timezone));
}

export function describeWeekly(windows: WeeklyWindows): string {
  return `${windows.times.map((t) => `${t.days.join(',')} ${t.from}-${t.to}`).join('; ')} ${windows.timezone}`;
}

export function checkWeekly(windows: WeeklyWindows): WeeklyWindows {
  checkWindows({ timezone: windows.timezone, stations: Object.fromEntries(eachDay(windows)) });
  return windows;
}

/** Throws unless the timezone is one Intl knows and every window is a real day and time range. */
export function checkWindows<W extends { timezone: string; stations: Record<string, DeployWindow> }>(windows: W): W {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: windows.timezone });
  } catch {
    throw new Error(
      `unknown timezone ${JSON.stringify(windows.timezone)}; use an IANA name such as America/Los_Angeles or UTC`,
    );
  }
  for (const [station, w] of Object.entries(windows.stations)) {
    if (!WEEKDAYS.includes(w.day)) throw new Error(`window of ${station}: day must be one of ${WEEKDAYS.join(', ')}`);
    if (
      !/^([01]\d|2[0-3]):[0-5]\d$/.test(w.from) ||
      !/^(([01]\d|2[0-3]):[0-5]\d|24:00)$/.test(w.to) ||
      minutesOf(w.from) >= minutesOf(w.to)
    ) {
      throw new Error(`window of ${station}: from and to must be HH:MM with from before to (such as 09:00 to 17:00)`);
    }
  }
  return windows;
}

export function describeWindow(window: DeployWindow, timezone: string): string {
  return `${window.day} ${window.from}-${window.to} ${timezone}`;
}
