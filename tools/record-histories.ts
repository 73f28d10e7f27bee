// `npm run histories`: records the workflow histories test/replay.test.ts replays, on a Temporal dev server of its
// own with the real sandbox fleet and a real worker process (tools/bench/harness.ts), one namespace per scenario.
// Re-record when a history should show new behaviour; never to make the replay test pass after a workflow change.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { REPO_ROOT } from '../config/load';
import { faultsFile } from '../sandbox/server';
import { freePort } from '../sandbox/fleet';
import {
  approveStation,
  abortTrain,
  rollbackTrain,
  trainStatusQuery,
  type TrainStatus,
} from '../workflows/definitions';
import type { Station } from '../workflows/names';
import { startRollout, startTrain, trainInputFrom } from '../cli/client';
import { startWorld, sleep, type World } from './bench/harness';
import { ensureTemporalCli, startDevServer, stopDevServer } from './temporal-runtime';
import { WORKFLOWS_PATH } from '../workers/worker';

const OUT = path.join(REPO_ROOT, 'test', 'histories');
const OLD = '1.41.0-wmf.25';
const NEW = '1.41.0-wmf.26';
const TRAIN = `train-${NEW}`;
const say = (line: string) => console.log(`histories: ${line}`);

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false>,
  timeoutMs = 180_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Saves each workflow's whole history as `<scenario>.<name>.json` with `temporal workflow show --output json`. (The
 * SDK's historyToJSON fails in this install: see readHistory in test/replay.test.ts.)
 */
async function save(world: World, scenario: string, workflows: Record<string, string>): Promise<void> {
  const temporal = ensureTemporalCli(say);
  for (const [name, workflowId] of Object.entries(workflows)) {
    const json = execFileSync(
      temporal,
      [
        'workflow',
        'show',
        '--workflow-id',
        workflowId,
        '--namespace',
        world.namespace,
        '--address',
        world.config.temporal.address,
        '--output',
        'json',
      ],
      { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    );
    const file = path.join(OUT, `${scenario}.${name}.json`);
    fs.writeFileSync(file, json.endsWith('\n') ? json : `${json}\n`);
    say(`${path.relative(REPO_ROOT, file)}: ${workflowId}, ${JSON.parse(json).events.length} events`);
  }
}

const awaiting = (world: World, next: Station | null) =>
  waitFor(`the train to await approval of ${next}`, async () => {
    const s: TrainStatus = await world.client.workflow.getHandle(TRAIN).query(trainStatusQuery);
    return s.state === 'awaiting-approval' && s.nextStation === next && s;
  });

const scenarios: Record<string, (world: World) => Promise<void>> = {
  /** A whole auto-approved train: the train, its stage and first config rollout, a wave child, and the lease. */
  async 'auto-train'(world) {
    const handle = await startTrain(
      world.client,
      world.config,
      trainInputFrom(world.config, NEW, { autoApprove: true, by: 'recorder' }),
    );
    const result: TrainStatus = await handle.result();
    if (result.state !== 'complete') throw new Error(`the train ended ${result.state}`);
    await save(world, 'auto-train', {
      train: TRAIN,
      stage: `${TRAIN}-stage`,
      'config-rollout': `${TRAIN}-config-1`,
      'config-canary-wave': `${TRAIN}-config-1-canary`,
      lease: 'lease-mediawiki-config',
    });
  },

  /** A CLI-style deploy moving every group whose canary fails analysis (an error fault on group2) and rolls back. */
  async 'canary-fails'(world) {
    const a = world.activities;
    const code = await a.stageCode({ version: NEW, by: 'recorder' });
    const hosts = world.fleet.hosts.map((h) => h.name);
    await a.fetchToHosts({ service: 'mediawiki', release: code, hosts, by: 'recorder', runId: 'setup' });
    await a.promoteHosts({ service: 'mediawiki', release: code, hosts, by: 'recorder', runId: 'setup' });
    const versions = { testwikis: NEW, group0: NEW, group1: NEW, group2: NEW };
    const { release } = await a.landWikiversions({
      versions,
      subject: `all wikis to ${NEW}`,
      changeId: 'recorder-canary-fails',
      by: 'recorder',
    });
    fs.writeFileSync(faultsFile(world.home), JSON.stringify({ [NEW]: { groups: { group2: { errorRate: 0.5 } } } }));
    const strategy = { canary: '1', batch: '50%', maxFail: '0', fetchConcurrency: 80 };
    const handle = await startRollout(
      world.client,
      world.config,
      { service: 'mediawiki-config', release, selector: {}, strategy, by: 'recorder' },
      'deploy-mediawiki-config',
    );
    const failure = await handle.result().then(
      () => null,
      (err: WorkflowFailedError) => err.cause as { type?: string; message: string },
    );
    if (failure?.type !== 'RolloutRolledBack' || !/canary analysis failed/.test(failure.message))
      throw new Error(`expected a canary rollback, got ${failure ? failure.message : 'success'}`);
    await save(world, 'canary-fails', {
      rollout: 'deploy-mediawiki-config',
      'canary-wave': 'deploy-mediawiki-config-canary',
    });
  },

  /** A train approved to group0, rolled back to the start by the rollback update, then aborted. */
  async 'train-rollback'(world) {
    const handle = await startTrain(
      world.client,
      world.config,
      trainInputFrom(world.config, NEW, { autoApprove: false, by: 'recorder' }),
    );
    await awaiting(world, 'testwikis');
    await handle.executeUpdate(approveStation, { args: [{ by: 'alice', station: 'testwikis' }] });
    await awaiting(world, 'group0');
    await handle.executeUpdate(approveStation, { args: [{ by: 'alice', station: 'group0' }] });
    await awaiting(world, 'group1');
    const after = await handle.executeUpdate(rollbackTrain, {
      args: [{ by: 'bob', reason: 'unexplained errors on group0', toStation: 'start' }],
    });
    if (after.state !== 'rolled-back' || after.versions.group0 !== OLD)
      throw new Error(`the rollback left the train ${after.state} at ${JSON.stringify(after.versions)}`);
    await handle.executeUpdate(abortTrain, { args: [{ by: 'alice' }] });
    await handle.result();
    // Moves are numbered: testwikis, group0, then the rollback.
    await save(world, 'train-rollback', { train: TRAIN, 'rollback-rollout': `${TRAIN}-config-3` });
  },

  /** The weekly Schedule, made by the real CLI and fired with trigger(): its dispatcher starts the next train. */
  async schedule(world) {
    const created = await world.cli(['schedule', 'create', '--day', 'tuesday', '--at', '07:00', '--timezone', 'UTC']);
    if (created.code !== 0) throw new Error(`schedule create: ${created.stderr}`);
    const schedule = world.client.schedule.getHandle('weekly-train');
    await schedule.trigger();
    const dispatcher = await waitFor('the schedule to fire', async () => {
      const action = (await schedule.describe()).info.recentActions[0] as
        { action?: { workflow?: { workflowId: string } } } | undefined;
      return action?.action?.workflow?.workflowId;
    });
    const said: string = await world.client.workflow.getHandle(dispatcher).result();
    if (said !== `started ${TRAIN}`) throw new Error(`the dispatcher said: ${said}`);
    await save(world, 'schedule', { dispatcher });
    await schedule.delete();
    await world.client.workflow.getHandle(TRAIN).terminate('recorded the schedule firing');
  },
};

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const chosen = Object.keys(scenarios).filter((s) => !only.length || only.includes(s));
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-histories-'));
  const server = {
    home: path.join(scratch, 'temporal'),
    address: `127.0.0.1:${await freePort()}`,
    namespace: 'default',
    extraNamespaces: chosen,
    uiPort: 0,
    headless: true,
    say: () => undefined,
  };
  try {
    const started = Date.now();
    await startDevServer(server);
    const bundle = await bundleWorkflowCode({
      workflowsPath: WORKFLOWS_PATH,
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error },
    });
    const workflowBundle = path.join(scratch, 'workflow-bundle.js');
    fs.writeFileSync(workflowBundle, bundle.code);
    fs.mkdirSync(OUT, { recursive: true });
    for (const scenario of chosen) {
      const home = fs.mkdtempSync(path.join(scratch, `${scenario}-`));
      const world = await startWorld({
        home,
        hosts: 8,
        temporal: { address: server.address, namespace: scenario },
        workflowBundle,
        taskQueue: 'signalbox',
      });
      const t0 = Date.now();
      try {
        world.workers.start();
        await scenarios[scenario](world);
        say(`${scenario} recorded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      } catch (err) {
        console.error(
          fs.existsSync(path.join(home, 'worker.log'))
            ? fs.readFileSync(path.join(home, 'worker.log'), 'utf8').slice(-3000)
            : '',
        );
        throw err;
      } finally {
        await world.stop();
      }
    }
    say(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await stopDevServer(server.home);
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
