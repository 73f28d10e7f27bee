// signalbox rollout: steer a running deploy (status, pause, resume, abort, rollback).
import type { Command } from 'commander';
import {
  abortRollout,
  pauseRollout,
  resumeRollout,
  rollbackRollout,
  rolloutStatusQuery,
} from '../workflows/definitions';
import { viewLine } from '../workflows/analysis/index';
import { connectClient, update } from './client';
import { bar, config, print } from './common';
import { steering } from './sign';

export function registerRollout(program: Command): void {
  const rollout = program.command('rollout').description('steer a running deploy');
  rollout
    .command('status <workflow-id>')
    .description("a rollout's phase, hosts done and failed, and why it paused")
    .option('--json')
    .action(async (id, opts, cmd) => {
      const status = await update(() =>
        connectClient(config(cmd)).then((c) => c.workflow.getHandle(id).query(rolloutStatusQuery)),
      );
      print(opts.json, status, () =>
        [
          `${status.service} -> ${status.release}: ${status.phase}${status.paused ? ` (paused: ${status.pauseReason})` : ''}`,
          `${bar(status.done, status.total)} failed ${status.failed}/${status.maxFail}`,
          ...(status.analysis ? [`analysis of ${viewLine(status.analysis)}`] : []),
          ...status.failures.slice(0, 10).map((f) => `  ${f.host}: ${f.detail ?? f.outcome}`),
        ].join('\n'),
      );
    });
  for (const [name, def] of [
    ['pause', pauseRollout],
    ['resume', resumeRollout],
    ['abort', abortRollout],
    ['rollback', rollbackRollout],
  ] as const) {
    rollout
      .command(`${name} <workflow-id>`)
      .option('--reason <text>')
      .action(async (id, opts, cmd) => {
        const handle = (await connectClient(config(cmd))).workflow.getHandle(id);
        const cfg = config(cmd);
        const request = { ...(await steering(cfg, name, id)), reason: opts.reason };
        const status = await update(() => handle.executeUpdate(def, { args: [request] }));
        console.log(`${name}: ${status.phase}${status.pauseReason ? ` (${status.pauseReason})` : ''}`);
      });
  }
}
