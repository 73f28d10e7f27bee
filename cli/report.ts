// `signalbox train report <version>` and `backport report <n>`: an incident-style timeline. The train (or backport)
// keeps its own event log (every action, who did it, as verified); the workflow history adds what only it can say:
// when it started and ended, each steering request as it was accepted, and each deploy it ran with its outcome. Nothing here knows
// an activity by its name.
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { QueryDefinition } from '@temporalio/common';
import {
  backportStatusQuery,
  trainStatusQuery,
  type BackportStatus,
  type RolloutStatus,
  type TrainEvent,
  type TrainStatus,
} from '../workflows/definitions';
import type { TrainInput } from '../workflows/train';
import type { BackportInput } from '../workflows/backport';

/** What a report needs to know of a kind of workflow: its name, its start and end in words, its own event log. */
interface ReportedKind<I, S> {
  noun: string;
  started(input: I | undefined): string;
  ended(status: S | undefined): string;
  query: QueryDefinition<S>;
  events(status: S): TrainEvent[];
}

const TRAIN: ReportedKind<TrainInput, TrainStatus> = {
  noun: 'train',
  started: (input) =>
    `train ${input?.version} started by ${input?.by} (from ${input?.fromVersion ?? 'what group2 runs'})`,
  ended: (status) => `train ended ${status?.state}${status?.blocker ? `: ${status.blocker}` : ''}`,
  query: trainStatusQuery,
  events: (status) => status.events,
};

const BACKPORT: ReportedKind<BackportInput, BackportStatus> = {
  noun: 'backport',
  started: (input) =>
    `backport of ${input?.changes.map((c) => c.number).join(', ')} started by ${input?.by}${input?.emergency ? ' (emergency)' : ''}`,
  ended: (status) => `backport ended ${status?.step}${status?.outcome ? `: ${status.outcome}` : ''}`,
  query: backportStatusQuery,
  events: (status) => status.events,
};

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

interface Line {
  at: Date;
  text: string;
}

const timeOf = (event: HistoryEvent) =>
  new Date(Number(event.eventTime?.seconds ?? 0) * 1000 + Math.round((event.eventTime?.nanos ?? 0) / 1e6));
function decode<T>(payloads?: temporal.api.common.v1.IPayloads | null): T[] {
  return (payloads?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p) as T);
}

/** The steering request as sent: every train update takes one object with who, and maybe why and where. */
interface SteeringArgs {
  by?: string;
  reason?: string;
  comment?: string;
  station?: string;
  signature?: string;
}

function describeRequest(name: string | null | undefined, args: SteeringArgs = {}): string {
  const why = args.reason ?? args.comment;
  return `${name} by ${args.by ?? '?'}${why ? `: ${why}` : ''}${args.station ? ` (${args.station})` : ''}${args.signature ? ` "${args.signature}"` : ''}`;
}

/** The lifecycle the history holds: start, steering requests, deploys and their outcomes, the end. */
function historyLines<I, S>(events: HistoryEvent[], kind: ReportedKind<I, S>): Line[] {
  const lines: Line[] = [];
  const add = (event: HistoryEvent, text: string) => lines.push({ at: timeOf(event), text });
  for (const event of events) {
    const started = event.workflowExecutionStartedEventAttributes;
    if (started) {
      add(event, kind.started(decode<I>(started.input)[0]));
    }
    const request = event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input;
    if (request) add(event, `${describeRequest(request.name, decode<SteeringArgs>(request.args)[0])}`);
    const child = event.startChildWorkflowExecutionInitiatedEventAttributes;
    if (child) add(event, `started ${child.workflowId}`);
    const childDone = event.childWorkflowExecutionCompletedEventAttributes;
    if (childDone) {
      const [result] = decode<RolloutStatus>(childDone.result);
      add(
        event,
        `${childDone.workflowExecution?.workflowId} ${result?.phase ?? 'finished'}${result ? `: ${result.done}/${result.total} hosts, ${result.failed} failed` : ''}`,
      );
    }
    const childFailed = event.childWorkflowExecutionFailedEventAttributes;
    if (childFailed)
      add(
        event,
        `${childFailed.workflowExecution?.workflowId} failed: ${childFailed.failure?.cause?.message ?? childFailed.failure?.message}`,
      );
    const completed = event.workflowExecutionCompletedEventAttributes;
    if (completed) {
      add(event, kind.ended(decode<S>(completed.result)[0]));
    }
    const failed = event.workflowExecutionFailedEventAttributes;
    if (failed) add(event, `${kind.noun} failed: ${failed.failure?.message}`);
    const terminated = event.workflowExecutionTerminatedEventAttributes;
    if (terminated) add(event, `${kind.noun} terminated: ${terminated.reason}`);
  }
  return lines;
}

/** The workflow's own log, one line per action: `who: what`, as the Server Admin Log has it. */
function eventLines(events: TrainEvent[]): Line[] {
  return events.map((e) => ({ at: new Date(e.at), text: e.by ? `${e.by}: ${e.what}` : e.what }));
}

/** The event log: in the result once it completed, otherwise asked of the workflow (a worker replays a closed one). */
async function ownEvents<I, S>(
  client: Client,
  workflowId: string,
  history: HistoryEvent[],
  kind: ReportedKind<I, S>,
): Promise<TrainEvent[] | string> {
  const completed = history.find((e) => e.workflowExecutionCompletedEventAttributes);
  if (completed) {
    const [status] = decode<S>(completed.workflowExecutionCompletedEventAttributes!.result);
    return status ? kind.events(status) : [];
  }
  try {
    return kind.events(await client.workflow.getHandle(workflowId).query(kind.query));
  } catch (err) {
    return `the ${kind.noun}'s own event log could not be asked for (${(err as Error).message}); is a worker running?`;
  }
}

export const trainReport = (client: Client, workflowId: string) => workflowReport(client, workflowId, TRAIN);
export const backportReport = (client: Client, workflowId: string) => workflowReport(client, workflowId, BACKPORT);

async function workflowReport<I, S>(client: Client, workflowId: string, kind: ReportedKind<I, S>): Promise<string> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const history = (await handle.fetchHistory()).events ?? [];
  const lifecycle = historyLines(history, kind);
  const log = await ownEvents(client, workflowId, history, kind);
  // Stable sort: at the same millisecond the history's line (a request) comes before the action it caused.
  const lines = [...lifecycle, ...(typeof log === 'string' ? [] : eventLines(log))].sort(
    (a, b) => a.at.getTime() - b.at.getTime(),
  );
  const started = lifecycle[0]?.at ?? description.startTime;
  const ended = description.closeTime;
  const ending = new RegExp(`^${kind.noun} (ended|failed|terminated)`);
  const last = [...lifecycle].reverse().find((l) => ending.test(l.text));
  const stamp = (d: Date) => d.toISOString().slice(0, 19).replace('T', ' ');
  return [
    `# Incident documentation: ${workflowId}`,
    '',
    '## Summary',
    `- Workflow: ${workflowId} (run ${description.runId}), ${description.status.name.toLowerCase()}`,
    `- Started ${stamp(started)} UTC${ended ? `, ended ${stamp(ended)} UTC` : ', still running'}`,
    `- Outcome: ${last?.text ?? 'in progress'}`,
    `- Events in history: ${history.length}`,
    ...(typeof log === 'string' ? [`- ${log}`] : []),
    '',
    `## Timeline (UTC; the ${kind.noun} event log, and its workflow history)`,
    ...lines.map((l) => `- ${stamp(l.at)} ${l.text}`),
    '',
  ].join('\n');
}
