// Steering actions in workflow code: a validator refuses a malformed or replayed statement at once; the handler
// then has the worker verify the signature and the role (an activity, since it runs ssh-keygen) before it changes
// anything. A refusal fails the update with the reason and leaves the workflow as it was.
import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { readStatement, type Action, type Identity, type SignedAction } from './definitions';

const { verifyAction } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 5, nonRetryableErrorTypes: ['Unauthorized'] },
});

export interface Steering {
  by: string;
  signed?: SignedAction;
}

export function authorizer(workflowId: string) {
  const spent = new Set<string>();
  return {
    /** For validators: a signed statement must be for this action and workflow, and new to this workflow. */
    check(request: Steering | undefined, action: Action): void {
      if (!request?.signed) return; // open mode, or refused by verify below when signatures are required
      const statement = readStatement(request.signed);
      if (statement.action !== action || statement.workflowId !== workflowId)
        throw new Error(
          `the signature is for ${statement.action} on ${statement.workflowId}, not ${action} on ${workflowId}`,
        );
      if (spent.has(statement.nonce)) throw new Error('replayed: this signed request was already used; sign a new one');
    },
    /** For handlers: who asked, as the worker verified it; throws an ApplicationFailure that fails only the update. */
    async verify(request: Steering, action: Action, target?: string): Promise<Identity> {
      if (request.signed) spent.add(readStatement(request.signed).nonce);
      try {
        return await verifyAction({ action, workflowId, target, claimedBy: request.by, signed: request.signed });
      } catch (err) {
        const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
        throw ApplicationFailure.nonRetryable(cause?.message ?? (err as Error).message, cause?.type ?? 'Unauthorized');
      }
    },
  };
}
