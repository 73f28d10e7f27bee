// Every history `npm run histories` recorded (test/histories/*.json) replayed through today's workflow bundle: a
// change that would break a running train, rollout, lease or scheduled dispatcher on deploy fails here first.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { historyFromJSON, type History } from '@temporalio/common/lib/proto-utils';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';
import { installRuntime } from './helpers';

const DIR = path.join(__dirname, 'histories');

/**
 * The SDK's historyFromJSON, or the same protojson parse with the protobufjs copy @temporalio/proto was built with:
 * here @grpc/proto-loader pins protobufjs 7 at the top level, so @temporalio/common gets a protobufjs 8 of its own
 * whose instanceof check rejects @temporalio/proto's types ("type must be a Type").
 */
function readHistory(json: unknown): History {
  try {
    return historyFromJSON(json);
  } catch (err) {
    if (!/type must be a Type/.test((err as Error).message)) throw err;
  }
  const fromProto = createRequire(require.resolve('@temporalio/proto'));
  const { fromJson } = fromProto('protobufjs/ext/protojson');
  const historyType = patchProtobufRoot(fromProto('@temporalio/proto')).lookupType('temporal.api.history.v1.History');
  return fromJson(historyType, json, { ignoreUnknownFields: true });
}

/**
 * Today's recordings, and in subfolders those recorded by older workflow code (`before-analysis-run/`): a change
 * must replay both, since trains started before a deploy of signalbox finish on the new code.
 */
function savedHistories(): { file: string; workflowId: string; workflowType: string; history: History }[] {
  return (fs.readdirSync(DIR, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const history = readHistory(JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')));
      const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
      // Workflows build child ids from their own; the server writes it into the first event.
      if (!started?.workflowId) throw new Error(`${file}: the first event does not name the workflow id`);
      return { file, workflowId: started.workflowId, workflowType: started.workflowType!.name!, history };
    });
}

describe('replay of recorded histories', () => {
  it('replays every recorded train, rollout, wave, lease and dispatcher with the current workflow code', async () => {
    installRuntime();
    const saved = savedHistories();
    // What `npm run histories` records; a missing file would silently shrink what this test guards.
    expect(new Set(saved.map((s) => s.workflowType))).toEqual(
      new Set([
        'trainWorkflow',
        'rolloutWorkflow',
        'rolloutWaveWorkflow',
        'serviceLeaseWorkflow',
        'weeklyTrainWorkflow',
      ]),
    );
    const results = Worker.runReplayHistories(
      { workflowBundle: { codePath: inject('workflowBundle') }, replayName: 'signalbox-replay' },
      saved.map(({ workflowId, history }) => ({ workflowId, history })),
    );
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of results) {
      const { file } = saved[replayed++];
      if (result.error) failures.push(`${file} (${result.workflowId}): ${result.error.name}: ${result.error.message}`);
    }
    expect(replayed).toBe(saved.length);
    expect(failures).toEqual([]);
  });
});
