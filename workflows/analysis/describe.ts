// One line that says where an analysis run stands, worded the same in the CLI, the UI and reports.
import type { AnalysisStatus, Evidence, Rate } from './model';
import { percent } from './assess';
import { caughtWith } from './power';

/** 48000 -> "48,000", without Intl, whose data may differ between the workers that replay a workflow. */
export function thousands(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

const oneDecimal = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : String(x));
const errorsOf = (r: Rate) => `${percent(r.rate)} of ${thousands(r.requests)}`;

function measured(e: Evidence, baselineName: string): string {
  if (e.test === 'traffic-floor')
    return `${thousands(e.subject.requests)} requests vs ${thousands(e.baseline.requests)} ${baselineName}`;
  if (e.test === 'latency') return e.detail ?? 'latency';
  return `errors ${errorsOf(e.subject)} vs ${errorsOf(e.baseline)} ${baselineName}`;
}

function sequentialTest(e: Evidence, relation: string): string {
  return `mixture SPRT log-LR ${oneDecimal(e.statistic)} ${relation} bound ${oneDecimal(e.bound)} (alpha ${e.alpha !== undefined ? Number(e.alpha.toPrecision(2)) : '?'})`;
}

function verdict(e: Evidence, baselineName: string): string {
  switch (e.test) {
    case 'mixture-SPRT':
      return sequentialTest(e, '>');
    case 'ceiling':
      return `above the ${e.detail ?? 'ceiling'}: ${sequentialTest(e, '>')}`;
    case 'latency':
      // The fixed judge fails one interval's p99 over its limit; the sequential one, a sign test over intervals.
      return e.alpha === undefined
        ? `fixed judge: p99 ${Math.round(e.statistic)} ms above ${Math.round(e.bound)} ms in one interval`
        : sequentialTest(e, '>');
    case 'traffic-floor':
      return `traffic floor: ${e.detail} (floor ${Math.round(e.bound * 100)}%)`;
    case 'new-signature':
      return `new error "${e.detail}" seen ${e.statistic} times, never ${baselineName} (${e.bound} fail)`;
    case 'fixed':
      return `fixed judge: ${percent(e.statistic)} above ${percent(e.bound)} in one interval`;
  }
}

/** The error-rate comparison nearest its bound: what a person asks first about a run that has not failed. */
const closest = (evidence: Evidence[]) =>
  [...evidence].sort(
    (a, b) => Number(b.test === 'mixture-SPRT') - Number(a.test === 'mixture-SPRT') || b.statistic - a.statistic,
  )[0];

export function describe(status: AnalysisStatus): string {
  const name = status.baselineName;
  const progress = `sample ${Math.max(0, status.judgedThrough)} of ${status.windowSamples}`;
  if (status.phase === 'fail') {
    const e = status.evidence.find((x) => x.crossedAt !== undefined)!;
    return `${e.metric}: ${measured(e, name)}; ${verdict(e, name)} at sample ${e.crossedAt}${e.from !== undefined ? `, counting from sample ${e.from}` : ''}`;
  }
  if (status.phase === 'inconclusive') return `inconclusive at ${progress}: ${status.message}`;
  const e = closest(status.evidence);
  const standing = e
    ? `${e.metric}: ${measured(e, name)}; ${e.test === 'mixture-SPRT' ? '' : `${e.test} `}${sequentialTest(e, 'of')}`
    : 'nothing measured yet';
  const reading =
    status.phase === 'running' && status.consecutiveErrors > 0
      ? `; last ${status.consecutiveErrors} reads failed: ${status.message}`
      : '';
  const weakest = [...(status.power ?? [])].sort((a, b) => a.probability - b.probability)[0];
  const power = status.phase === 'pass' && weakest ? `; ${caughtWith(weakest.effect, weakest.probability)}` : '';
  return `${status.phase === 'pass' ? 'pass after' : 'running,'} ${progress}; ${standing}${reading}${power}`;
}

/** An analysis run as the CLI, the UI and the query show it: the one line, and the evidence behind it. */
export interface AnalysisView {
  /** What was judged: "canaries of mediawiki-config", "group1 after its move". */
  subject: string;
  phase: AnalysisStatus['phase'];
  summary: string;
  /** The test that decided first, then the others' standing; at most a few, to keep the status small. */
  evidence: Evidence[];
  judgedThrough: number;
  windowSamples: number;
}

export const viewOf = (subject: string, status: AnalysisStatus): AnalysisView => ({
  subject,
  phase: status.phase,
  summary: describe(status),
  evidence: status.evidence.slice(0, 5),
  judgedThrough: status.judgedThrough,
  windowSamples: status.windowSamples,
});

/** "group1 after its move: fail: group1: errors ..."; the other phases' summaries begin with their phase. */
export const viewLine = (view: AnalysisView) =>
  `${view.subject}: ${view.phase === 'fail' ? 'fail: ' : ''}${view.summary}`;
