// signalbox analysis: analysis runs of past trains and rollouts, judged again under other settings.
import type { Command } from 'commander';
import { connectClient, UserError } from './client';
import { config, print } from './common';
import { recordedRuns, renderReplay, replay } from './analysis-replay';

export function registerAnalysis(program: Command): void {
  program
    .command('analysis')
    .description('analysis runs of past trains and rollouts')
    .command('replay <workflow-id>')
    .description(
      "judge the recorded samples of a rollout's canary analysis or a train's watches again under other settings",
    )
    .option(
      '--set <key=value>',
      'a setting to change, such as alpha=0.01, minEffect=0.02, ceiling=0.1, method=fixed (repeatable)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--json', 'print JSON')
    .action(async (id: string, opts, cmd) => {
      const client = await connectClient(config(cmd));
      const history = await client.workflow.getHandle(id).fetchHistory();
      const settings: string[] = opts.set;
      let replayed;
      try {
        replayed = replay(recordedRuns(history.events ?? []), settings);
      } catch (err) {
        throw new UserError((err as Error).message);
      }
      print(opts.json, replayed, () => renderReplay(replayed, settings));
    });
}
