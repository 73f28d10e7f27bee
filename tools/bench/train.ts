// Benchmark: the train on a 300-host sandbox. How long from an approval to the station live (landed, deployed
// with canaries and checks, verified on every wiki of every pooled host), and how long from an error breach in
// the watch to every host rolled back.
//
//   npm run bench:train -- [--hosts 300]
import fs from 'node:fs';
import { approveStation, trainStatusQuery, type TrainStatus } from '../../workflows/definitions';
import type { Station } from '../../workflows/names';
import { demoKey } from '../../sandbox/fleet';
import { faultsFile } from '../../sandbox/server';
import { startTrain, trainInputFrom } from '../../cli/client';
import { steering } from '../../cli/sign';
import { benchEnv, seconds } from './rollout';

const hostsArg = process.argv.indexOf('--hosts');
const HOSTS = hostsArg > 0 ? Number(process.argv[hostsArg + 1]) : 300;
const NEW = '1.41.0-wmf.26';

async function main() {
  const env = await benchEnv(HOSTS, (raw) => {
    // Approvals as a real team gives them: signed by the sandbox's demo person alice, who has the approvers role.
    const alice = ['alice'];
    raw.auth = {
      allowedSigners: 'sandbox/allowed_signers',
      roles: { deployers: alice, approvers: alice, admins: alice },
    };
    raw.train = { ...raw.train, watchMs: 8000, watchIntervalMs: 2000, watchMinRequests: 20 };
  });
  process.env.SIGNALBOX_USER = 'alice';
  process.env.SIGNALBOX_SIGNING_KEY = demoKey(env.home, 'alice');
  try {
    const handle = await startTrain(env.client, env.config, trainInputFrom(env.config, NEW, { autoApprove: false }));
    const until = async (what: string, done: (s: TrainStatus) => boolean, timeoutMs = 600_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        // Until its first task runs, the workflow has no query handler yet.
        const s = await handle.query(trainStatusQuery).catch(() => null);
        if (s && done(s)) return s;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; state ${s?.state}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const staged = Date.now();
    await until('stage', (s) => s.state === 'awaiting-approval');
    console.log(`stage (branch cut, ${HOSTS} hosts fetched and linked): ${seconds(Date.now() - staged)}`);
    const live: Record<string, number> = {};
    for (const station of ['testwikis', 'group0', 'group1'] as Station[]) {
      await until(`approval of ${station}`, (s) => s.state === 'awaiting-approval' && s.nextStation === station);
      const approvedAt = Date.now();
      const request = await steering(env.config, 'approve', handle.workflowId, station);
      await handle.executeUpdate(approveStation, { args: [{ ...request, station }] });
      await until(`${station} live`, (s) => s.state === 'watching' || s.state === 'blocked');
      live[station] = Date.now() - approvedAt;
      console.log(`approval -> ${station} live on ${HOSTS} hosts: ${seconds(live[station])}`);
    }
    // The release goes bad once group1 serves it (a fault that canaries could not see): the watch must catch it.
    // Injected before the move, the config canaries sometimes catch it first, which measures them, not the watch.
    fs.writeFileSync(faultsFile(env.home), JSON.stringify({ [NEW]: { groups: { group1: { errorRate: 0.05 } } } }));
    const faultAt = Date.now();
    const blocked = await until('the error watch to roll group1 back', (s) => s.state === 'blocked');
    const at = (prefix: string) => Date.parse(blocked.events.find((e) => e.what.startsWith(prefix))!.at);
    const breach = at('error watch:');
    const movedBack = Date.parse(blocked.events.find((e) => e.what.startsWith('roll back group1'))!.at);
    const rollbackDone = Date.parse(
      blocked.events.find((e) => /roll back group1 .*done and verified/.test(e.what))!.at,
    );
    console.log(
      `breach detected -> group1 rolled back on every host and verified: ${seconds(rollbackDone - breach)} (started ${seconds(movedBack - breach)} after)`,
    );
    console.log(`errors start -> breach detected: ${seconds(breach - faultAt)} (watch interval 2 s)`);
    const history = (await handle.fetchHistory()).events?.length ?? 0;
    console.log(`train history: ${history} events`);
    await handle.terminate('benchmark over');
    const worst = Math.max(...Object.values(live));
    console.log(
      `\nRESULT approval->live max ${seconds(worst)} (target < 60 s: ${worst < 60_000 ? 'met' : 'MISSED'}); breach->rolled back ${seconds(rollbackDone - breach)} (target < 30 s: ${rollbackDone - breach < 30_000 ? 'met' : 'MISSED'})`,
    );
    console.log(`peak RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    await env.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
