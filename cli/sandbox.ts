// signalbox sandbox: the sandbox fleet on this machine, and the faults that make a version misbehave in it.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, type Command, type OptionValues } from 'commander';
import { sandboxDir } from '../activities/inventory';
import { checkStation, checkVersion } from '../workflows/names';
import { createFleet, readFleet, serverPid, startFleetServer, stopFleetServer } from '../sandbox/fleet';
import { faultsFile, serveFleet, type FaultFile, type GroupFault } from '../sandbox/server';
import { SANDBOX_WIKIS } from '../sandbox/wikis';
import { CLI_ENTRY, UserError } from './client';
import { config, print, shareOfOne, wholeNumber } from './common';

export function registerSandbox(program: Command): void {
  const sandbox = program.command('sandbox').description('the sandbox fleet on this machine');
  sandbox
    .command('up')
    .description('create the fleet (once) and start its app servers')
    .option('--hosts <n>', 'number of hosts (1 to 5000)', wholeNumber(1, 5000))
    .action(sandboxUp);
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
  sandbox.command('status').option('--json').action(sandboxStatus);
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
    .action(setFault);
}

async function sandboxUp(opts: OptionValues, cmd: Command): Promise<void> {
  const cfg = config(cmd);
  const hosts = opts.hosts ?? cfg.fleet.sandbox?.hosts ?? 12;
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > 5000)
    throw new UserError('--hosts takes a whole number from 1 to 5000');
  const traffic = cfg.fleet.sandbox?.trafficPerSecond ?? 40;
  const fleet = await createFleet(cfg.home, hosts, traffic, undefined, cfg.fleet.sandbox);
  const pid = await startFleetServer(cfg.home, CLI_ENTRY);
  console.log(
    `sandbox: ${fleet.hosts.length} hosts up (server pid ${pid}); control and load balancer at ${fleet.controlUrl}${fleet.seed === undefined ? '' : `; traffic seed ${fleet.seed}`}`,
  );
}

async function sandboxStatus(opts: OptionValues, cmd: Command): Promise<void> {
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
}

// --wiki is repeatable and takes commas; a name the sandbox does not serve is refused, naming the ones it does.
function wikiList(value: string, previous: string[] = []): string[] {
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
}

function setFault(version: string, opts: OptionValues, cmd: Command): void {
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
  console.log(opts.clear ? `cleared faults of ${version}` : `fault set: ${version} ${JSON.stringify(faults[version])}`);
}
