// Never make it worse: a rollback that cannot be verified never moves the fleet forward, one change at a time per
// service, one train in motion at a time, metrics that cannot be read hold the train, and no rollout starts
// thousands of children. Real Temporal dev server, real sandbox fleet, real CLI.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  approveStation,
  rolloutStatusQuery,
  resumeRollout,
  trainStatusQuery,
  type TrainStatus,
} from '../workflows/definitions';
import { groupBatches } from '../workflows/rollout';
import { salLine } from '../activities/notify';
import { planRollout } from '../workflows/plan';
import { startTrain, trainInputFrom, UserError } from '../cli/client';
import { freePort } from '../sandbox/fleet';
import {
  assertHostsConsistent,
  cli,
  configLinks,
  configMoving,
  liveVersions,
  NEW,
  OLD,
  refusal,
  rollout,
  startSandbox,
  waitFor,
  type Sandbox,
} from './helpers';

let sandbox: Sandbox | undefined;

afterEach(async () => {
  await sandbox?.stop();
  sandbox = undefined;
});

const setFaults = (s: Sandbox, faults: object) =>
  fs.writeFileSync(path.join(s.home, 'sandbox', 'faults.json'), JSON.stringify(faults));
const versionsServed = async (s: Sandbox) => new Set([...(await liveVersions(s)).values()].flatMap((v) => [...v]));

describe('never make it worse', () => {
  it('a rollback whose live check fails stays rolled back, blocks, and is finished by train resume', async () => {
    sandbox = await startSandbox({ configure: (c) => (c.train.verifyTimeoutMs = 3000) });
    const s = sandbox;
    const handle = await startTrain(
      s.client,
      s.config,
      trainInputFrom(s.config, NEW, { autoApprove: false, verifyTimeoutMs: 3000 }),
    );
    const state = (want: TrainStatus['state']) =>
      waitFor(
        `train ${want}`,
        async () => {
          const status = await handle.query(trainStatusQuery);
          return status.state === want && status;
        },
        90_000,
      );
    await state('awaiting-approval');
    await handle.executeUpdate(approveStation, { args: [{ by: 'alice' }] });
    await waitFor(
      'testwikis live',
      async () =>
        (await handle.query(trainStatusQuery)).station === 0 &&
        (await handle.query(trainStatusQuery)).state === 'awaiting-approval',
    );
    await handle.executeUpdate(approveStation, { args: [{ by: 'alice' }] });
    await waitFor(
      'group0 live',
      async () =>
        (await handle.query(trainStatusQuery)).station === 1 &&
        (await handle.query(trainStatusQuery)).state === 'awaiting-approval',
      90_000,
    );

    // The old version answers too slowly for the live-version check: the rollback cannot be verified.
    const slowOld = {
      groups: Object.fromEntries(
        ['testwikis', 'group0', 'group1', 'group2'].map((g) => [g, { errorRate: 0, latencyMs: 6000 }]),
      ),
    };
    setFaults(s, { [OLD]: slowOld });
    const rolledBack = await cli(s, ['train', 'rollback', NEW, '--reason', 'errors on group0']);
    expect(rolledBack.stderr).toBe('');
    expect(rolledBack.code).toBe(0);
    expect(rolledBack.stdout).toMatch(
      /blocked — roll back testwikis, group0 to 1\.41\.0-wmf\.25 did not finish: .*(do not show the expected version|hosts are not back on config-)/,
    );
    const blocked = await handle.query(trainStatusQuery);
    expect(blocked.station).toBe(-1);
    expect(blocked.blocker).toMatch(/Fleet now: mediawiki-config: 8 on config-[0-9a-f]{12}; every host pooled/);
    // Nothing moves forward before the rollback is finished.
    expect(await refusal(handle.executeUpdate(approveStation, { args: [{ by: 'alice' }] }))).toMatch(
      /a rollback has not reached every host yet/,
    );

    setFaults(s, {});
    expect([...(await waitFor('the old version answering quickly again', () => versionsServed(s)))]).toEqual([OLD]);
    await assertHostsConsistent(s, 'mediawiki-config');
    expect((await cli(s, ['train', 'resume', NEW])).code).toBe(0);
    const after = await state('rolled-back');
    expect(after.station).toBe(-1);
    expect([...(await versionsServed(s))]).toEqual([OLD]);
    expect((await cli(s, ['train', 'abort', NEW])).code).toBe(0);
    expect((await handle.result()).state).toBe('aborted');
  });

  it('one change at a time per service: a second rollout or CLI deploy is refused, naming the holder', async () => {
    sandbox = await startSandbox();
    const s = sandbox;
    const release = await configMoving(s, ['testwikis']);
    const before = await configLinks(s);
    const first = await rollout(
      s,
      release,
      { canary: '1', batch: '50%', maxFail: '0', fetchConcurrency: 80 },
      { pauseAfterCanary: true, id: 'first-deploy' },
    );
    await waitFor('canaries live and paused', async () => (await first.query(rolloutStatusQuery)).paused);

    const viaCli = await cli(s, ['deploy', 'main', '--service', 'mediawiki-config', '--yes']);
    expect(viaCli.code).toBe(2);
    expect(viaCli.stderr).toMatch(
      /refused: mediawiki-config is being changed by first-deploy \(started by tester.*, since .*\); one change at a time per service/,
    );
    // A workflow started past the CLI's check is refused by the lease itself, before it touches a host.
    const second = await rollout(
      s,
      release,
      { canary: null, batch: '100%', maxFail: '0', fetchConcurrency: 80 },
      { id: 'second-deploy' },
    );
    const refused = await second.result().then(
      () => undefined,
      (err) => String(err.cause?.cause?.message),
    );
    expect(refused).toMatch(/being changed by first-deploy/);
    const linksWhilePaused = await configLinks(s);
    expect(Object.keys(linksWhilePaused).filter((h) => linksWhilePaused[h] !== before[h])).toHaveLength(1); // the one canary

    await first.executeUpdate(resumeRollout, { args: [{ by: 'tester' }] });
    expect((await first.result()).phase).toBe('done');
    // Released: the next change goes ahead.
    const third = await rollout(
      s,
      release,
      { canary: null, batch: '100%', maxFail: '0', fetchConcurrency: 80 },
      { id: 'third-deploy' },
    );
    expect((await third.result()).phase).toBe('done');
  });

  it('a train move finds the service leased by a deploy: it blocks naming the holder, lands nothing, and moves once approved', async () => {
    sandbox = await startSandbox();
    const s = sandbox;
    const release = await configMoving(s, ['testwikis']);
    const headBefore = await s.forge.resolve('mediawiki-config', 'refs/heads/main');
    const deploy = await rollout(
      s,
      release,
      { canary: '1', batch: '50%', maxFail: '0', fetchConcurrency: 80 },
      { pauseAfterCanary: true, id: 'deploy-mediawiki-config' },
    );
    await waitFor('deploy paused after its canaries', async () => (await deploy.query(rolloutStatusQuery)).paused);
    const handle = await startTrain(s.client, s.config, trainInputFrom(s.config, NEW, { autoApprove: true }));
    const blocked = await waitFor(
      'train blocked',
      async () => {
        const status = await handle.query(trainStatusQuery);
        return status.state === 'blocked' && status;
      },
      90_000,
    );
    expect(blocked.blocker).toMatch(
      /^move group0 to 1\.41\.0-wmf\.26 failed: mediawiki-config is being changed by deploy-mediawiki-config \(started by tester/,
    );
    expect(blocked.station).toBe(0); // testwikis came with the deploy's release
    expect(await s.forge.resolve('mediawiki-config', 'refs/heads/main')).toBe(headBefore); // nothing landed
    await deploy.executeUpdate(resumeRollout, { args: [{ by: 'tester' }] });
    await deploy.result();
    await handle.executeUpdate(approveStation, { args: [{ by: 'alice' }] });
    const final = await handle.result();
    expect(final.state).toBe('complete');
    await assertHostsConsistent(s, 'mediawiki-config');
  });

  it('a train started again under its id after it was terminated lands fresh changes, never its old ones', async () => {
    sandbox = await startSandbox();
    const s = sandbox;
    const first = await startTrain(s.client, s.config, trainInputFrom(s.config, NEW, { autoApprove: false }));
    await waitFor('awaiting approval', async () => (await first.query(trainStatusQuery)).state === 'awaiting-approval');
    await first.executeUpdate(approveStation, { args: [{ by: 'alice' }] });
    await waitFor(
      'testwikis live',
      async () => {
        const status = await first.query(trainStatusQuery);
        return status.station === 0 && status.state === 'awaiting-approval';
      },
      90_000,
    );
    await first.terminate('operator stopped it');
    const again = await startTrain(s.client, s.config, trainInputFrom(s.config, NEW, { autoApprove: true }));
    const final = await again.result();
    expect(final.state).toBe('complete');
    expect([...(await versionsServed(s))]).toEqual([NEW]);
  });

  it('a wave that dies mid-rollout rolls every host it started on back, instead of leaving two releases', async () => {
    sandbox = await startSandbox();
    const s = sandbox;
    const release = await configMoving(s, ['testwikis']);
    const before = await configLinks(s);
    const handle = await rollout(
      s,
      release,
      { canary: '1', batch: '1', maxFail: '0', fetchConcurrency: 80 },
      { id: 'dies-mid-wave' },
    );
    // Terminate the first batch child caught running: as if its history were lost, or an operator killed it.
    let killed: string | undefined;
    await waitFor(
      'a batch child terminated',
      async () => {
        for (let n = 1; n <= 7 && !killed; n++) {
          const child = s.client.workflow.getHandle(`dies-mid-wave-batch-${n}`);
          const running = await child.describe().then(
            (d) => d.status.name === 'RUNNING',
            () => false,
          );
          if (
            running &&
            (await child.terminate('test: a wave dies').then(
              () => true,
              () => false,
            ))
          )
            killed = child.workflowId;
        }
        return killed;
      },
      60_000,
      20,
    );
    const failure = await handle.result().then(
      () => undefined,
      (err) => err.cause,
    );
    expect(failure?.type).toBe('RolloutRolledBack');
    expect(failure?.message).toMatch(
      /did not finish: .*; rolled back \d+ hosts to what they ran before; every host is on the release it ran before/,
    );
    expect(await configLinks(s)).toEqual(before);
    await assertHostsConsistent(s, 'mediawiki-config');
  });

  it('one train in motion at a time: a second train is refused until the first is at rest', async () => {
    sandbox = await startSandbox();
    const s = sandbox;
    const first = await startTrain(s.client, s.config, trainInputFrom(s.config, NEW, { autoApprove: false }));
    await waitFor(
      'first train awaiting approval',
      async () => (await first.query(trainStatusQuery)).state === 'awaiting-approval',
    );
    const next = '1.41.0-wmf.27';
    const refused = await startTrain(
      s.client,
      s.config,
      trainInputFrom(s.config, next, { autoApprove: false, fromVersion: OLD }),
    ).then(
      () => undefined,
      (err) => err,
    );
    expect(refused).toBeInstanceOf(UserError);
    expect(refused.message).toMatch(/another train is in motion: train-1\.41\.0-wmf\.26 \(awaiting-approval\)/);
    expect((await cli(s, ['train', 'abort', NEW])).code).toBe(0);
    await first.result();
    const second = await startTrain(
      s.client,
      s.config,
      trainInputFrom(s.config, next, { autoApprove: false, fromVersion: OLD }),
    );
    await waitFor('second train started', async () =>
      ['staging', 'awaiting-approval', 'blocked'].includes((await second.query(trainStatusQuery)).state),
    );
    expect((await cli(s, ['train', 'abort', next])).code).toBe(0);
  });

  it('metrics that cannot be read block the train where it is, instead of failing it', async () => {
    const downPort = await freePort(); // a Prometheus that is down: nothing listens there
    sandbox = await startSandbox({
      configure: (c) => {
        c.services['mediawiki-config'].analysis = {
          ...c.services['mediawiki-config'].analysis,
          source: 'prometheus',
          prometheusUrl: `http://127.0.0.1:${downPort}`,
        };
      },
    });
    const s = sandbox;
    const before = await configLinks(s);
    const handle = await startTrain(
      s.client,
      s.config,
      trainInputFrom(s.config, NEW, { autoApprove: true, strategy: { ...s.config.rollout, canary: null } }),
    );
    const blocked = await waitFor(
      'train blocked',
      async () => {
        const status = await handle.query(trainStatusQuery);
        return status.state === 'blocked' && status;
      },
      90_000,
    );
    expect(blocked.blocker).toMatch(
      /^testwikis: metrics could not be read at testwikis before its move: .+; it stays where it is until a person approves or rolls back\. Fleet now: mediawiki-config: 8 on config-/,
    );
    expect(blocked.station).toBe(-1);
    expect((await handle.describe()).status.name).toBe('RUNNING');
    expect(await configLinks(s)).toEqual(before);
    expect((await cli(s, ['train', 'abort', NEW])).code).toBe(0);
  });

  it('writes a SAL line once when the activity is retried after a crash between the append and its marker', async () => {
    sandbox = await startSandbox({ worker: false });
    const s = sandbox;
    const entry = { id: 'train-test#7', at: new Date().toISOString(), by: 'alice', what: 'group1 to 1.41.0-wmf.26' };
    const salFile = s.config.notify.salFile;
    fs.mkdirSync(path.dirname(salFile), { recursive: true });
    fs.appendFileSync(salFile, `${salLine(entry)}\n`); // what the crashed attempt had written
    await s.activities.logAction(entry);
    await s.activities.logAction(entry);
    expect(
      fs
        .readFileSync(salFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('[train-test#7]')),
    ).toHaveLength(1);
  });

  it('never starts more than 100 wave children, whatever the batch size', () => {
    const hosts = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`mw${1000 + i}`, null]));
    const plan = planRollout(hosts, 'config-0123456789ab', {
      canary: '1',
      batch: '1',
      maxFail: '0',
      fetchConcurrency: 80,
    });
    expect(plan.waves).toHaveLength(1000);
    const children = groupBatches(plan.waves);
    expect(children.length).toBeLessThanOrEqual(100);
    expect(children[0]).toEqual({ name: 'canary', waves: [plan.waves[0]] });
    expect(children.flatMap((c) => c.waves)).toEqual(plan.waves); // same batches, same order
  });
});
