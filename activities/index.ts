// Every activity the worker registers, built from one loaded config. Workflows import this file as a type only.
import type { SignalboxConfig } from '../config/load';
import { createHostActivities } from './hosts';
import { createMetricsActivities } from './metrics';
import { createTrainActivities } from './train';
import { createWikiActivities } from './wiki';

export function createActivities(config: SignalboxConfig) {
  return {
    ...createHostActivities(config),
    ...createMetricsActivities(config),
    ...createTrainActivities(config),
    ...createWikiActivities(config),
  };
}
