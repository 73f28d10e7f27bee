// signalbox: the command line. Every command checks its input before it touches a host or starts a workflow.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline/promises';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig, type SignalboxConfig } from '../config/load';
import { createHostActivities, selectHosts, type HostSelector } from '../activities/hosts';
import { forgeFor, loadInventory, sandboxDir } from '../activities/inventory';
import { stageFromForge, treeHash, type Release } from '../activities/releases';
import { createTrainActivities, CONFIG_REPO, stageVersion } from '../activities/train';
import {
  abortRollout,
  abortTrain,
  acknowledgeError,
  approveStation,
  pauseRollout,
  pauseTrain,
  resumeRollout,
  resumeTrain,
  rollbackRollout,
  rollbackTrain,
  rolloutStatusQuery,
  trainStatusQuery,
  type RolloutStatus,
  type ScheduleChange,
  type TrainStatus,
} from '../workflows/definitions';
import {
  checkReleaseId,
  checkServiceName,
  checkStation,
  checkVersion,
  InvalidNameError,
  parseAmount,
  STATIONS,
  trainWorkflowId,
} from '../workflows/names';
import { viewLine } from '../workflows/analysis/index';
import { recordedRuns, renderReplay, replay } from './analysis-replay';
import { planRollout, type Strategy } from '../workflows/plan';
import { renderTrain } from '../workflows/render';
import { ApplicationFailure } from '@temporalio/common';
import { CLI_ENTRY, connectClient, startRollout, startTrain, trainInputFrom, update, UserError } from './client';
import { runDemo } from './demo';
import { principal, steering } from './sign';
import { describeHolder, runningLeaseHolder } from '../activities/lease';
import { trainReport } from './report';
import { runWorker } from '../workers/worker';
import { runSetup } from '../tools/setup';
import { devServerPid, startDevServer, stopDevServer } from '../tools/temporal-runtime';
import { createFleet, readFleet, serverPid, startFleetServer, stopFleetServer } from '../sandbox/fleet';
import { faultsFile, serveFleet, type FaultFile, type GroupFault } from '../sandbox/server';
import { SANDBOX_WIKIS } from '../sandbox/wikis';

// Option parsers: commander would hand over Number("abc"), which is NaN and passes every later `<` check.
function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const text = value.trim();
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return Number(text);
  };
}

function shareOfOne(value: string): number {
  const text = value.trim();
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text) || Number(text) > 1)
    throw new InvalidArgumentError('expected a number from 0 to 1, such as 0.05');
  return Number(text);
}

function hostList(value: string): string[] {
  const names = value.split(',').map((h) => h.trim());
  if (names.some((h) => !h))
    throw new InvalidArgumentError(
      'expected host names separated by commas, such as mw1001,mw1002, with no empty name (leave --hosts out to deploy to every host)',
    );
  return names;
}

function groupName(value: string): string {
  if (!value.trim())
    throw new InvalidArgumentError('expected a group name such as canary (leave --group out to deploy to every host)');
  return value.trim();
}

function config(cmd: Command): SignalboxConfig {
  return loadConfig(cmd.optsWithGlobals().config);
}

function print(json: boolean, value: unknown, text: () => string): void {
  console.log(json ? JSON.stringify(value, null, 2) : text());
}

/** A version, or "auto": the next wmf.N after the newest wmf/ branch (or what group2 runs). */
async function resolveVersion(cfg: SignalboxConfig, version: string): Promise<string> {
  if (version !== 'auto') return checkVersion(version);
  return createTrainActivities(cfg).nextTrainVersion();
}

/** A staged release id, or a version (staged from its branch) for the code service, or a ref for the config service. */
async function resolveRelease(cfg: SignalboxConfig, service: string, spec: string): Promise<Release> {
  const inventory = loadInventory(cfg);
  const staged = path.join(inventory.stagingDir, service, spec);
  if (/-[0-9a-f]{12}$/.test(spec)) {
    checkReleaseId(spec);
    if (!fs.existsSync(staged))
      throw new UserError(`release ${spec} is not staged for ${service} (looked in ${staged})`);
    return { id: spec, name: spec.slice(0, -13), service, contentHash: treeHash(staged), sha: 'staged' };
  }
  if (service === cfg.train.codeService) {
    const version = checkVersion(spec);
    return stageVersion(cfg, forgeFor(cfg, inventory), version).catch((err) => {
      // The operator at this terminal may see an embargoed failure's details; public channels never do.
      throw new UserError(
        (err as { details?: { embargoed?: string }[] }).details?.[0]?.embargoed ?? (err as Error).message,
      );
    });
  }
  if (service === cfg.train.configService) {
    if (!/^[A-Za-z0-9][A-Za-z0-9/._-]*$/.test(spec))
      throw new InvalidNameError('ref', spec, 'expected a branch or commit of the config repository');
    return stageFromForge(forgeFor(cfg, inventory), inventory.stagingDir, service, CONFIG_REPO, spec, 'config', {
      build: cfg.services[service].build,
    });
  }
  throw new UserError(`give a staged release id for ${service}, such as name-0123456789ab`);
}

/** Schedule changes are an admin's signed action: a short workflow verifies the signature, then makes the change. */
async function changeSchedule(cfg: SignalboxConfig, change: ScheduleChange): Promise<string> {
  const client = await connectClient(cfg);
  const workflowId = `schedule-change-${change.scheduleId}-${Date.now().toString(36)}`;
  const request = { ...change, ...(await steering(cfg, 'schedule', workflowId, change.scheduleId)) };
  const handle = await client.workflow.start('scheduleChangeWorkflow', {
    taskQueue: cfg.temporal.taskQueue,
    workflowId,
    args: [request],
    staticSummary: `Schedule ${change.change}: ${change.scheduleId}`,
  });
  return handle.result().catch((err) => {
    throw new UserError(`refused: ${err.cause?.cause?.message ?? err.cause?.message ?? err.message}`);
  }) as Promise<string>;
}

function bar(done: number, total: number, width = 30): string {
  const filled = total ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

async function ask(question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export function buildCli(): Command {
  const program = new Command('signalbox')
    .description('Durable, staged deploys of code and config to a fleet, as Temporal workflows')
    .option('-c, --config <file>', 'configuration file (default: signalbox.yml, or SIGNALBOX_CONFIG)')
    // Set before any subcommand is added, so every one inherits them: usage errors read and exit like ours.
    .configureOutput({ outputError: (text, write) => write(`signalbox: ${text.replace(/^error: /, '')}`) })
    .exitOverride()
    .showHelpAfterError();

  program
    .command('setup')
    .description('install what is missing: the Temporal CLI, git, rsync (and for tests: sshd, prometheus)')
    .option('--for-tests', 'also install what the tests need')
    .action((opts) => runSetup(Boolean(opts.forTests)));

  const dev = program
    .command('dev')
    .description('the local Temporal dev server (SQLite in the state folder, UI on 8233)');
  dev
    .command('start', { isDefault: true })
    .description('start it, or use one already listening')
    .action(async (_o, cmd) => {
      const cfg = config(cmd);
      await startDevServer({
        home: cfg.home,
        address: cfg.temporal.address,
        namespace: cfg.temporal.namespace,
        uiPort: cfg.temporal.uiPort,
      });
      console.log(
        `Temporal UI: http://127.0.0.1:${cfg.temporal.uiPort}/namespaces/${cfg.temporal.namespace}/workflows`,
      );
    });
  dev
    .command('stop')
    .description('stop the dev server that signalbox started')
    .action(async (_o, cmd) => {
      console.log(
        (await stopDevServer(config(cmd).home)) ? 'stopped the dev server' : 'no dev server of ours is running',
      );
    });
  dev.command('status').action((_o, cmd) => {
    const pid = devServerPid(config(cmd).home);
    console.log(pid ? `dev server running (pid ${pid})` : 'dev server not running');
  });

  program
    .command('worker')
    .description('run workflows and activities on the task queue')
    .action(async (_o, cmd) => {
      await runWorker(config(cmd));
    });

  const sandbox = program.command('sandbox').description('the sandbox fleet on this machine');
  sandbox
    .command('up')
    .description('create the fleet (once) and start its app servers')
    .option('--hosts <n>', 'number of hosts (1 to 5000)', wholeNumber(1, 5000))
    .action(async (opts, cmd) => {
      const cfg = config(cmd);
      const hosts = opts.hosts ?? cfg.fleet.sandbox?.hosts ?? 12;
      if (!Number.isInteger(hosts) || hosts < 1 || hosts > 5000)
        throw new UserError('--hosts takes a whole number from 1 to 5000');
      const traffic = cfg.fleet.sandbox?.trafficPerSecond ?? 40;
      const fleet = await createFleet(cfg.home, hosts, traffic, undefined, cfg.fleet.sandbox);
      const pid = await startFleetServer(cfg.home, CLI_ENTRY);
      console.log(
        `sandbox: ${fleet.hosts.length} hosts up (server pid ${pid}); control and load balancer at ${fleet.controlUrl}`,
      );
    });
  sandbox
    .command('serve')
    .description('run the fleet server in the foreground (used by `up`)')
    .action(async (_o, cmd) => {
      const stop = await serveFleet(config(cmd).home);
      const shutdown = () => void stop().then(() => process.exit(0));
      process.on('SIGTERM', shutdown);
      process.on('SIGINT', shutdown);
      console.log('sandbox server ready');
    });
  sandbox
    .command('down')
    .description('stop the fleet server')
    .option('--purge', 'also delete the fleet, its repositories and staged releases')
    .action(async (opts, cmd) => {
      const cfg = config(cmd);
      console.log((await stopFleetServer(cfg.home)) ? 'sandbox server stopped' : 'sandbox server was not running');
      if (opts.purge) {
        fs.rmSync(sandboxDir(cfg.home), { recursive: true, force: true });
        fs.rmSync(path.join(cfg.home, 'staging'), { recursive: true, force: true });
        console.log('sandbox purged');
      }
    });
  sandbox
    .command('status')
    .option('--json')
    .action(async (opts, cmd) => {
      const cfg = config(cmd);
      const fleet = readFleet(cfg.home);
      if (!fleet) throw new UserError('no sandbox; run `signalbox sandbox up`');
      const live = serverPid(cfg.home)
        ? ((await (await fetch(`${fleet.controlUrl}/hosts`)).json()) as {
            host: string;
            address: string;
            up: boolean;
            pooled: boolean;
            served: number;
            error?: string;
          }[])
        : [];
      print(opts.json, live, () =>
        live.length
          ? live
              .map(
                (h) =>
                  `${h.host.padEnd(8)} ${h.address.padEnd(18)} ${h.up ? 'up  ' : 'DOWN'} ${h.pooled ? 'pooled  ' : 'depooled'} ${String(h.served).padStart(7)} requests${h.error ? `  ${h.error}` : ''}`,
              )
              .join('\n')
          : 'sandbox server not running',
      );
    });
  // --wiki is repeatable and takes commas; a name the sandbox does not serve is refused, naming the ones it does.
  const wikiList = (value: string, previous: string[] = []): string[] => {
    const wikis = value
      .split(',')
      .map((w) => w.trim())
      .filter(Boolean);
    const unknown = wikis.filter((w) => !Object.hasOwn(SANDBOX_WIKIS, w));
    if (!wikis.length || unknown.length) {
      const known = Object.keys(SANDBOX_WIKIS).join(', ');
      throw new InvalidArgumentError(
        `unknown wiki ${unknown.join(', ') || '(none given)'}; the sandbox's wikis are ${known}`,
      );
    }
    return [...previous, ...wikis];
  };
  sandbox
    .command('fault <version>')
    .description('make a version misbehave in the sandbox, so a bad train is reproducible')
    .option('--group <group>', "wiki group the fault applies to (with --wiki alone, the wikis' group)", 'group2')
    .option('--error-rate <rate>', 'share of requests that fail, 0 to 1', shareOfOne, 0)
    .option('--latency-ms <ms>', 'extra latency per request (0 to 600000)', wholeNumber(0, 600_000))
    .option(
      '--ramp-minutes <n>',
      'the error rate grows from 0 over this many minutes (1 to 1440)',
      wholeNumber(1, 1440),
    )
    .option('--wiki <db>', 'only this wiki is faulty, by database name (repeat, or comma-separated)', wikiList)
    .option('--crash', 'the app fails to start on this version')
    .option('--crash-loop', 'the app starts and answers, then dies after ~3 s and is down ~10 s, again and again')
    .option('--signature <text>', 'the error message logged')
    .option('--clear', 'remove every fault of this version')
    .action((version, opts, cmd) => {
      const cfg = config(cmd);
      checkVersion(version);
      const wikis: string[] | undefined = opts.wiki && [...new Set<string>(opts.wiki)];
      // --wiki enwiki alone means enwiki's group, not the default group2 it may not be in.
      const groupsOfWikis = new Set((wikis ?? []).map((w) => SANDBOX_WIKIS[w].group));
      const inferred = cmd.getOptionValueSource('group') === 'default' && groupsOfWikis.size === 1;
      const group = checkStation(inferred ? [...groupsOfWikis][0] : opts.group);
      const errorRate: number = opts.errorRate;
      const latencyMs: number | undefined = opts.latencyMs;
      const rampMinutes: number | undefined = opts.rampMinutes;
      if (rampMinutes !== undefined && !(errorRate > 0)) {
        throw new UserError('--ramp-minutes ramps up --error-rate; give an --error-rate above 0');
      }
      const elsewhere = (wikis ?? []).filter((w) => SANDBOX_WIKIS[w].group !== group);
      if (elsewhere.length) {
        const where = elsewhere.map((w) => `${w} is in ${SANDBOX_WIKIS[w].group}`).join(', ');
        throw new UserError(`--wiki names wikis outside --group ${group} (${where}); pass the --group they are in`);
      }
      const file = faultsFile(cfg.home);
      const faults: FaultFile = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
      if (opts.clear) delete faults[version];
      else {
        const fault = faults[version] ?? { groups: {} };
        const groupFault: GroupFault = { errorRate, latencyMs };
        if (rampMinutes !== undefined) groupFault.rampMinutes = rampMinutes;
        if (wikis) groupFault.wikis = wikis;
        fault.groups[group] = groupFault;
        if (opts.crash) fault.crash = true;
        if (opts.crashLoop) fault.crashLoop = true;
        if (opts.signature) fault.signature = opts.signature;
        faults[version] = fault;
      }
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(`${file}.next`, JSON.stringify(faults, null, 2));
      fs.renameSync(`${file}.next`, file);
      console.log(
        opts.clear ? `cleared faults of ${version}` : `fault set: ${version} ${JSON.stringify(faults[version])}`,
      );
    });

  const train = program.command('train').description('the weekly train');
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

  program
    .command('deploy <release>')
    .description('roll a release out with canaries and batches (a version, a config ref, or a staged release id)')
    .option('--service <name>', 'which service (default: the MediaWiki code service)')
    .option('--canary <amount>', 'canary hosts first: a count or a percentage; counts hosts already on the release')
    .option('--batch <amount>', 'hosts per batch after the canaries')
    .option('--max-fail <amount>', 'failures tolerated before stopping and rolling back')
    .option('--hosts <list>', 'only these hosts (comma-separated)', hostList)
    .addOption(new Option('--group <group>', 'only hosts in this group').argParser(groupName).conflicts('hosts'))
    .option('--dry-run', 'show what would change on each host; touch nothing')
    .option('-y, --yes', 'do not ask between phases')
    .action(async (spec, opts, cmd) => {
      // Amounts are checked now: planning checks them too, but only after the release is staged.
      if (opts.canary !== undefined && opts.canary !== 'none') parseAmount(opts.canary, 1, '--canary');
      if (opts.batch !== undefined) parseAmount(opts.batch, 1, '--batch');
      if (opts.maxFail !== undefined) parseAmount(opts.maxFail, 1, '--max-fail');
      const cfg = config(cmd);
      const service = checkServiceName(opts.service ?? cfg.train.codeService);
      if (!cfg.services[service])
        throw new UserError(`unknown service ${service}; known: ${Object.keys(cfg.services).join(', ')}`);
      const strategy: Strategy = {
        ...cfg.rollout,
        ...(opts.canary !== undefined ? { canary: opts.canary === 'none' ? null : opts.canary } : {}),
        ...(opts.batch !== undefined ? { batch: opts.batch } : {}),
        ...(opts.maxFail !== undefined ? { maxFail: opts.maxFail } : {}),
      };
      const selector: HostSelector =
        opts.hosts !== undefined ? { hosts: opts.hosts } : opts.group !== undefined ? { group: opts.group } : {};
      try {
        selectHosts(loadInventory(cfg).hosts, selector); // unknown hosts or group: refused before anything is staged
      } catch (err) {
        throw err instanceof ApplicationFailure ? new UserError(err.message) : err;
      }
      const hostActivities = createHostActivities(cfg);
      const release = await resolveRelease(cfg, service, spec);
      const { current, canaryHosts } = await hostActivities.currentReleases({ service, release, selector });
      const plan = planRollout(current, release.id, { ...strategy, canaryHosts }); // also checks the amounts
      const { dependencies } = await hostActivities.checkDependsOn({ service, release, selector }).catch((err) => {
        throw new UserError((err as Error).message);
      });
      if (opts.dryRun) {
        console.log(`dry run: ${release.id} to ${service} on ${Object.keys(current).length} hosts; nothing is touched`);
        console.log(`already on it: ${plan.alreadyOnRelease.length ? plan.alreadyOnRelease.join(', ') : 'none'}`);
        const staging = loadInventory(cfg).stagingDir;
        for (const wave of plan.waves) {
          console.log(`${wave.name}:`);
          for (const host of wave.hosts) console.log(`  ${host}: ${current[host] ?? '(nothing)'} -> ${release.id}`);
        }
        const from = [
          ...new Set(plan.waves.flatMap((w) => w.hosts.map((h) => current[h])).filter((r): r is string => !!r)),
        ];
        for (const old of from) {
          const diff = (() => {
            try {
              return execFileSync(
                'diff',
                ['-ru', path.join(staging, service, old), path.join(staging, service, release.id)],
                { encoding: 'utf8' },
              );
            } catch (err) {
              return (err as { stdout?: string }).stdout ?? '';
            }
          })();
          console.log(`changes from ${old}:\n${diff.trim() || '(no file changes)'}`);
        }
        console.log(`max failures tolerated: ${plan.maxFailures}`);
        console.log(`depends on (all live): ${dependencies.length ? dependencies.join(', ') : 'nothing'}`);
        return;
      }
      const client = await connectClient(cfg);
      const holder = await runningLeaseHolder(client, cfg, service);
      if (holder) throw new UserError(`refused: ${describeHolder(service, holder)}`);
      const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY && !opts.yes);
      const workflowId = `deploy-${service}`;
      const { by, signed } = await steering(cfg, 'deploy', workflowId, release.id);
      const handle = await startRollout(
        client,
        cfg,
        { service, release, selector, strategy, by, signed, pauseAfterCanary: interactive },
        workflowId,
      );
      console.log(`started ${workflowId}`);
      let last = '';
      for (;;) {
        const described = await handle.describe();
        const status: RolloutStatus | undefined = await handle.query(rolloutStatusQuery).catch(() => undefined);
        if (status) {
          const analysis =
            status.phase === 'analysis' && status.analysis ? `\n  analysis of ${viewLine(status.analysis)}` : '';
          const line = `${status.phase.padEnd(12)} ${bar(status.done, status.total)} failed ${status.failed}/${status.maxFail}${analysis}`;
          if (line !== last) console.log(line);
          last = line;
          if (status.paused && interactive) {
            console.log(status.pauseReason ?? 'paused');
            if (await ask('continue?'))
              await update(async () =>
                handle.executeUpdate(resumeRollout, { args: [await steering(cfg, 'resume', workflowId)] }),
              );
            else
              await update(async () =>
                handle.executeUpdate(rollbackRollout, {
                  args: [{ ...(await steering(cfg, 'rollback', workflowId)), reason: 'operator answered no' }],
                }),
              );
          }
        }
        if (described.status.name !== 'RUNNING') {
          if (described.status.name === 'COMPLETED') {
            console.log(`deployed ${release.id}`);
            return;
          }
          await handle.result().catch((err) => {
            throw new UserError(`deploy ${described.status.name.toLowerCase()}: ${err.cause?.message ?? err.message}`);
          });
          return;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    });

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

  program
    .command('hosts')
    .description("every host's state: the release of each service, previous, last stable, by whom and which run")
    .option('--json')
    .action(async (opts, cmd) => {
      const cfg = config(cmd);
      const hosts = await createHostActivities(cfg).describeHosts();
      print(opts.json, hosts, () =>
        hosts
          .map((h) => {
            const services = Object.entries(h.services).map(([name, s]) =>
              'error' in s
                ? `  ${name}: ${s.error}`
                : `  ${name}: ${s.state.current ?? '-'} (previous ${s.state.previous ?? '-'}, stable ${s.state.lastStable ?? '-'}) by ${s.state.deployedBy ?? '-'} in ${s.state.runId ?? '-'} at ${s.state.deployedAt ?? '-'}`,
            );
            return [
              `${h.host} ${h.address} [${h.groups.join(',')}] ${h.pooled === false ? 'DEPOOLED' : 'pooled'}`,
              ...services,
            ].join('\n');
          })
          .join('\n'),
      );
    });

  const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
  const schedule = program
    .command('schedule')
    .description('the weekly Temporal Schedule that starts a train with version auto');
  schedule
    .command('create')
    .addOption(new Option('--day <day>', 'day of the week').choices(DAYS).default('tuesday'))
    .option('--at <HH:MM>', 'time of day', '07:00')
    .option('--timezone <zone>', 'IANA time zone', 'UTC')
    .option('--id <id>', 'schedule id', 'weekly-train')
    .action(async (opts, cmd) => {
      const cfg = config(cmd);
      const at = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(opts.at);
      if (!at) throw new UserError('--at takes a time such as 07:00');
      if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(opts.id))
        throw new InvalidNameError('schedule id', opts.id, 'expected letters, digits, dashes');
      try {
        new Intl.DateTimeFormat('en', { timeZone: opts.timezone });
      } catch {
        throw new UserError(
          `unknown time zone ${JSON.stringify(opts.timezone)}; use an IANA name such as Europe/Berlin`,
        );
      }
      const { version: _auto, ...input } = trainInputFrom(cfg, 'auto', { by: `schedule ${opts.id}` });
      const change: ScheduleChange = {
        change: 'create',
        scheduleId: opts.id,
        dayOfWeek: opts.day.toUpperCase(),
        hour: Number(at[1]),
        minute: Number(at[2]),
        timezone: opts.timezone,
        trainInput: input,
        taskQueue: cfg.temporal.taskQueue,
      };
      await changeSchedule(cfg, change);
      console.log(
        `schedule ${opts.id}: a train with the next version every ${opts.day} at ${opts.at} ${opts.timezone}`,
      );
    });
  schedule
    .command('list')
    .option('--json')
    .action(async (opts, cmd) => {
      const client = await connectClient(config(cmd));
      const found: { id: string; next?: string }[] = [];
      for await (const s of client.schedule.list())
        found.push({ id: s.scheduleId, next: s.info.nextActionTimes[0]?.toISOString() });
      print(opts.json, found, () =>
        found.length ? found.map((s) => `${s.id}  next: ${s.next ?? '-'}`).join('\n') : 'no schedules',
      );
    });
  schedule
    .command('delete')
    .option('--id <id>', 'schedule id', 'weekly-train')
    .action(async (opts, cmd) => {
      console.log(await changeSchedule(config(cmd), { change: 'delete', scheduleId: opts.id }));
    });

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

  program
    .command('demo')
    .description('npm start: dev server, sandbox, worker, and a whole train with auto-approval')
    .action(async (_o, cmd) => {
      await runDemo(config(cmd));
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    // Commander has printed its message already; help asked for is not an error, a usage error is bad input.
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    if (err instanceof ConfigError || err instanceof UserError || err instanceof InvalidNameError) {
      console.error(`signalbox: ${err.message}`);
      process.exit(2);
    }
    console.error(`signalbox: ${(err as Error).stack ?? err}`);
    process.exit(1);
  }
}
