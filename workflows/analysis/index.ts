// The analysis run: its typed model, the sequential judge and the one-line description. Pure: workflow code imports it.
export * from './model';
export { carrySeries, increase, intervalQuantile, referenceBetween, sideIncrease, signatureIncrease } from './counters';
export { assess, duration } from './assess';
export { projectedPower, referenceTimeNeeded, type ProjectedWatch } from './projection';
export { describe, thousands, viewLine, viewOf, type AnalysisView } from './describe';
