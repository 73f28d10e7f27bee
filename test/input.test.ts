// Input that cannot hurt: an empty or unknown host selector, an amount over 100% or a number that is not a number
// is refused with a clear error (exit 2 from the CLI, BadInput from the engine), and no host, staged release,
// fault or workflow changes. Real CLI in a child process, real sandbox fleet, real Temporal dev server.
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetFile, loadInventory } from '../activities/inventory';
import { stageFromForge, type Release } from '../activities/releases';
import type { HostSelector } from '../activities/hosts';
import { faultsFile } from '../sandbox/server';
import { serverPid } from '../sandbox/fleet';
import { startRollout } from '../cli/client';
import { cli, NEW, serviceOnEveryHost, startSandbox, STRATEGY, type Sandbox } from './helpers';

let s: Sandbox;

beforeAll(async () => {
  s = await startSandbox();
  // A config change not deployed yet: any refusal that let the deploy through would move hosts onto it.
  await s.forge.land({
    repo: 'mediawiki-config',
    branch: 'main',
    files: { 'InputTest.php': '<?php $wgInputTest = true;\n' },
    subject: 'Input test change',
    changeId: 'I-input-test',
    author: 'tester',
  });
});

afterAll(async () => {
  await s?.stop();
});

const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null);
const listing = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

/** Everything bad input must leave alone: both services on every host, staged releases, the fleet and its faults. */
async function everything() {
  const staging = loadInventory(s.config).stagingDir;
  return {
    config: await serviceOnEveryHost(s, 'mediawiki-config'),
    code: await serviceOnEveryHost(s, 'mediawiki'),
    staged: { config: listing(path.join(staging, 'mediawiki-config')), code: listing(path.join(staging, 'mediawiki')) },
    fleet: read(fleetFile(s.home)),
    faults: read(faultsFile(s.home)),
    fleetServer: serverPid(s.home),
  };
}

/** Workflows a refused command might have started, asked by id (consistent), plus whatever visibility lists. */
async function workflowsStarted(): Promise<string[]> {
  const ids = [
    'deploy-mediawiki-config',
    'deploy-mediawiki',
    'lease-mediawiki-config',
    'lease-mediawiki',
    `train-${NEW}`,
  ];
  const found: string[] = [];
  for (const id of ids) {
    await s.client.workflow
      .getHandle(id)
      .describe()
      .then(
        () => found.push(id),
        (err) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        },
      );
  }
  for await (const wf of s.client.workflow.list()) if (!found.includes(wf.workflowId)) found.push(wf.workflowId);
  return found;
}

/** Runs each command through the real CLI (two at a time: two cores) and expects exit 2 with its message. */
async function expectRefused(cases: [string[], RegExp][]): Promise<void> {
  const before = await everything();
  const startedBefore = await workflowsStarted();
  const queue = [...cases];
  await Promise.all(
    [0, 1].map(async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [args, message] = next;
        const result = await cli(s, args);
        expect(result.code, `${args.join(' ')}\n${result.stderr}`).toBe(2);
        expect(result.stderr.split('\n')[0], args.join(' ')).toMatch(/^signalbox: /);
        expect(result.stderr, args.join(' ')).toMatch(message);
        expect(result.stdout, args.join(' ')).not.toMatch(/started|deployed|fault set/);
      }
    }),
  );
  expect(await everything()).toEqual(before);
  expect(await workflowsStarted()).toEqual(startedBefore);
}

describe('input that cannot hurt', () => {
  it('deploy refuses empty, unknown or conflicting host selectors and amounts out of range, touching nothing', async () => {
    const deploy = (...args: string[]) => ['deploy', 'main', '--service', 'mediawiki-config', '--yes', ...args];
    const badList =
      /option '--hosts <list>' argument '.*' is invalid\. expected host names separated by commas, such as mw1001,mw1002, with no empty name/;
    const badGroup = /option '--group <group>' argument '.*' is invalid\. expected a group name such as canary/;
    await expectRefused([
      [deploy('--hosts', ''), badList],
      [deploy('--hosts', 'mw1001,,mw1002'), badList],
      [deploy('--group', ''), badGroup],
      [deploy('--group', ' '), badGroup],
      [
        deploy('--hosts', 'mw1001', '--group', 'canary'),
        /option '--group <group>' cannot be used with option '--hosts <list>'/,
      ],
      [deploy('--hosts', 'mw1001,mw9999'), /unknown hosts: mw9999; `signalbox hosts` lists the 8 hosts there are/],
      [deploy('--group', 'nosuch'), /no host is in group "nosuch"; groups there are: appserver, canary/],
      [deploy('--canary', '150%'), /invalid --canary "150%": a percentage must be between 0% and 100%/],
      [
        deploy('--batch', '-1'),
        /invalid --batch "-1": an amount cannot be negative; expected a whole count such as 5, or a percentage from 0% to 100%/,
      ],
    ]);
  });

  it('numeric options take whole numbers in range or are refused, naming the option and the form', async () => {
    const watch = /option '--watch-ms <ms>' argument '.*' is invalid\. expected a whole number from 0 to 604800000/;
    await expectRefused([
      [['train', 'start', NEW, '--auto-approve', '--watch-ms', 'abc'], watch],
      [['train', 'start', NEW, '--auto-approve', '--watch-ms', '-1'], watch],
      [
        ['sandbox', 'up', '--hosts', 'abc'],
        /option '--hosts <n>' argument 'abc' is invalid\. expected a whole number from 1 to 5000/,
      ],
      [
        ['sandbox', 'fault', NEW, '--error-rate', ''],
        /option '--error-rate <rate>' argument '' is invalid\. expected a number from 0 to 1/,
      ],
      [['sandbox', 'fault', NEW, '--error-rate', '1.5'], /option '--error-rate <rate>' argument '1\.5' is invalid/],
      [
        ['sandbox', 'fault', NEW, '--error-rate', '0.5', '--latency-ms', ''],
        /option '--latency-ms <ms>' argument '' is invalid\. expected a whole number from 0 to 600000/,
      ],
    ]);
  });

  it('the engine refuses an empty host list, an empty name or group, and both at once, as BadInput, touching no host', async () => {
    const release: Release = await stageFromForge(
      s.forge,
      loadInventory(s.config).stagingDir,
      'mediawiki-config',
      'mediawiki-config',
      'refs/heads/main',
      'config',
    );
    const before = await serviceOnEveryHost(s, 'mediawiki-config');
    const cases: [HostSelector, RegExp][] = [
      [{ hosts: [] }, /the host list is empty; name at least one host/],
      [{ hosts: ['mw1001', ''] }, /the host list \["mw1001",""\] has an empty name/],
      [{ hosts: ['mw1001', 'mw1001'] }, /names mw1001 more than once/],
      [{ group: '' }, /the group name "" is empty; name a group such as canary/],
      [{ hosts: ['mw1001'], group: 'canary' }, /give a host list or a group, not both/],
    ];
    // One after another: concurrent rollouts of one service would be refused by its lease, not by the selector.
    const failures = [];
    for (const [i, [selector]] of cases.entries()) {
      const handle = await startRollout(
        s.client,
        s.config,
        { service: 'mediawiki-config', release, selector, strategy: STRATEGY, by: 'tester' },
        `bad-selector-${i}`,
      );
      failures.push(
        await handle.result().then(
          () => undefined,
          (err) => {
            // Workflow failure -> activity failure -> the ApplicationFailure select() threw.
            let cause = err as { cause?: unknown; type?: string; message?: string; nonRetryable?: boolean };
            while (cause.cause && !cause.type) cause = cause.cause as typeof cause;
            return cause;
          },
        ),
      );
    }
    failures.forEach((failure, i) => {
      expect(failure?.type, JSON.stringify(cases[i][0])).toBe('BadInput');
      expect(failure?.nonRetryable).toBe(true);
      expect(failure?.message).toMatch(cases[i][1]);
    });
    expect(await serviceOnEveryHost(s, 'mediawiki-config')).toEqual(before);
  });
});
