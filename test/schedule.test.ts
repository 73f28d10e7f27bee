// The weekly Schedule: it starts train-<next version> through the dispatcher, never the same train twice.
import { afterEach, describe, expect, it } from 'vitest';
import { cli, startSandbox, waitFor, NEW, type Sandbox } from './helpers';

let sandbox: Sandbox | undefined;

afterEach(async () => {
  await sandbox?.stop();
  sandbox = undefined;
});

describe('weekly schedule', () => {
  it('starts the next train once per firing, lists and deletes, and refuses bad input', async () => {
    sandbox = await startSandbox();
    for (const [args, message] of [
      [['--at', '25:00'], /--at takes a time such as 07:00/],
      [['--timezone', 'Mars/Olympus'], /unknown time zone "Mars\/Olympus"/],
      [['--day', 'funday'], /argument 'funday' is invalid/],
    ] as const) {
      const refused = await cli(sandbox, ['schedule', 'create', ...args]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(message);
    }
    expect(JSON.parse((await cli(sandbox, ['schedule', 'list', '--json'])).stdout)).toEqual([]);

    const created = await cli(sandbox, [
      'schedule',
      'create',
      '--day',
      'tuesday',
      '--at',
      '07:00',
      '--timezone',
      'Europe/Berlin',
    ]);
    expect(created.stderr).toBe('');
    expect(created.stdout).toContain('every tuesday at 07:00 Europe/Berlin');
    const listed = await waitFor('the schedule to be listed', async () => {
      const list = JSON.parse((await cli(sandbox!, ['schedule', 'list', '--json'])).stdout) as {
        id: string;
        next?: string;
      }[];
      return list.length > 0 && list;
    });
    expect(listed[0].id).toBe('weekly-train');
    const next = new Date(listed[0].next!);
    expect(next.getUTCDay()).toBe(2); // Tuesday
    expect(next.getUTCHours()).toBe(6); // 07:00 in Berlin is 06:00 UTC in winter
    expect((await cli(sandbox, ['schedule', 'create'])).stderr).toMatch(/already exists; delete it first/);

    const schedule = sandbox.client.schedule.getHandle('weekly-train');
    const results = async () => {
      const actions = (await schedule.describe()).info.recentActions;
      return Promise.all(
        actions.map((a: any) => sandbox!.client.workflow.getHandle(a.action.workflow.workflowId).result()),
      );
    };
    await schedule.trigger();
    expect(await waitFor('the first firing', async () => (await results()).length === 1 && (await results()))).toEqual([
      `started train-${NEW}`,
    ]);
    const train = sandbox.client.workflow.getHandle(`train-${NEW}`);
    expect((await train.describe()).status.name).toBe('RUNNING');
    await schedule.trigger();
    expect(
      (await waitFor('the second firing', async () => (await results()).length === 2 && (await results())))[1],
    ).toBe(`train-${NEW} already exists; nothing started`);

    expect((await cli(sandbox, ['schedule', 'delete'])).stdout).toContain('deleted schedule weekly-train');
    expect(JSON.parse((await cli(sandbox, ['schedule', 'list', '--json'])).stdout)).toEqual([]);
    await train.terminate('test over');
  });
});
