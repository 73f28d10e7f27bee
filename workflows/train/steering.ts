// How people steer a train: updates whose validators refuse a request at once, and whose handlers have the
// worker verify the signature before they set the flags the main loop waits on.
import { ApplicationFailure, condition, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import {
  abortTrain,
  acknowledgeError,
  approveStation,
  describeIdentity,
  pauseTrain,
  resumeTrain,
  rollbackTrain,
  searchAttributes,
  trainStatusQuery,
} from '../definitions';
import { authorizer } from '../authorize';
import type { Train } from './context';

/** Runs the validator's rules again after the signature check: other updates may have run meanwhile. */
const stillValid = (validate: () => void) => {
  try {
    validate();
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'Refused');
  }
};

type Auth = ReturnType<typeof authorizer>;

/** Registers every handler, in the order trains always have, and tags the workflow for search. */
export function steer(train: Train): void {
  const auth = authorizer(train.id);
  setHandler(trainStatusQuery, () => train.state.status);
  acceptAcknowledgements(train, auth);
  acceptApprovals(train, auth);
  acceptRollbacks(train, auth);
  acceptControl(train, auth);
  upsertSearchAttributes([
    { key: searchAttributes.kind, value: 'train' },
    { key: searchAttributes.version, value: train.input.version },
  ]);
}

/** `train ack`: an error signature the watch no longer counts as new. */
function acceptAcknowledgements({ state }: Train, auth: Auth): void {
  const { status } = state;
  setHandler(
    acknowledgeError,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'ack', request.signature));
      stillValid(() => state.validateAck(request));
      status.acknowledged.push({ signature: request.signature, by: who, reason: request.reason });
      state.note(`acknowledged known error "${request.signature}": ${request.reason}`, who);
      return status;
    },
    { validator: (request) => (auth.check(request, 'ack'), state.validateAck(request)) },
  );
}

/** `train approve`: lets the next station through its gate. */
function acceptApprovals({ state }: Train, auth: Auth): void {
  const { status } = state;
  setHandler(
    approveStation,
    async (request) => {
      const identity = await auth.verify(request, 'approve', request.station ?? status.nextStation ?? undefined);
      stillValid(() => state.validateApproval({ ...request, by: identity.principal }));
      state.approved = true;
      state.lastApprover = describeIdentity(identity);
      state.note(`approved ${status.nextStation}${request.comment ? `: ${request.comment}` : ''}`, state.lastApprover);
      return status;
    },
    { validator: (request) => (auth.check(request, 'approve'), state.validateApproval(request)) },
  );
}

/** `train rollback`: the main loop carries it out; the update returns once it has. */
function acceptRollbacks({ state }: Train, auth: Auth): void {
  setHandler(
    rollbackTrain,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'rollback', request.toStation ?? 'start'));
      stillValid(() => state.validateRollback(request));
      state.pendingRollback = { ...request, by: who };
      const ticket = state.rollbacksDone;
      await condition(() => state.rollbacksDone > ticket || state.abortRequested);
      return state.status;
    },
    { validator: (request) => (auth.check(request, 'rollback'), state.validateRollback(request)) },
  );
}

/** `train abort`, `train pause` and `train resume`. */
function acceptControl({ state, records }: Train, auth: Auth): void {
  const { status } = state;
  setHandler(
    abortTrain,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'abort'));
      stillValid(() => state.refuseWhenFinished());
      state.abortRequested = true;
      state.note(`abort requested${request.reason ? `: ${request.reason}` : ''}`, who);
      return status;
    },
    { validator: (request) => (auth.check(request, 'abort'), state.refuseWhenFinished()) },
  );
  setHandler(
    pauseTrain,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'pause'));
      stillValid(() => state.validatePause());
      state.paused = true;
      state.note('paused', who);
      records.record('paused', who);
      return status;
    },
    { validator: (request) => (auth.check(request, 'pause'), state.validatePause()) },
  );
  setHandler(
    resumeTrain,
    async (request) => {
      const who = describeIdentity(await auth.verify(request, 'resume'));
      stillValid(() => state.refuseWhenFinished());
      state.paused = false;
      state.resumes++;
      state.note('resumed', who);
      return status;
    },
    { validator: (request) => (auth.check(request, 'resume'), state.refuseWhenFinished()) },
  );
}
