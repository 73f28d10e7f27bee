// What a rollout is started with.
import type { HostSelector } from '../../activities/hosts';
import type { Release } from '../../activities/releases';
import type { SignedAction } from '../definitions';
import type { Strategy } from '../plan';

export interface RolloutInput {
  service: string;
  release: Release;
  selector: HostSelector;
  strategy: Strategy;
  by: string;
  /** Pause before each wave after the canaries until resumed (the "continue?" of an interactive deploy). */
  pauseAfterCanary?: boolean;
  /** The person's signed deploy statement, for a rollout started from outside a train. */
  signed?: SignedAction;
  /**
   * This rollout puts back an older release (a train rollback). A host that fails its checks then stays on it,
   * depooled for a person, instead of going back to the newer release it replaced.
   */
  movingBack?: boolean;
}
