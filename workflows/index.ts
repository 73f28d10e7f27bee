// The workflows the worker registers.
export { rolloutWorkflow, rolloutWaveWorkflow } from './rollout';
export { trainWorkflow } from './train';
export { scheduleChangeWorkflow, weeklyTrainWorkflow } from './schedule';
export { serviceLeaseWorkflow } from './lease';
export { backportWorkflow } from './backport';
