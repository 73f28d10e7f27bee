// How operators steer a rollout: pause, resume, abort and rollback, as updates with validators.
import { ApplicationFailure, setHandler } from '@temporalio/workflow';
import {
  abortRollout,
  describeIdentity,
  pauseRollout,
  resumeRollout,
  rollbackRollout,
  rolloutStatusQuery,
  type Action,
  type ControlRequest,
} from '../definitions';
import type { Rollout } from './state';

export function steer({ auth, state }: Rollout): void {
  const status = state.status;
  /** Checks the signature, then the rule again (other updates may have run meanwhile), then does `apply`. */
  const steering = (
    action: Action,
    rule: (request: ControlRequest) => void,
    apply: (request: ControlRequest, who: string) => void,
  ) =>
    [
      async (request: ControlRequest) => {
        const who = describeIdentity(await auth.verify(request, action));
        try {
          rule(request);
        } catch (err) {
          throw ApplicationFailure.nonRetryable((err as Error).message, 'Refused');
        }
        apply(request, who);
        return status;
      },
      { validator: (request: ControlRequest) => (auth.check(request, action), rule(request)) },
    ] as const;
  const refuseWhenFinished = (request?: ControlRequest) => state.refuseWhenFinished(request);
  setHandler(rolloutStatusQuery, () => status);
  setHandler(
    pauseRollout,
    ...steering(
      'pause',
      refuseWhenFinished,
      (request, who) => (
        (status.paused = true),
        (status.pauseReason = `paused by ${who}${request.reason ? `: ${request.reason}` : ''}`)
      ),
    ),
  );
  setHandler(
    resumeRollout,
    ...steering(
      'resume',
      () => state.notPaused(),
      () => ((status.paused = false), (status.pauseReason = undefined)),
    ),
  );
  setHandler(
    abortRollout,
    ...steering(
      'abort',
      refuseWhenFinished,
      (_request, who) => ((state.abortRequested = true), (status.pauseReason = `abort requested by ${who}`)),
    ),
  );
  setHandler(
    rollbackRollout,
    ...steering(
      'rollback',
      refuseWhenFinished,
      (_request, who) => ((state.rollbackRequested = true), (status.pauseReason = `rollback requested by ${who}`)),
    ),
  );
}
