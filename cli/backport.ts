// signalbox backport: the daily path from a reviewed change to production (issue 18). `backport plan` reads the
// changes and everything they pull in, and says what would go, in which order and sync, or why not: it merges and
// deploys nothing.
import type { Command } from 'commander';
import { createBackportActivities } from '../activities/backport';
import { describeRefusal, parseChangeRef, planBackport, type ChangeRef } from '../workflows/backport/changes';
import { UserError } from './client';
import { config, print } from './common';

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
