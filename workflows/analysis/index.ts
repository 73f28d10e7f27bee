// The analysis run: its typed model, the sequential judge and the one-line description. Pure: workflow code imports it.
export * from './model';
export { increase, sideIncrease, signatureIncrease } from './counters';
export { assess } from './assess';
export { describe, thousands } from './describe';
