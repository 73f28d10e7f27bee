// signalbox: the command line. Every command checks its input before it touches a host or starts a workflow.
// One file per command group registers its commands; they are added in the order `signalbox --help` lists them.
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load';
import { InvalidNameError } from '../workflows/names';
import { UserError } from './client';
import { registerAnalysis } from './analysis';
import { registerBackport } from './backport';
import { registerDeploy } from './deploy';
import { registerDemo, registerDev } from './dev';
import { registerHosts } from './hosts';
import { registerRollout } from './rollout';
import { registerSandbox } from './sandbox';
import { registerSchedule } from './schedule';
import { registerTrain } from './train';

export function buildCli(): Command {
  const program = new Command('signalbox')
    .description('Durable, staged deploys of code and config to a fleet, as Temporal workflows')
    .option('-c, --config <file>', 'configuration file (default: signalbox.yml, or SIGNALBOX_CONFIG)')
    // Set before any subcommand is added, so every one inherits them: usage errors read and exit like ours.
    .configureOutput({ outputError: (text, write) => write(`signalbox: ${text.replace(/^error: /, '')}`) })
    .exitOverride()
    .showHelpAfterError();

  registerDev(program); // setup, dev, worker
  registerSandbox(program);
  registerTrain(program);
  registerDeploy(program);
  registerBackport(program);
  registerRollout(program);
  registerHosts(program);
  registerSchedule(program);
  registerAnalysis(program);
  registerDemo(program);
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
