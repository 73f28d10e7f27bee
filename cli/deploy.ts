// signalbox deploy <release>: roll a release out with canaries and batches, following it at the terminal.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { Option, type Command, type OptionValues } from 'commander';
import { ApplicationFailure } from '@temporalio/common';
import type { SignalboxConfig } from '../config/load';
import { createHostActivities, selectHosts, type HostSelector } from '../activities/hosts';
import { loadInventory } from '../activities/inventory';
import type { Release } from '../activities/releases';
import { describeHolder, runningLeaseHolder } from '../activities/lease';
import { resumeRollout, rollbackRollout, rolloutStatusQuery, type RolloutStatus } from '../workflows/definitions';
import { checkServiceName, parseAmount } from '../workflows/names';
import { viewLine } from '../workflows/analysis/index';
import { planRollout, type RolloutPlan, type Strategy } from '../workflows/plan';
import { connectClient, startRollout, update, UserError } from './client';
import { ask, bar, config, groupName, hostList, resolveRelease } from './common';
import { steering } from './sign';

type RolloutHandle = Awaited<ReturnType<typeof startRollout>>;

export function registerDeploy(program: Command): void {
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
    .action(deploy);
}

async function deploy(spec: string, opts: OptionValues, cmd: Command): Promise<void> {
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
  const { current, canaryHosts, idleHosts } = await hostActivities.currentReleases({ service, release, selector });
  const plan = planRollout(current, release.id, { ...strategy, canaryHosts, idleHosts }); // also checks the amounts
  const { dependencies } = await hostActivities.checkDependsOn({ service, release, selector }).catch((err) => {
    throw new UserError((err as Error).message);
  });
  if (opts.dryRun) {
    printDryRun(cfg, service, release, current, plan, dependencies);
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
  await followRollout(cfg, handle, workflowId, release, interactive);
}

/** --dry-run: each host's move, the file changes from each release it moves from, and the dependencies. */
function printDryRun(
  cfg: SignalboxConfig,
  service: string,
  release: Release,
  current: Record<string, string | null>,
  plan: RolloutPlan,
  dependencies: string[],
): void {
  console.log(`dry run: ${release.id} to ${service} on ${Object.keys(current).length} hosts; nothing is touched`);
  console.log(`already on it: ${plan.alreadyOnRelease.length ? plan.alreadyOnRelease.join(', ') : 'none'}`);
  const staging = loadInventory(cfg).stagingDir;
  for (const wave of plan.waves) {
    console.log(`${wave.name}:`);
    for (const host of wave.hosts) console.log(`  ${host}: ${current[host] ?? '(nothing)'} -> ${release.id}`);
  }
  const from = [...new Set(plan.waves.flatMap((w) => w.hosts.map((h) => current[h])).filter((r): r is string => !!r))];
  for (const old of from) {
    const diff = (() => {
      try {
        return execFileSync(
          'diff',
          ['-ru', path.join(staging, service, old), path.join(staging, service, release.id)],
          {
            encoding: 'utf8',
          },
        );
      } catch (err) {
        return (err as { stdout?: string }).stdout ?? '';
      }
    })();
    console.log(`changes from ${old}:\n${diff.trim() || '(no file changes)'}`);
  }
  console.log(`max failures tolerated: ${plan.maxFailures}`);
  console.log(`depends on (all live): ${dependencies.length ? dependencies.join(', ') : 'nothing'}`);
}

/** Prints the rollout's progress until it closes; when interactive, asks at each pause whether to go on. */
async function followRollout(
  cfg: SignalboxConfig,
  handle: RolloutHandle,
  workflowId: string,
  release: Release,
  interactive: boolean,
): Promise<void> {
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
}
