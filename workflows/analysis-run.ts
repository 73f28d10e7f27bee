// One analysis run in a workflow: a reading now, then one per interval on workflow timers, each judged by the
// pure assess() over all the samples so far. The canary analysis and the train's error watch both run it.
import { condition, patched } from '@temporalio/workflow';
import {
  assess,
  viewOf,
  type AnalysisContext,
  type AnalysisSpec,
  type AnalysisView,
  type MetricReading,
  type Sample,
  POWER_DEFAULT_PATCH,
  POWER_RULE_PATCH,
  specAsRecorded,
} from './analysis/index';

export interface AnalysisRun {
  /** What is judged, as people read it: "canaries of mediawiki-config", "group1 after its move". */
  subject: string;
  /** One reading of every metric; a read that throws is a measurement error, never data. */
  read: () => Promise<{ metrics: Record<string, MetricReading> }>;
  everyMs: number;
  spec: Partial<AnalysisSpec>;
  /** Read at every sample: an acknowledgement made during the run counts from then on. */
  context: () => AnalysisContext;
  /** An operator stepped in (rollback, abort): the run stops without a verdict. */
  interrupted: () => boolean;
  /** After each sample: where the run stands, for the status and the UI. */
  progress: (view: AnalysisView) => void;
}

const causeOf = (err: unknown): string => {
  const cause = (err as { cause?: Error }).cause;
  return cause ? causeOf(cause) : (err as Error).message;
};

/** Runs to a verdict (pass, fail, inconclusive), or returns null when interrupted. */
export async function runAnalysis(run: AnalysisRun): Promise<AnalysisView | null> {
  const samples: Sample[] = [];
  const spec = specAsRecorded(run.spec, patched(POWER_RULE_PATCH), patched(POWER_DEFAULT_PATCH));
  const take = async () => {
    try {
      const reading = await run.read();
      // Workflow time, not the reader's clock: one clock for every sample, replayed the same.
      samples.push({ at: Date.now(), metrics: reading.metrics });
    } catch (err) {
      samples.push({ at: Date.now(), error: causeOf(err) });
    }
    const view = viewOf(run.subject, assess(samples, spec, run.context()));
    run.progress(view);
    return view;
  };
  let view = await take();
  while (view.phase === 'running') {
    if (await condition(run.interrupted, run.everyMs, { summary: `analysis of ${run.subject}` })) return null;
    view = await take();
  }
  return view;
}
