// One change at a time per service: an entity workflow per service holds its exclusive lease. Train station
// moves, CLI deploys and rollbacks all run through the rollout engine, which takes this lease before it reads or
// touches a host, so two of them never interleave on one service. Held in Temporal, it survives any crash.
import { allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { acquireLease, leaseHolderQuery, releaseLease, type LeaseHolder } from './definitions';

/** Updates handled before the lease starts a fresh history; a lease lives for years. */
const UPDATES_PER_RUN = 500;

export async function serviceLeaseWorkflow(initial: LeaseHolder | null = null): Promise<void> {
  let holder = initial;
  let handled = 0;
  setHandler(leaseHolderQuery, () => holder);
  setHandler(
    acquireLease,
    (request) => {
      handled++;
      if (!holder || holder.workflowId !== request.parent) holder = request.holder;
      return holder;
    },
    {
      validator: (request) => {
        if (!request?.holder?.workflowId || !request.holder.by)
          throw new Error('a lease request names the workflow and the person behind it');
        if (!holder || [request.holder.workflowId, request.replacing, request.parent].includes(holder.workflowId))
          return;
        throw new Error(`held by ${holder.workflowId} (${holder.by}, since ${holder.since})`);
      },
    },
  );
  setHandler(releaseLease, ({ workflowId }) => {
    handled++;
    if (holder?.workflowId === workflowId) holder = null;
    return holder;
  });
  await condition(() => handled >= UPDATES_PER_RUN || workflowInfo().continueAsNewSuggested);
  await condition(allHandlersFinished);
  await continueAsNew<typeof serviceLeaseWorkflow>(holder);
}
