// npm start: everything a fresh clone needs to show a whole train, on this machine, in the Temporal UI.
// It leaves the dev server and the sandbox running, so the UI link and `signalbox hosts` keep working.
import type { SignalboxConfig } from '../config/load';
import { createTrainActivities } from '../activities/train';
import { createWikiActivities } from '../activities/wiki';
import { trainStatusQuery } from '../workflows/definitions';
import { STATIONS } from '../workflows/names';
import { renderTrain } from '../workflows/render';
import { createFleet, startFleetServer } from '../sandbox/fleet';
import { createWorker } from '../workers/worker';
import { CLI_ENTRY, connectClient, startTrain, trainInputFrom } from './client';
import { runSetup } from '../tools/setup';
import { startDevServer } from '../tools/temporal-runtime';

/**
 * A real train watches each station for an hour, enough to vouch for +1 point (the default minEffect). The demo's
 * ten seconds see about 800 requests of the test wikis (a tenth of the sandbox's traffic): enough to vouch for +10
 * points, and each watch says that is what it could catch rather than passing on evidence it does not have.
 */
const DEMO_WATCH = { ms: 10_000, everyMs: 1250, minEffect: 0.1 };

export async function runDemo(config: SignalboxConfig): Promise<void> {
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  runSetup(false);
  await startDevServer({
    home: config.home,
    address: config.temporal.address,
    namespace: config.temporal.namespace,
    uiPort: config.temporal.uiPort,
  });
  const fleet = await createFleet(
    config.home,
    config.fleet.sandbox?.hosts ?? 12,
    config.fleet.sandbox?.trafficPerSecond ?? 40,
    undefined,
    config.fleet.sandbox,
  );
  await startFleetServer(config.home, CLI_ENTRY);
  console.log(
    `[${elapsed()}] sandbox: ${fleet.hosts.length} hosts serving${fleet.seed === undefined ? '' : ` (traffic seed ${fleet.seed})`}`,
  );

  const worker = await createWorker(config);
  const running = worker.run();
  try {
    const train = createTrainActivities(config);
    const { versions } = await train.readStations();
    const version = await train.nextTrainVersion();
    const client = await connectClient(config);
    const input = trainInputFrom(config, version, { autoApprove: true, watchMs: DEMO_WATCH.ms, by: 'npm-start' });
    input.watch = {
      ...input.watch!,
      everyMs: DEMO_WATCH.everyMs,
      judge: { ...input.watch!.judge, minEffect: { points: DEMO_WATCH.minEffect } },
    };
    const handle = await startTrain(client, config, input);
    const ui = `http://127.0.0.1:${config.temporal.uiPort}/namespaces/${config.temporal.namespace}/workflows/${handle.workflowId}`;
    console.log(`[${elapsed()}] started ${handle.workflowId}: ${versions.group2} -> ${version}\n  Temporal UI: ${ui}`);
    let shown = '';
    const follow = setInterval(async () => {
      const status = await handle.query(trainStatusQuery).catch(() => undefined);
      const line = status && `${status.state} at ${STATIONS[status.station] ?? 'start'}`;
      if (line && line !== shown) console.log(`[${elapsed()}] ${line}`);
      if (line) shown = line;
    }, 500);
    const result = await handle.result().finally(() => clearInterval(follow));
    console.log(renderTrain(result));
    const { catalog } = await train.readStations();
    const expected = Object.fromEntries(Object.keys(catalog.groups).map((db) => [db, version]));
    const check = await createWikiActivities(config).verifyLiveVersions({
      expected,
      domains: catalog.domains,
      everyMs: 500,
      timeoutMs: 5000,
    });
    console.log(`[${elapsed()}] verified: ${check.checked} wiki answers across the fleet say MediaWiki ${version}`);
    if (result.state !== 'complete') throw new Error(`the train ended ${result.state}`);
    console.log(
      `\nDone in ${elapsed()}. The dev server and the sandbox keep running:\n  ${ui}\n  npx signalbox hosts\n  npx signalbox dev stop; npx signalbox sandbox down`,
    );
  } finally {
    worker.shutdown();
    await running;
  }
}
