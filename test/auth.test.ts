// Who may do what: every steering action signed with the person's own SSH key (real ssh-keygen signatures of
// the sandbox's demo people), verified by the worker against allowed_signers and roles. Refusals change nothing.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  abortRollout,
  abortTrain,
  acknowledgeError,
  approveStation,
  pauseRollout,
  pauseTrain,
  resumeRollout,
  resumeTrain,
  rollbackRollout,
  rollbackTrain,
  rolloutStatusQuery,
  trainStatusQuery,
  type TrainStatus,
} from '../workflows/definitions';
import { startRollout, startTrain, trainInputFrom } from '../cli/client';
import { trainReport } from '../cli/report';
import { demoKey } from '../sandbox/fleet';
import {
  cli,
  configLinks,
  configMoving,
  NEW,
  refusal,
  rollout,
  signedAuth as signedRoles,
  signedRequest as request,
  startSandbox,
  waitFor,
  type Sandbox,
} from './helpers';

let sandbox: Sandbox | undefined;

afterEach(async () => {
  await sandbox?.stop();
  sandbox = undefined;
});

const signedAuth = signedRoles();

describe('signed actions', () => {
  it('refuses every train action unsigned, from an unknown key, without the role, replayed or stale, and changes nothing', async () => {
    sandbox = await startSandbox({ configure: signedAuth });
    const s = sandbox;
    const mallory = path.join(s.home, 'mallory_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', mallory]);
    const [alice, bob] = [demoKey(s.home, 'alice'), demoKey(s.home, 'bob')];
    const handle = await startTrain(s.client, s.config, trainInputFrom(s.config, NEW, { autoApprove: false }));
    const id = handle.workflowId;
    await waitFor(
      'awaiting approval',
      async () => (await handle.query(trainStatusQuery)).state === 'awaiting-approval',
    );
    const snapshot = async () => JSON.stringify(await handle.query(trainStatusQuery));
    const before = await snapshot();
    const linksBefore = await configLinks(s);

    const approve = (r: object) =>
      handle.executeUpdate(approveStation, { args: [{ ...(r as any), station: 'testwikis' }] });
    expect(await refusal(approve({ by: 'alice' }))).toMatch(
      /^unsigned: this signalbox requires every action to be signed/,
    );
    expect(await refusal(approve(await request(mallory, 'alice', 'approve', id, 'testwikis')))).toMatch(
      /the signature is not from a key allowed for alice/,
    );
    expect(await refusal(approve(await request(bob, 'bob', 'approve', id, 'testwikis')))).toMatch(
      /bob may not approve: that takes the approvers role in auth\.roles/,
    );
    expect(
      await refusal(approve(await request(alice, 'alice', 'approve', id, 'testwikis', new Date(Date.now() - 600_000)))),
    ).toMatch(/the signature is 6\d\d s old; signatures are good for 300 s/); // and the seconds to sign and send
    expect(
      await refusal(approve(await request(alice, 'alice', 'approve', 'train-1.41.0-wmf.99', 'testwikis'))),
    ).toMatch(/the signature is for approve on train-1\.41\.0-wmf\.99/);
    expect(await refusal(approve(await request(alice, 'alice', 'pause', id)))).toMatch(/the signature is for pause on/);
    // Other actions, each refused for the role it lacks.
    expect(await refusal(handle.executeUpdate(abortTrain, { args: [await request(bob, 'bob', 'abort', id)] }))).toMatch(
      /bob may not abort: that takes the admins role/,
    );
    expect(
      await refusal(handle.executeUpdate(resumeTrain, { args: [await request(bob, 'bob', 'resume', id)] })),
    ).toMatch(/bob may not resume/);
    expect(await refusal(handle.executeUpdate(pauseTrain, { args: [{ by: 'mallory' }] }))).toMatch(/^unsigned/);
    expect(
      await refusal(
        handle.executeUpdate(acknowledgeError, {
          args: [
            { ...(await request(mallory, 'bob', 'ack', id, 'Some error')), signature: 'Some error', reason: 'T1' },
          ],
        }),
      ),
    ).toMatch(/not from a key allowed for bob/);
    expect(await refusal(handle.executeUpdate(rollbackTrain, { args: [{ by: 'bob', reason: 'x' }] }))).toMatch(
      /^unsigned|would not move any group back/,
    );
    // Every other train action: unsigned, an unknown key, and a stale signature are refused the same way.
    const others = [
      [pauseTrain, 'pause', undefined, {}],
      [resumeTrain, 'resume', undefined, {}],
      [abortTrain, 'abort', undefined, {}],
      [acknowledgeError, 'ack', 'Some error', { signature: 'Some error', reason: 'T1' }],
    ] as const;
    for (const [definition, action, target, extra] of others) {
      const send = (r: object) =>
        handle.executeUpdate(definition as typeof pauseTrain, { args: [{ ...(r as any), ...extra }] });
      expect(await refusal(send({ by: 'alice' })), action).toMatch(/^unsigned/);
      expect(await refusal(send(await request(mallory, 'alice', action, id, target))), action).toMatch(
        /not from a key allowed for alice/,
      );
      expect(
        await refusal(send(await request(alice, 'alice', action, id, target, new Date(Date.now() - 3_600_000)))),
        action,
      ).toMatch(/36\d\d s old/); // an hour, and the seconds it took to sign and send under load
    }
    expect(await snapshot()).toBe(before);
    expect(await configLinks(s)).toEqual(linksBefore);
    const sal = fs.readFileSync(s.config.notify.salFile, 'utf8');
    expect(sal).toMatch(/refused approve of train-1\.41\.0-wmf\.26 \(testwikis\) asked by bob: bob may not approve/);

    // The right key and role: accepted, and the principal and fingerprint go on the record.
    const good = await request(alice, 'alice', 'approve', id, 'testwikis');
    const approved: TrainStatus = await approve(good);
    expect(approved.events.at(-1)?.by).toMatch(/^alice \[SHA256:[A-Za-z0-9+/]+\]$/);
    expect(await refusal(approve(good))).toMatch(/replayed|already approved/);
    await waitFor(
      'testwikis live',
      async () => {
        const status = await handle.query(trainStatusQuery);
        return status.station === 0 && status.state === 'awaiting-approval';
      },
      90_000,
    );
    const pause = await request(bob, 'bob', 'pause', id);
    expect((await handle.executeUpdate(pauseTrain, { args: [pause] })).events.at(-1)?.by).toMatch(/^bob \[SHA256:/);
    expect(await refusal(handle.executeUpdate(pauseTrain, { args: [pause] }))).toMatch(/^replayed/);
    await handle.executeUpdate(acknowledgeError, {
      args: [{ ...(await request(bob, 'bob', 'ack', id, 'Some error')), signature: 'Some error', reason: 'T1' }],
    });
    await handle.executeUpdate(resumeTrain, { args: [await request(alice, 'alice', 'resume', id)] });
    expect(fs.readFileSync(s.config.notify.salFile, 'utf8')).toMatch(
      /alice \[SHA256:[^\]]+\]: 1\.41\.0-wmf\.26: move testwikis/,
    );

    // Through the real CLI, with the person's key from SIGNALBOX_SIGNING_KEY.
    const asAlice = { ...s.env, SIGNALBOX_USER: 'alice', SIGNALBOX_SIGNING_KEY: alice };
    const asBob = { ...s.env, SIGNALBOX_USER: 'bob', SIGNALBOX_SIGNING_KEY: bob };
    const byCli = await cli({ ...s, env: asBob }, ['train', 'abort', NEW]);
    expect(byCli.code).toBe(2);
    expect(byCli.stderr).toMatch(/refused: bob may not abort/);
    const spoof = await cli({ ...s, env: asBob }, ['train', 'approve', NEW, '--as', 'alice']);
    expect(spoof.code).toBe(2);
    expect(spoof.stderr).toMatch(/--as names someone else, which only open mode/);
    expect((await cli({ ...s, env: asAlice }, ['train', 'abort', NEW])).code).toBe(0);
    expect((await handle.result()).state).toBe('aborted');
    const report = await trainReport(s.client, id);
    // Who did what, as the worker verified it: the train's own event log.
    expect(report).toMatch(/alice \[SHA256:[^\]]+\]: move testwikis/);
    expect(report).toMatch(/alice \[SHA256:[^\]]+\]: abort requested/);
  });

  it('refuses an unsigned or unauthorised deploy before it touches a host, runs a signed one, and steers a rollout only with a signature and the role', async () => {
    sandbox = await startSandbox({ configure: signedAuth });
    const s = sandbox;
    const release = await configMoving(s, ['testwikis']);
    const before = await configLinks(s);
    const strategy = { canary: null, batch: '100%', maxFail: '0', fetchConcurrency: 80 };
    const unsigned = await rollout(s, release, strategy, { id: 'deploy-unsigned' });
    expect(
      await unsigned.result().then(
        () => '',
        (err) => String(err.cause?.message),
      ),
    ).toMatch(/^unsigned/);
    const asBob = { ...s.env, SIGNALBOX_USER: 'bob', SIGNALBOX_SIGNING_KEY: demoKey(s.home, 'bob') };
    const bobDeploys = await cli({ ...s, env: asBob }, [
      'deploy',
      release.id,
      '--service',
      'mediawiki-config',
      '--yes',
    ]);
    expect(bobDeploys.code).toBe(2);
    expect(bobDeploys.stderr).toMatch(/bob may not deploy: that takes the approvers role/);
    expect(await configLinks(s)).toEqual(before);
    const asAlice = { ...s.env, SIGNALBOX_USER: 'alice', SIGNALBOX_SIGNING_KEY: demoKey(s.home, 'alice') };
    const aliceDeploys = await cli({ ...s, env: asAlice }, [
      'deploy',
      release.id,
      '--service',
      'mediawiki-config',
      '--yes',
    ]);
    expect(aliceDeploys.stderr).toBe('');
    expect(aliceDeploys.code).toBe(0);
    expect(new Set(Object.values(await configLinks(s)))).toEqual(new Set([release.id]));
    const status = await s.client.workflow.getHandle('deploy-mediawiki-config').query(rolloutStatusQuery);
    expect(status.phase).toBe('done');

    // Steering a rollout: each action signed, each refused without the key or the role.
    const next = await configMoving(s, ['testwikis', 'group0']);
    const id = 'signed-rollout';
    const alice = demoKey(s.home, 'alice');
    const bob = demoKey(s.home, 'bob');
    const paused = await startRollout(
      s.client,
      s.config,
      {
        service: 'mediawiki-config',
        release: next,
        selector: {},
        strategy: { ...strategy, canary: '1' },
        pauseAfterCanary: true,
        ...(await request(alice, 'alice', 'deploy', id, next.id)),
      },
      id,
    );
    await waitFor('canaries live and paused', async () => (await paused.query(rolloutStatusQuery)).paused);
    const linksPaused = await configLinks(s);
    for (const [definition, action] of [
      [resumeRollout, 'resume'],
      [abortRollout, 'abort'],
      [rollbackRollout, 'rollback'],
      [pauseRollout, 'pause'],
    ] as const) {
      expect(await refusal(paused.executeUpdate(definition, { args: [{ by: 'alice' }] })), action).toMatch(/^unsigned/);
      expect(
        await refusal(
          paused.executeUpdate(definition, {
            args: [await request(alice, 'alice', action, id, undefined, new Date(Date.now() - 900_000))],
          }),
        ),
        action,
      ).toMatch(/9\d\d s old/); // 15 minutes, and the seconds it took to sign and send under load
    }
    expect(
      await refusal(paused.executeUpdate(resumeRollout, { args: [await request(bob, 'bob', 'resume', id)] })),
    ).toMatch(/bob may not resume/);
    expect((await paused.query(rolloutStatusQuery)).paused).toBe(true);
    expect(await configLinks(s)).toEqual(linksPaused);
    await paused.executeUpdate(rollbackRollout, { args: [await request(bob, 'bob', 'rollback', id)] });
    expect(
      await paused.result().then(
        () => '',
        (err) => String(err.cause?.message),
      ),
    ).toMatch(/rollback requested by operator/);
    expect(await configLinks(s)).toEqual(Object.fromEntries(Object.keys(linksPaused).map((h) => [h, release.id])));
  });

  it('changes the weekly schedule only for an admin, through a workflow that checks the signature', async () => {
    sandbox = await startSandbox({ configure: signedAuth });
    const s = sandbox;
    const as = (person: string) => ({
      ...s,
      env: { ...s.env, SIGNALBOX_USER: person, SIGNALBOX_SIGNING_KEY: demoKey(s.home, person) },
    });
    const byBob = await cli(as('bob'), ['schedule', 'create', '--id', 'weekly-signed']);
    expect(byBob.code).toBe(2);
    expect(byBob.stderr).toMatch(/refused: bob may not schedule: that takes the admins role/);
    const unsigned = await cli({ ...s, env: { ...s.env, SIGNALBOX_SIGNING_KEY: path.join(s.home, 'no-such-key') } }, [
      'schedule',
      'delete',
      '--id',
      'weekly-signed',
    ]);
    expect(unsigned.code).toBe(2);
    expect(unsigned.stderr).toMatch(/no SSH key to sign with/);
    expect(JSON.parse((await cli(s, ['schedule', 'list', '--json'])).stdout)).toEqual([]);
    expect((await cli(as('alice'), ['schedule', 'create', '--id', 'weekly-signed'])).code).toBe(0);
    expect(JSON.parse((await cli(s, ['schedule', 'list', '--json'])).stdout).map((x: { id: string }) => x.id)).toEqual([
      'weekly-signed',
    ]);
    expect((await cli(as('bob'), ['schedule', 'delete', '--id', 'weekly-signed'])).stderr).toMatch(
      /bob may not schedule/,
    );
    expect((await cli(as('alice'), ['schedule', 'delete', '--id', 'weekly-signed'])).stdout).toContain(
      'deleted schedule weekly-signed',
    );
  });

  it('says so when it runs in open mode', async () => {
    sandbox = await startSandbox();
    const s = sandbox;
    const handle = await startTrain(s.client, s.config, trainInputFrom(s.config, NEW, { autoApprove: false }));
    await waitFor(
      'awaiting approval',
      async () => (await handle.query(trainStatusQuery)).state === 'awaiting-approval',
    );
    const paused = await cli(s, ['train', 'pause', NEW, '--as', 'carol']);
    expect(paused.code).toBe(0);
    expect(paused.stdout).toMatch(
      /auth is none in .*signalbox\.yml \(open mode\): this pause is not signed, and who asks is not verified/,
    );
    expect((await handle.query(trainStatusQuery)).events.at(-1)?.by).toBe('carol (unverified: auth none)');
    expect((await cli(s, ['train', 'abort', NEW])).code).toBe(0);
  });
});
