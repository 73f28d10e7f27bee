// `signalbox train report <version>`: an incident-style timeline of a train, read from its workflow history (and
// its children's), so the record is what actually ran, not what someone remembered to write down.
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const timeOf = (event: HistoryEvent) =>
  new Date(Number(event.eventTime?.seconds ?? 0) * 1000 + Math.round((event.eventTime?.nanos ?? 0) / 1e6));
const decode = (payloads?: temporal.api.common.v1.IPayloads | null): any[] =>
  (payloads?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p));
const who = (args: any[]) => (args[0]?.by ? ` by ${args[0].by}` : '');
const why = (args: any[]) => (args[0]?.reason ? `: ${args[0].reason}` : args[0]?.comment ? `: ${args[0].comment}` : '');

/** One line per event worth a reader's time: starts, human steps, deploys, timers, failures and the outcome. */
export function describeEvent(event: HistoryEvent, scheduled: Map<string, string>): string | null {
  if (event.workflowExecutionStartedEventAttributes) {
    const [input] = decode(event.workflowExecutionStartedEventAttributes.input);
    return `train ${input?.version} started by ${input?.by} (from ${input?.fromVersion ?? 'what group2 runs'})`;
  }
  if (event.workflowExecutionUpdateAcceptedEventAttributes) {
    const request = event.workflowExecutionUpdateAcceptedEventAttributes.acceptedRequest;
    const args = decode(request?.input?.args);
    return `${request?.input?.name}${who(args)}${why(args)}${args[0]?.station ? ` (${args[0].station})` : ''}${args[0]?.signature ? ` "${args[0].signature}"` : ''}`;
  }
  if (event.workflowExecutionSignaledEventAttributes) {
    const args = decode(event.workflowExecutionSignaledEventAttributes.input);
    return `${event.workflowExecutionSignaledEventAttributes.signalName}${who(args)}`;
  }
  if (event.activityTaskScheduledEventAttributes) {
    const a = event.activityTaskScheduledEventAttributes;
    const name = a.activityType?.name ?? 'activity';
    scheduled.set(String(event.eventId), name);
    const [arg] = decode(a.input);
    if (name === 'logAction') return `SAL: ${arg?.by}: ${arg?.what}${arg?.range ? ` (${arg.range})` : ''}`;
    if (name === 'sendNotification') return `notified: ${arg?.subject}`;
    if (name === 'landWikiversions') return `wikiversions change: ${arg?.subject}`;
    if (name === 'openBlockers') return 'checked blockers';
    return null;
  }
  if (event.activityTaskCompletedEventAttributes) {
    // The identity the worker verified for a steering action, with its key, as the record of who did it.
    const a = event.activityTaskCompletedEventAttributes;
    if (scheduled.get(String(a.scheduledEventId)) !== 'verifyAction') return null;
    const [identity] = decode(a.result);
    return `verified ${identity?.principal}${identity?.fingerprint ? ` [${identity.fingerprint}]` : ' (unverified: auth none)'}`;
  }
  if (event.activityTaskFailedEventAttributes) {
    const a = event.activityTaskFailedEventAttributes;
    return `${scheduled.get(String(a.scheduledEventId)) ?? 'activity'} failed: ${a.failure?.message}`;
  }
  if (event.timerStartedEventAttributes) {
    const seconds = Number(event.timerStartedEventAttributes.startToFireTimeout?.seconds ?? 0);
    return seconds >= 60 ? `timer ${Math.round(seconds / 60)} min` : null;
  }
  if (event.startChildWorkflowExecutionInitiatedEventAttributes)
    return `started ${event.startChildWorkflowExecutionInitiatedEventAttributes.workflowId}`;
  if (event.childWorkflowExecutionCompletedEventAttributes) {
    const [result] = decode(event.childWorkflowExecutionCompletedEventAttributes.result);
    return `${event.childWorkflowExecutionCompletedEventAttributes.workflowExecution?.workflowId} ${result?.phase ?? 'finished'}${result ? `: ${result.done}/${result.total} hosts, ${result.failed} failed` : ''}`;
  }
  if (event.childWorkflowExecutionFailedEventAttributes) {
    const a = event.childWorkflowExecutionFailedEventAttributes;
    return `${a.workflowExecution?.workflowId} failed: ${a.failure?.cause?.message ?? a.failure?.message}`;
  }
  if (event.workflowExecutionCompletedEventAttributes) {
    const [status] = decode(event.workflowExecutionCompletedEventAttributes.result);
    return `train ended ${status?.state}${status?.blocker ? `: ${status.blocker}` : ''}`;
  }
  if (event.workflowExecutionFailedEventAttributes)
    return `train failed: ${event.workflowExecutionFailedEventAttributes.failure?.message}`;
  if (event.workflowExecutionTerminatedEventAttributes)
    return `train terminated: ${event.workflowExecutionTerminatedEventAttributes.reason}`;
  return null;
}

export async function trainReport(client: Client, workflowId: string): Promise<string> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, string>();
  const lines: { at: Date; text: string }[] = [];
  for (const event of history.events ?? []) {
    const text = describeEvent(event, scheduled);
    if (text) lines.push({ at: timeOf(event), text });
  }
  const started = lines[0]?.at ?? description.startTime;
  const ended = description.closeTime;
  const last = [...lines].reverse().find((l) => l.text.startsWith('train ended') || l.text.startsWith('train failed'));
  const stamp = (d: Date) => d.toISOString().slice(0, 19).replace('T', ' ');
  return [
    `# Incident documentation: ${workflowId}`,
    '',
    '## Summary',
    `- Workflow: ${workflowId} (run ${description.runId}), ${description.status.name.toLowerCase()}`,
    `- Started ${stamp(started)} UTC${ended ? `, ended ${stamp(ended)} UTC` : ', still running'}`,
    `- Outcome: ${last?.text ?? 'in progress'}`,
    `- Events in history: ${history.events?.length ?? 0}`,
    '',
    '## Timeline (UTC, from the workflow history)',
    ...lines.map((l) => `- ${stamp(l.at)} ${l.text}`),
    '',
  ].join('\n');
}
