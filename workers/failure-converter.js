// Temporal loads a worker's failure converter by path with Node's own require, which cannot read TypeScript, so
// the worker hands its redacting converter over on globalThis (workers/worker.ts) and this file passes it on. In
// a workflow bundle, where nothing put it there, failures convert as by default.
const { DefaultFailureConverter } = require('@temporalio/common');

const HANDOVER = Symbol.for('signalbox.failureConverter');
const fallback = new DefaultFailureConverter();
const current = () => globalThis[HANDOVER] || fallback;

exports.failureConverter = {
  errorToFailure: (err, payloadConverter, context) => current().errorToFailure(err, payloadConverter, context),
  failureToError: (failure, payloadConverter, context) => current().failureToError(failure, payloadConverter, context),
};
