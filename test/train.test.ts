// The train on a real Temporal dev server and a real sandbox fleet: stations, approval, rollback, duplicates,
// bad input, and a worker killed mid-train.
import { afterEach, describe, expect, it } from 'vitest';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import fs from 'node:fs';
import path from 'node:path';
import {
  abortTrain,
  acknowledgeError,
  approveStation,
  rollbackTrain,
  trainStatusQuery,
  type TrainStatus,
} from '../workflows/definitions';
import { STATIONS } from '../workflows/names';
import { startTrain, trainInputFrom, UserError } from '../cli/client';
import { demoKey } from '../sandbox/fleet';
import { mailDir, slackFile } from '../sandbox/records';
import {
  assertHostsConsistent,
  cli,
  refusal,
  liveVersions,
  serviceOnEveryHost,
  signedAuth,
  signedRequest,
  signingAs,
  startSandbox,
  waitFor,
  workerProcess,
  type Sandbox,
} from './helpers';

const OLD = '1.41.0-wmf.25';
const NEW = '1.41.0-wmf.26';
let sandbox: Sandbox | undefined;

afterEach(async () => {
  await sandbox?.stop();
  sandbox = undefined;
});

function everyWikiOn(versions: Map<string, Set<string>>, version: string): string[] {
  return [...versions]
    .filter(([, v]) => v.size !== 1 || !v.has(version))
    .map(([db, v]) => `${db}: ${[...v].join(',')}`);
}

describe('train', () => {
  it('reaches group2, and every host serves the new version to every wiki', async () => {
    sandbox = await startSandbox();
    const handle = await startTrain(
      sandbox.client,
      sandbox.config,
      trainInputFrom(sandbox.config, NEW, { autoApprove: true }),
    );
    const result: TrainStatus = await handle.result();
    expect(result.state).toBe('complete');
    expect(result.station).toBe(STATIONS.indexOf('group2'));
    expect(Object.values(result.versions)).toEqual([NEW, NEW, NEW, NEW]);
    expect(everyWikiOn(await liveVersions(sandbox), NEW)).toEqual([]);
    await assertHostsConsistent(sandbox, 'mediawiki-config');
    const wikiversions = JSON.parse(
      await sandbox.forge.readFile('mediawiki-config', 'refs/heads/main', 'wikiversions.json'),
    );
    expect(new Set(Object.values(wikiversions))).toEqual(new Set([`php-${NEW}`]));
    // Each station is a change in the config repository: the audit trail.
    const log = await sandbox.forge.resolve('mediawiki-config', 'refs/heads/main');
    expect(log).toMatch(/^[0-9a-f]{40}$/);
  });

  it('waits for approval at each station, takes it only from the approvers role, and rolls every group back', async () => {
    // One rule: auth.roles.approvers, on a verified signature. alice approves; bob, a deployer, may only roll back.
    sandbox = await startSandbox({ configure: signedAuth() });
    const s = sandbox;
    const [alice, bob] = [demoKey(s.home, 'alice'), demoKey(s.home, 'bob')];
    const handle = await startTrain(s.client, s.config, trainInputFrom(s.config, NEW, { autoApprove: false }));
    const id = handle.workflowId;
    const waiting = () =>
      waitFor('awaiting approval', async () => {
        const status = await handle.query(trainStatusQuery);
        return status.state === 'awaiting-approval' && status;
      });
    const approve = async (request: object) => handle.executeUpdate(approveStation, { args: [request as never] });
    expect((await waiting()).nextStation).toBe('testwikis');
    await expect(approve(await signedRequest(bob, 'bob', 'approve', id, 'testwikis'))).rejects.toThrow(
      WorkflowUpdateFailedError,
    );
    expect(await refusal(approve(await signedRequest(bob, 'bob', 'approve', id, 'testwikis')))).toMatch(
      /bob may not approve: that takes the approvers role in auth\.roles/,
    );
    // A name alone decides nothing, not even an approver's.
    expect(await refusal(approve({ by: 'alice' }))).toMatch(/^unsigned/);
    const stale = await signedRequest(alice, 'alice', 'approve', id, 'group1');
    expect(await refusal(approve({ ...stale, station: 'group1' }))).toMatch(/next station is testwikis, not group1/);
    expect((await handle.query(trainStatusQuery)).versions.testwikis).toBe(OLD);
    await approve({ ...(await signedRequest(alice, 'alice', 'approve', id, 'testwikis')), comment: 'looks good' });
    expect((await waiting()).nextStation).toBe('group0');
    const viaCli = await cli({ ...s, env: signingAs(s, 'alice') }, ['train', 'approve', NEW, '--station', 'group0']);
    expect(viaCli.stderr).toBe('');
    expect(viaCli.code).toBe(0);
    const atGroup0 = await waiting();
    expect(atGroup0.versions).toEqual({ testwikis: NEW, group0: NEW, group1: OLD, group2: OLD });
    const live = await liveVersions(sandbox);
    expect([...live.get('testwiki')!]).toEqual([NEW]);
    expect([...live.get('enwiki')!]).toEqual([OLD]);

    const afterRollback = await handle.executeUpdate(rollbackTrain, {
      args: [
        {
          ...(await signedRequest(bob, 'bob', 'rollback', id, 'start')),
          reason: 'unexplained errors on group0',
          toStation: 'start',
        },
      ],
    });
    expect(afterRollback.state).toBe('rolled-back');
    expect(afterRollback.station).toBe(-1);
    expect(everyWikiOn(await liveVersions(sandbox), OLD)).toEqual([]);
    await assertHostsConsistent(sandbox, 'mediawiki-config');
    const status = await cli(sandbox, ['train', 'status', NEW]);
    expect(status.stdout).toContain('rolled-back');
    expect((await cli({ ...s, env: signingAs(s, 'alice') }, ['train', 'abort', NEW])).code).toBe(0);
    expect((await handle.result()).state).toBe('aborted');
  });

  it('rolls a station back by itself when its errors rise during the watch, and blocks the train', async () => {
    sandbox = await startSandbox({
      trafficPerSecond: 200,
      configure: (c) => {
        delete c.services['mediawiki-config'].analysis; // so the watch, not the canaries, is what must catch it
        c.train = { ...c.train, watchMs: 8000, watchIntervalMs: 2000, watchMinRequests: 20 };
      },
    });
    fs.writeFileSync(
      path.join(sandbox.home, 'sandbox', 'faults.json'),
      JSON.stringify({ [NEW]: { groups: { group1: { errorRate: 0.05 } } } }),
    );
    const handle = await startTrain(
      sandbox.client,
      sandbox.config,
      trainInputFrom(sandbox.config, NEW, { autoApprove: true }),
    );
    const blocked = await waitFor(
      'the error watch to block the train',
      async () => {
        const s = await handle.query(trainStatusQuery);
        return s.state === 'blocked' && s;
      },
      120_000,
      250,
    );
    expect(blocked.blocker).toMatch(
      /^group1 was rolled back by the error watch: group1: errors \d+\.\d\d% of [\d,]+ vs \d\.\d\d% of [\d,]+ before the move; .* at sample \d+/,
    );
    expect(blocked.versions).toEqual({ testwikis: NEW, group0: NEW, group1: OLD, group2: OLD });
    const live = await liveVersions(sandbox);
    expect([...live.get('enwiktionary')!]).toEqual([OLD]);
    expect([...live.get('mediawikiwiki')!]).toEqual([NEW]);
    // People hear about it: the status update by email and Slack, the rollback in the SAL.
    const mail = await waitFor(
      'the status update mail',
      async () => {
        const dir = mailDir(path.join(sandbox!.home, 'sandbox'));
        return fs
          .readdirSync(dir)
          .map((f) => fs.readFileSync(path.join(dir, f), 'utf8').replace(/=\r?\n/g, ''))
          .find((m) => m.includes(`Subject: [Train] ${NEW} status update`));
      },
      15_000,
    );
    expect(mail).toContain('group1 was rolled back by the error watch');
    expect(fs.readFileSync(slackFile(path.join(sandbox.home, 'sandbox')), 'utf8')).toContain(
      `[Train] ${NEW} status update`,
    );
    expect(fs.readFileSync(path.join(sandbox.home, 'sal.log'), 'utf8')).toMatch(
      /signalbox error watch: .*roll back group1 to 1\.41\.0-wmf\.25 \(errors rose on group1\): done and verified/,
    );
    await handle.executeUpdate(abortTrain, { args: [{ by: 'test' }] });
    expect((await handle.result()).state).toBe('aborted');
  });

  it('rolls back on a new error signature, and not once an operator acknowledges it as known', async () => {
    const signature = 'Error: Call to undefined method SkinTemplate::getTabs()';
    sandbox = await startSandbox({
      trafficPerSecond: 200,
      configure: (c) => {
        delete c.services['mediawiki-config'].analysis;
        // The fixed method with a ceiling this high never trips on the rate: only the new signature can.
        c.train = {
          ...c.train,
          watchMs: 6000,
          watchIntervalMs: 2000,
          watchMaxErrorRate: 0.5,
          watchMinRequests: 20,
          watchNewErrorMin: 2,
          watchJudging: { method: 'fixed', inconclusiveLimit: 10 },
        };
      },
    });
    fs.writeFileSync(
      path.join(sandbox.home, 'sandbox', 'faults.json'),
      JSON.stringify({ [NEW]: { signature, groups: { group1: { errorRate: 0.05 } } } }),
    );
    const handle = await startTrain(
      sandbox.client,
      sandbox.config,
      trainInputFrom(sandbox.config, NEW, { autoApprove: true }),
    );
    const blocked = await waitFor(
      'the new signature to block the train',
      async () => {
        const s = await handle.query(trainStatusQuery);
        return s.state === 'blocked' && s;
      },
      120_000,
      250,
    );
    expect(blocked.blocker).toMatch(
      /new error "Error: Call to undefined method SkinTemplate::getTabs\(\)" seen \d+ times, never before the move \(2 fail\)/,
    );
    expect(blocked.versions.group1).toBe(OLD);

    expect(
      await refusal(handle.executeUpdate(acknowledgeError, { args: [{ by: 'alice', signature, reason: '' }] })),
    ).toMatch(/needs who \(by\), the error signature and why/);
    const ack = await cli(sandbox, [
      'train',
      'ack',
      NEW,
      signature,
      '--reason',
      'T1234: known, harmless',
      '--as',
      'alice',
    ]);
    expect(ack.stderr).toBe('');
    expect(ack.stdout).toContain(signature);
    await handle.executeUpdate(approveStation, { args: [{ by: 'alice', station: 'group1' }] });
    const result: TrainStatus = await handle.result();
    expect(result.state).toBe('complete');
    expect(result.acknowledged).toEqual([
      { signature, by: 'alice (unverified: auth none)', reason: 'T1234: known, harmless' },
    ]);
  });

  it('refuses to start the same train twice, with a clear message', async () => {
    sandbox = await startSandbox();
    const input = trainInputFrom(sandbox.config, NEW, { autoApprove: false });
    await startTrain(sandbox.client, sandbox.config, input);
    await expect(startTrain(sandbox.client, sandbox.config, input)).rejects.toThrow(UserError);
    await expect(startTrain(sandbox.client, sandbox.config, input)).rejects.toThrow(
      /train 1\.41\.0-wmf\.26 already exists as workflow train-1\.41\.0-wmf\.26 \(running/,
    );
    const again = await cli(sandbox, ['train', 'start', NEW]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already exists');
    await sandbox.client.workflow.getHandle(`train-${NEW}`).terminate('test over');
  });

  it.each([[''], ['1.41.0-wmf.26/../../etc'], ['1.41.0-wmf.26; rm -rf /'], ['$(reboot)'], ['wmf.26']])(
    'refuses version %j before touching anything',
    async (bad) => {
      sandbox ??= await startSandbox({ worker: false });
      const hostsBefore = JSON.stringify(await serviceOnEveryHost(sandbox, 'mediawiki-config'));
      const branchesBefore = await sandbox.forge.branches('mediawiki');
      const result = await cli(sandbox, ['train', 'start', bad]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/invalid version .*expected a MediaWiki train version/);
      expect(JSON.stringify(await serviceOnEveryHost(sandbox, 'mediawiki-config'))).toBe(hostsBefore);
      expect(await sandbox.forge.branches('mediawiki')).toEqual(branchesBefore);
      const started = [];
      for await (const wf of sandbox.client.workflow.list({
        query: `TaskQueue = '${sandbox.config.temporal.taskQueue}'`,
      }))
        started.push(wf.workflowId);
      expect(started).toEqual([]);
    },
  );

  it('finishes the train with a new worker after the first is killed with SIGKILL', async () => {
    sandbox = await startSandbox({ worker: false });
    const first = workerProcess(sandbox);
    const handle = await startTrain(
      sandbox.client,
      sandbox.config,
      trainInputFrom(sandbox.config, NEW, { autoApprove: true }),
    );
    await waitFor(
      'the train to be deploying group0',
      async () => {
        const s = await handle.query(trainStatusQuery);
        return s.station >= 0 && s.state === 'deploying';
      },
      90_000,
      100,
    );
    first.kill('SIGKILL');
    const second = workerProcess(sandbox);
    try {
      const result: TrainStatus = await handle.result();
      expect(result.state).toBe('complete');
      expect(everyWikiOn(await liveVersions(sandbox), NEW)).toEqual([]);
      await assertHostsConsistent(sandbox, 'mediawiki-config');
      for (const h of await serviceOnEveryHost(sandbox, 'mediawiki'))
        expect(h.links[`php-${NEW}`]).toMatch(/^revs\/1\.41\.0-wmf\.26-[0-9a-f]{12}$/);
    } catch (err) {
      console.error(fs.readFileSync(`${sandbox.home}/worker.log`, 'utf8').slice(-3000));
      throw err;
    } finally {
      second.kill('SIGTERM');
    }
  });
});

describe('stage', () => {
  it("builds the staged tree with the code service's build, and a failing build blocks the stage with its output", async () => {
    sandbox = await startSandbox({ worker: false });
    const built = await sandbox.activities.stageCode({ version: NEW, by: 'test' });
    const tree = path.join(sandbox.home, 'staging', 'mediawiki', built.id);
    expect(fs.readFileSync(path.join(tree, 'cache', 'built-for'), 'utf8')).toBe(`${NEW}\n`);
    expect(fs.readFileSync(path.join(tree, 'cache', 'autoload-files.txt'), 'utf8')).toMatch(/\.php\n/);

    sandbox.reconfigure(
      (c) => (c.services.mediawiki.build = ['sh', '-c', 'echo "l10n: 3 messages missing" >&2; exit 3']),
    );
    const failure = await sandbox.activities.stageCode({ version: NEW, by: 'test' }).then(
      () => null,
      (err) => err,
    );
    expect(failure?.type).toBe('StageBlocked');
    expect(failure?.message).toMatch(
      /^build `sh -c .*` failed \(exit 3\): l10n: 3 messages missing\. Fix the build on wmf\/1\.41\.0-wmf\.26, then run `signalbox train resume 1\.41\.0-wmf\.26`$/,
    );
    expect(
      fs.readdirSync(path.join(sandbox.home, 'staging', 'mediawiki')).filter((f) => f.startsWith('.build')),
    ).toEqual([]);
  });
});
