// signalbox train: start the weekly train, steer it station by station, and report on it.
import fs from 'node:fs';
import { Option, type Command } from 'commander';
import { loadInventory } from '../activities/inventory';
import {
  abortTrain,
  acknowledgeError,
  approveStation,
  pauseTrain,
  resumeTrain,
  rollbackTrain,
  trainStatusQuery,
  type TrainStatus,
} from '../workflows/definitions';
import { checkStation, checkVersion, STATIONS, trainWorkflowId } from '../workflows/names';
import { renderTrain } from '../workflows/render';
import { connectClient, startTrain, trainInputFrom, update } from './client';
import { config, print, resolveVersion, wholeNumber } from './common';
import { trainReport } from './report';
import { principal, steering } from './sign';

export function registerTrain(program: Command): void {
  const train = program.command('train').description('the weekly train');
  addStart(train);
  addApprove(train);
  addRollback(train);
  addAck(train);
  addReport(train);
  addPauseResume(train);
  addAbort(train);
  addStatus(train);
}

function addStart(train: Command): void {
  train
    .command('start <version>')
    .description('start train-<version>: stage, then testwikis, group0, group1, group2 ("auto" picks the next wmf.N)')
    .option('--from <old-version>', 'the version the groups move from (default: what group2 runs)')
    .option('--auto-approve', 'move to each next station without waiting for approval')
    .option(
      '--watch-ms <ms>',
      'how long to watch after each station (0 to 604800000, a week)',
      wholeNumber(0, 604_800_000),
    )
    .action(async (version, opts, cmd) => {
      const cfg = config(cmd);
      if (version !== 'auto') checkVersion(version);
      if (opts.from !== undefined) checkVersion(opts.from);
      loadInventory(cfg); // fails now, before Temporal, when there is no fleet
      const resolved = await resolveVersion(cfg, version);
      const client = await connectClient(cfg);
      const input = trainInputFrom(cfg, resolved, {
        fromVersion: opts.from,
        autoApprove: Boolean(opts.autoApprove) || cfg.train.autoApprove,
        by: principal(),
        ...(opts.watchMs !== undefined ? { watchMs: opts.watchMs } : {}),
      });
      const handle = await startTrain(client, cfg, input);
      console.log(
        `started ${handle.workflowId}; follow it with \`signalbox train status ${resolved}\` or in the Temporal UI:`,
      );
      console.log(
        `  http://127.0.0.1:${cfg.temporal.uiPort}/namespaces/${cfg.temporal.namespace}/workflows/${handle.workflowId}`,
      );
    });
}

function addApprove(train: Command): void {
  train
    .command('approve <version>')
    .description('approve the next station')
    .option('--comment <text>')
    .option('--station <station>', 'only approve if this is the next station')
    .option('--as <name>', 'approve as this person (default: $USER)')
    .action(async (version, opts, cmd) => {
      const cfg = config(cmd);
      const handle = (await connectClient(cfg)).workflow.getHandle(trainWorkflowId(version));
      // The approval names its station, so a stale one can never move the train twice.
      const station =
        opts.station === undefined
          ? ((await update(() => handle.query(trainStatusQuery))).nextStation ?? undefined)
          : checkStation(opts.station);
      const request = {
        ...(await steering(cfg, 'approve', handle.workflowId, station, opts.as)),
        comment: opts.comment,
        station,
      };
      const status = await update(() => handle.executeUpdate(approveStation, { args: [request] }));
      console.log(`approved: ${renderTrain(status)}`);
    });
}

function addRollback(train: Command): void {
  train
    .command('rollback <version>')
    .description('move groups back to the old version (waits until done)')
    .addOption(
      new Option('--to <station>', 'the last station that keeps the new version')
        .choices(['start', ...STATIONS])
        .default('start'),
    )
    .requiredOption('--reason <text>', 'why (recorded in the history and the config repository)')
    .option('--as <name>')
    .action(async (version, opts, cmd) => {
      const cfg = config(cmd);
      const handle = (await connectClient(cfg)).workflow.getHandle(trainWorkflowId(version));
      const request = {
        ...(await steering(cfg, 'rollback', handle.workflowId, opts.to, opts.as)),
        reason: opts.reason,
        toStation: opts.to,
      };
      const status = await update(() => handle.executeUpdate(rollbackTrain, { args: [request] }));
      console.log(renderTrain(status));
    });
}

function addAck(train: Command): void {
  train
    .command('ack <version> <signature>')
    .description('acknowledge a known error signature: the error watch stops counting it as new')
    .requiredOption('--reason <text>', 'why it is known, such as the task that tracks it')
    .option('--as <name>')
    .action(async (version, signature, opts, cmd) => {
      const cfg = config(cmd);
      const handle = (await connectClient(cfg)).workflow.getHandle(trainWorkflowId(version));
      const request = {
        ...(await steering(cfg, 'ack', handle.workflowId, signature, opts.as)),
        signature,
        reason: opts.reason,
      };
      const status = await update(() => handle.executeUpdate(acknowledgeError, { args: [request] }));
      console.log(
        `acknowledged; known errors: ${status.acknowledged.map((a) => JSON.stringify(a.signature)).join(', ')}`,
      );
    });
}

function addReport(train: Command): void {
  train
    .command('report <version>')
    .description('an incident-style timeline of the train, from its workflow history')
    .option('--out <file>', 'write the report here instead of printing it')
    .action(async (version, opts, cmd) => {
      const text = await trainReport(await connectClient(config(cmd)), trainWorkflowId(checkVersion(version)));
      if (opts.out) {
        fs.writeFileSync(opts.out, text);
        console.log(`wrote ${opts.out}`);
      } else process.stdout.write(text);
    });
}

function addPauseResume(train: Command): void {
  for (const [name, definition] of [
    ['pause', pauseTrain],
    ['resume', resumeTrain],
  ] as const) {
    train
      .command(`${name} <version>`)
      .option('--as <name>')
      .action(async (version, opts, cmd) => {
        const cfg = config(cmd);
        const handle = (await connectClient(cfg)).workflow.getHandle(trainWorkflowId(version));
        const request = await steering(cfg, name, handle.workflowId, undefined, opts.as);
        const status = await update(() => handle.executeUpdate(definition, { args: [request] }));
        console.log(`${name}d ${handle.workflowId}: ${status.state}`);
      });
  }
}

function addAbort(train: Command): void {
  train
    .command('abort <version>')
    .option('--reason <text>')
    .option('--as <name>')
    .action(async (version, opts, cmd) => {
      const cfg = config(cmd);
      const handle = (await connectClient(cfg)).workflow.getHandle(trainWorkflowId(version));
      const request = { ...(await steering(cfg, 'abort', handle.workflowId, undefined, opts.as)), reason: opts.reason };
      const status = await update(() => handle.executeUpdate(abortTrain, { args: [request] }));
      console.log(`abort requested: ${status.state}`);
    });
}

function addStatus(train: Command): void {
  train
    .command('status [version]')
    .description('the stations and the version at each (all running trains when no version is given)')
    .option('--json')
    .action(async (version, opts, cmd) => {
      const cfg = config(cmd);
      const client = await connectClient(cfg);
      const ids: string[] = [];
      if (version) ids.push(trainWorkflowId(version));
      else
        for await (const wf of client.workflow.list({
          query: `SignalboxKind = 'train' AND ExecutionStatus = 'Running'`,
        }))
          ids.push(wf.workflowId);
      const statuses: TrainStatus[] = [];
      for (const id of ids) statuses.push(await client.workflow.getHandle(id).query(trainStatusQuery));
      print(opts.json, version ? statuses[0] : statuses, () =>
        statuses.length ? statuses.map(renderTrain).join('\n\n') : 'no train is running',
      );
    });
}
