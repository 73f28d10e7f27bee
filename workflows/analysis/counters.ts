// Increases of cumulative counters between two readings, with counter resets handled the way Prometheus'
// increase() does: a counter that went down restarted from 0, so everything it holds now is new.
import type { Counters, SideReading } from './model';

/** How much a counter grew from `previous` to `current`; a drop means it restarted from 0. */
export function increase(previous: number, current: number): number {
  return current >= previous ? current - previous : current;
}

/**
 * Requests and errors of one series. A restart resets both counters together, so a drop in either one means
 * both restarted; taken one by one, an error counter that climbed back above its old value would hide the reset.
 */
function seriesIncrease(previous: Counters | undefined, current: Counters): Counters {
  if (!previous || current.requests < previous.requests || current.errors < previous.errors) return { requests: current.requests, errors: current.errors };
  return { requests: current.requests - previous.requests, errors: current.errors - previous.errors };
}

/**
 * Requests and errors one side served between two readings: summed per series when both readings have them (a
 * series absent before is new, one absent now stopped reporting and adds nothing), else from the totals.
 * Errors are capped at requests, since every error answered a request and the two counters are read apart.
 */
export function sideIncrease(previous: SideReading, current: SideReading): Counters {
  let total: Counters;
  if (previous.series && current.series) {
    total = { requests: 0, errors: 0 };
    for (const name in current.series) {
      const grew = seriesIncrease(previous.series[name], current.series[name]);
      total.requests += grew.requests;
      total.errors += grew.errors;
    }
  } else {
    total = seriesIncrease(previous, current);
  }
  return { requests: total.requests, errors: Math.min(total.errors, total.requests) };
}

/** Per signature, how many times it was seen between two readings. */
export function signatureIncrease(previous: Record<string, number> = {}, current: Record<string, number> = {}): Record<string, number> {
  const grew: Record<string, number> = {};
  for (const [signature, count] of Object.entries(current)) {
    const d = increase(previous[signature] ?? 0, count);
    if (d > 0) grew[signature] = d;
  }
  return grew;
}
