// signalbox backport: the daily path from a reviewed change to production. `backport <change>...` starts the
// backport-<n> workflow and follows it (in a terminal it asks at each confirmation); confirm, abort and ack steer
// it; `backport plan` says what would go, in which order and sync, or why not, and merges and deploys nothing.
import type { Command } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import type { SignalboxConfig } from '../config/load';
import { createBackportActivities } from '../activities/backport';
import {
  abortBackport,
  ackBackport,
  backportStatusQuery,
  backportWorkflowId,
  confirmBackport,
  type BackportStatus,
} from '../workflows/definitions';
import type { BackportInput } from '../workflows/backport';
import { describeRefusal, parseChangeRef, planBackport, type ChangeRef } from '../workflows/backport/changes';
import { renderBackport } from '../workflows/render';
import { connectClient, startBackport, update, UserError } from './client';
import { ask, config, print } from './common';
import { backportReport } from './report';
import { steering } from './sign';

/** Every reference read first, every bad one reported at once: bad input reaches no forge. */
export function changeRefs(texts: string[]): ChangeRef[] {
  const problems: string[] = [];
  const refs = texts.flatMap((text) => {
    try {
      return [parseChangeRef(text)];
    } catch (err) {
      problems.push((err as Error).message);
      return [];
    }
  });
  if (problems.length) throw new UserError(problems.join('\n'));
  return refs;
}

export function registerBackport(program: Command): void {
  const backport = program
    .command('backport')
    .description('ship reviewed changes to production between trains, the way the daily backport windows do');
  backport
    .command('start <change...>', { isDefault: true })
    .description('backport these changes: check, merge, the test servers, a confirmation, then production')
    .option('--emergency', 'outside the backport windows: an approver signs for it, and it is recorded')
    .option('--detach', 'start it and return; follow with `backport status`')
    .option('--json', 'print the final status as JSON instead of the progress view')
    .action(async (texts: string[], opts, cmd) => {
      const cfg = config(cmd);
      const refs = changeRefs(texts);
      const workflowId = backportWorkflowId(refs[0].number);
      const client = await connectClient(cfg);
      const numbers = refs.map((r) => r.number).join(',');
      const { by, signed } = await steering(cfg, opts.emergency ? 'emergency' : 'backport', workflowId, numbers);
      const input: BackportInput = {
        changes: refs,
        by,
        signed,
        emergency: Boolean(opts.emergency),
        codeService: cfg.train.codeService,
        configService: cfg.train.configService,
        strategy: cfg.rollout,
        testHosts: cfg.backport.testHosts,
        confirmTimeoutMs: cfg.backport.confirmTimeoutMs,
        windows: cfg.backport.windows,
      };
      const handle = await startBackport(client, cfg, input, workflowId);
      if (!opts.json) console.log(`started ${workflowId}; \`signalbox backport status ${refs[0].number}\` shows it`);
      if (opts.detach) return;
      const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY && !opts.json);
      await follow(cfg, handle, refs[0].number, interactive, Boolean(opts.json));
    });
  backport
    .command('status <n>')
    .description('where backport-<n> stands: each sync, its changes, and what it waits for')
    .option('--json')
    .action(async (n: string, opts, cmd) => {
      const handle = await backportHandle(cmd, n);
      const status = await update(() => handle.query(backportStatusQuery));
      print(opts.json, status, () => renderBackport(status));
    });
  backport
    .command('confirm <n>')
    .description('the change works on the test servers (or ship the extra commits, or retry the merge): go on')
    .option('--reason <text>')
    .action(async (n: string, opts, cmd) => {
      const handle = await backportHandle(cmd, n);
      // The confirmation answers the question asked now, and only it: a later one needs its own.
      const { question } = await update(() => handle.query(backportStatusQuery));
      const request = { ...(await steering(config(cmd), 'confirm', handle.workflowId)), reason: opts.reason, question };
      console.log(renderBackport(await update(() => handle.executeUpdate(confirmBackport, { args: [request] }))));
    });
  backport
    .command('abort <n>')
    .description('before production: revert in the forge and sync the test servers back')
    .requiredOption('--reason <text>', 'why, for the records')
    .action(async (n: string, opts, cmd) => {
      const handle = await backportHandle(cmd, n);
      const request = { ...(await steering(config(cmd), 'rollback', handle.workflowId)), reason: opts.reason };
      await update(() => handle.executeUpdate(abortBackport, { args: [request] }));
      console.log(`abort of ${handle.workflowId} asked: it reverts and syncs the test servers back`);
    });
  backport
    .command('ack <n>')
    .description('after a rollback: say what comes next ("merge a fix or revert"), which closes the backport')
    .requiredOption('--reason <text>', 'what comes next, such as "fix in 123457"')
    .action(async (n: string, opts, cmd) => {
      const handle = await backportHandle(cmd, n);
      const request = { ...(await steering(config(cmd), 'ack', handle.workflowId)), reason: opts.reason };
      console.log(renderBackport(await update(() => handle.executeUpdate(ackBackport, { args: [request] }))));
    });
  backport
    .command('report <n>')
    .description("backport-<n>'s timeline, as `train report` gives a train's")
    .action(async (n: string, _opts, cmd) => {
      console.log(await backportReport(await connectClient(config(cmd)), (await backportHandle(cmd, n)).workflowId));
    });
  backport
    .command('list')
    .description(
      'open changes on config main or a live code branch, and what stands against each (plan checks the rest)',
    )
    .option('--json')
    .action(async (opts, cmd) => {
      const open = await createBackportActivities(config(cmd)).backportable();
      print(opts.json, open, () =>
        open.length
          ? open
              .map(
                (c) =>
                  `${c.number} ${c.project} ${c.branch}: ${c.subject} (${c.owner}) ${c.blocked ? `cannot go: ${c.blocked}` : c.approved ? 'nothing against it (+2)' : 'nothing against it'}`,
              )
              .join('\n')
          : 'no open changes on config main or a live code branch',
      );
    });
  backport
    .command('plan')
    .argument('<change...>', 'Gerrit change numbers or URLs (several go together)')
    .description('check the changes and what they pull in, and show the order they would go in; changes nothing')
    .option('--json')
    .action(async (texts: string[], opts, cmd) => {
      const refs = changeRefs(texts);
      const world = await createBackportActivities(config(cmd)).gatherBackport({ changes: refs });
      const plan = planBackport(world);
      print(opts.json, { plan, changes: world.changes }, () => {
        if (plan.refusals.length)
          return `refused, nothing would be merged:\n${plan.refusals.map((r) => `  ${describeRefusal(r, world)}`).join('\n')}`;
        return plan.phases
          .map((phase, i) => {
            const lines = phase.changes.map((n) => {
              const c = world.changes[n];
              const merged = plan.alreadyMerged.includes(n) ? ' (merged already: deployed only)' : '';
              return `    ${n} ${c.subject} (${c.owner}${c.tasks.length ? `, ${c.tasks.join(' ')}` : ''})${merged}`;
            });
            return [`  sync ${i + 1}: ${phase.project} ${phase.branch}`, ...lines].join('\n');
          })
          .join('\n');
      });
      if (plan.refusals.length) process.exitCode = 1;
    });
}

async function backportHandle(cmd: Command, n: string): Promise<WorkflowHandle> {
  if (!/^\d{1,15}$/.test(n.trim()) || Number(n) < 1)
    throw new UserError(
      `${JSON.stringify(n)} is not a backport: give the number of its first change, as in backport-<n>`,
    );
  const number = Number(n);
  return (await connectClient(config(cmd))).workflow.getHandle(backportWorkflowId(number));
}

/** The progress view: a line per step with its time, and the question when one is asked; in a terminal, asked here. */
async function follow(
  cfg: SignalboxConfig,
  handle: WorkflowHandle,
  n: number,
  interactive: boolean,
  json: boolean,
): Promise<void> {
  const started = Date.now();
  let last = '';
  let asked = 0;
  for (;;) {
    const status: BackportStatus | undefined = await handle.query(backportStatusQuery).catch(() => undefined);
    if (status && !json) {
      const sync = status.syncs[status.current];
      const line = `${status.step}${sync ? ` (sync ${status.current + 1} of ${status.syncs.length}: ${sync.project} ${sync.branch})` : ''}${status.waitingFor ? `: ${status.waitingFor}` : ''}`;
      if (line !== last) console.log(`[${Math.round((Date.now() - started) / 1000)} s] ${line}`);
      last = line;
    }
    if (status?.step === 'awaiting-ack') {
      // Rolled back and reverted: the backport stays open for a person, and this command says so and ends.
      console.log(renderBackport(status));
      process.exitCode = 1;
      return;
    }
    if (status?.step === 'awaiting-confirmation' && interactive && status.question !== asked) {
      asked = status.question;
      const yes = await ask('confirm?');
      const question = status.question;
      const run = yes
        ? async () =>
            handle.executeUpdate(confirmBackport, {
              args: [{ ...(await steering(cfg, 'confirm', handle.workflowId)), question }],
            })
        : async () =>
            handle.executeUpdate(abortBackport, {
              args: [{ ...(await steering(cfg, 'rollback', handle.workflowId)), reason: 'operator answered no' }],
            });
      await update(run);
    }
    const described = await handle.describe();
    if (described.status.name !== 'RUNNING') {
      const final: BackportStatus | undefined = await handle.result().catch((err) => {
        throw new UserError(
          `backport ${n} ${described.status.name.toLowerCase()}: ${err.cause?.message ?? err.message}`,
        );
      });
      if (json) console.log(JSON.stringify(final, null, 2));
      else console.log(final ? renderBackport(final) : `backport ${n} ${described.status.name.toLowerCase()}`);
      if (final?.step !== 'done') process.exitCode = 1;
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
