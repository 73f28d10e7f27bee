// The stage: cut and stage the branch (with any security patches), then sync it to every host with the rollout
// engine. Nothing serves the new code yet; a failure blocks the train until `train resume` tries again.
import { condition, executeChild } from '@temporalio/workflow';
import { rolloutWorkflow } from '../rollout';
import { acts, causeOf, embargoedDetails, failureType, type Activities } from './activities';
import type { Train } from './context';

export type StagedCode = Awaited<ReturnType<Activities['stageCode']>>;

/** The staged code once every host has it; null when the train was aborted first. */
export async function stage({ id: trainId, input, fromVersion, state, records }: Train): Promise<StagedCode | null> {
  const status = state.status;
  let code: StagedCode | null = null;
  while (!state.abortRequested) {
    const resumesBefore = state.resumes;
    try {
      if (!code) {
        code = await acts.stageCode({ version: input.version, by: input.by });
        records.record(
          `branch cut and staged ${code.id}${code.patches.length ? ` with ${code.patches.length} security patch(es)` : ''}`,
          input.by,
          `wmf/${fromVersion}..${code.sha.slice(0, 12)}`,
        );
      }
      await executeChild(rolloutWorkflow, {
        workflowId: `${trainId}-stage${resumesBefore ? `-${resumesBefore}` : ''}`,
        args: [{ service: input.codeService, release: code, selector: {}, strategy: input.strategy, by: input.by }],
      });
      return code;
    } catch (err) {
      // The runbook's "git am failed" row, a failed build, or a sync that did not finish: nothing serves the new
      // code yet, and nothing ships until a person has looked; `train resume` tries again.
      const embargoed = embargoedDetails(err);
      if (embargoed) records.sendPrivately(embargoed);
      if (failureType(err) === 'StageBlocked') records.block([{ title: `stage of ${input.version}: ${causeOf(err)}` }]);
      else
        await records.blockAfterFailure(
          `stage of ${input.version} did not finish: ${causeOf(err)}; \`signalbox train resume ${input.version}\` tries again`,
        );
      await condition(() => state.resumes > resumesBefore || state.abortRequested);
      status.state = 'staging';
      status.blocker = undefined;
      records.announcedBlockers = '';
      state.report();
    }
  }
  return null;
}
