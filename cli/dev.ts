// signalbox setup, dev, worker and demo: what runs signalbox on this machine.
import type { Command } from 'commander';
import { runWorker } from '../workers/worker';
import { runSetup } from '../tools/setup';
import { devServerPid, startDevServer, stopDevServer } from '../tools/temporal-runtime';
import { config } from './common';
import { runDemo } from './demo';

/** setup, dev and worker. */
export function registerDev(program: Command): void {
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
}

/** demo, registered last so it is listed last. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('npm start: dev server, sandbox, worker, and a whole train with auto-approval')
    .action(async (_o, cmd) => {
      await runDemo(config(cmd));
    });
}
