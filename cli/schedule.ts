// signalbox schedule: the weekly Temporal Schedule that starts a train with version auto. Changes are signed.
import { Option, type Command, type OptionValues } from 'commander';
import type { SignalboxConfig } from '../config/load';
import type { ScheduleChange } from '../workflows/definitions';
import { InvalidNameError } from '../workflows/names';
import { connectClient, trainInputFrom, UserError } from './client';
import { config, print } from './common';
import { steering } from './sign';

const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

export function registerSchedule(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('the weekly Temporal Schedule that starts a train with version auto');
  schedule
    .command('create')
    .addOption(new Option('--day <day>', 'day of the week').choices(DAYS).default('tuesday'))
    .option('--at <HH:MM>', 'time of day', '07:00')
    .option('--timezone <zone>', 'IANA time zone', 'UTC')
    .option('--id <id>', 'schedule id', 'weekly-train')
    .action(createSchedule);
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
}

async function createSchedule(opts: OptionValues, cmd: Command): Promise<void> {
  const cfg = config(cmd);
  const at = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(opts.at);
  if (!at) throw new UserError('--at takes a time such as 07:00');
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(opts.id))
    throw new InvalidNameError('schedule id', opts.id, 'expected letters, digits, dashes');
  try {
    new Intl.DateTimeFormat('en', { timeZone: opts.timezone });
  } catch {
    throw new UserError(`unknown time zone ${JSON.stringify(opts.timezone)}; use an IANA name such as Europe/Berlin`);
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
  console.log(`schedule ${opts.id}: a train with the next version every ${opts.day} at ${opts.at} ${opts.timezone}`);
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
