// How people steer a backport: confirm what the test servers show, abort before production, acknowledge a
// rollback. Validators refuse at once; handlers have the worker verify the signature, then set the flags the
// workflow waits on.
import { ApplicationFailure, setHandler } from '@temporalio/workflow';
import { authorizer } from '../authorize';
import { abortBackport, ackBackport, backportStatusQuery, confirmBackport, describeIdentity } from '../definitions';
import type { BackportState } from './state';

/** Runs the validator's rules again after the signature check: other updates may have run meanwhile. */
const stillValid = (validate: () => void) => {
  try {
    validate();
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'Refused');
  }
};

export function steerBackport(state: BackportState, auth: ReturnType<typeof authorizer>): void {
  setHandler(backportStatusQuery, () => state.status);
  setHandler(
    confirmBackport,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'confirm'));
      stillValid(() => state.validateConfirm(request));
      state.confirm();
      state.note(
        `confirmed sync ${state.status.current + 1} (question ${state.status.question})${request.reason ? `: ${request.reason}` : ''}`,
        who,
      );
      return state.status;
    },
    { validator: (request) => (auth.check(request, 'confirm'), state.validateConfirm(request)) },
  );
  setHandler(
    abortBackport,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'rollback'));
      stillValid(() => state.validateAbort(request));
      state.abortRequest = { by: who, reason: request.reason! };
      state.note(`abort asked: ${request.reason}`, who);
      return state.status;
    },
    { validator: (request) => (auth.check(request, 'rollback'), state.validateAbort(request)) },
  );
  setHandler(
    ackBackport,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'ack'));
      stillValid(() => state.validateAck(request));
      state.acknowledgement = { by: who, reason: request.reason! };
      state.note(`acknowledged: ${request.reason}`, who);
      return state.status;
    },
    { validator: (request) => (auth.check(request, 'ack'), state.validateAck(request)) },
  );
}
