// Benchmark: the rollout engine over real OpenSSH to 50 hosts (one sshd per host, hosts pulling from an rsync
// daemon), against a plain loop doing the same host work over the same SSH transport, in the same process.
//
//   npm run bench:ssh -- [--hosts 50]      (needs root: it makes a deploy user and runs sshd)
import type { RolloutStatus } from '../../workflows/definitions';
import { closeTransports } from '../../activities/inventory';
import { sshConfig, startSshFleet, type SshFleet } from '../../sandbox/ssh-fleet';
import { startRollout } from '../../cli/client';
import { benchEnv, childIds, configRelease, historyEvents, plainLoop, seconds, STRATEGY } from './rollout';

const i = process.argv.indexOf('--hosts');
const HOSTS = i > 0 ? Number(process.argv[i + 1]) : 50;

async function main() {
  let ssh: SshFleet | undefined;
  const env = await benchEnv(
    HOSTS,
    () => undefined,
    async (home) => {
      ssh = await startSshFleet(home);
      return (raw) => sshConfig(raw, ssh!);
    },
  );
  try {
    const OLD = '1.41.0-wmf.25';
    const NEW = '1.41.0-wmf.26';
    const versions = (n: number) =>
      Object.fromEntries(['testwikis', 'group0', 'group1', 'group2'].map((g, k) => [g, k < n ? NEW : OLD]));
    let t = Date.now();
    const code = await env.activities.stageCode({ version: NEW, by: 'bench' });
    await (
      await startRollout(
        env.client,
        env.config,
        { service: 'mediawiki', release: code, selector: {}, strategy: STRATEGY, by: 'bench' },
        'ssh-stage',
      )
    ).result();
    console.log(`  stage code on ${HOSTS} hosts over SSH (Temporal): ${seconds(Date.now() - t)}`);

    const a = await configRelease(env, versions(1), 'ssh-a');
    t = Date.now();
    const plain = await plainLoop(env, 'mediawiki-config', a);
    const plainMs = Date.now() - t;
    if (plain.some((r) => r.outcome !== 'done'))
      throw new Error(`plain loop failures: ${JSON.stringify(plain.filter((r) => r.outcome !== 'done').slice(0, 3))}`);
    const b = await configRelease(env, versions(2), 'ssh-b');
    t = Date.now();
    const handle = await startRollout(
      env.client,
      env.config,
      { service: 'mediawiki-config', release: b, selector: {}, strategy: STRATEGY, by: 'bench' },
      'ssh-b',
    );
    const status: RolloutStatus = await handle.result();
    const temporalMs = Date.now() - t;
    const events = await historyEvents(env.client, 'ssh-b', childIds('ssh-b', status));
    console.log(`  config rollout to ${HOSTS} hosts over SSH, plain loop: ${seconds(plainMs)}`);
    console.log(
      `  config rollout to ${HOSTS} hosts over SSH, Temporal: ${seconds(temporalMs)} (${status.failed} failed)`,
    );
    console.log(`  orchestration overhead (Temporal / plain): ${(temporalMs / plainMs).toFixed(2)}x`);
    console.log(`  largest history (events): parent / largest wave: ${events.parent} / ${events.largestChild}`);
    t = Date.now();
    const back = await env.activities.rollbackHosts({
      service: 'mediawiki-config',
      release: b,
      hosts: Object.keys(
        status.waves.length
          ? (await env.activities.currentReleases({ service: 'mediawiki-config', release: b, selector: {} })).current
          : {},
      ),
      by: 'bench',
      runId: 'ssh-rollback',
    });
    console.log(
      `  rollback of ${back.filter((r) => r.outcome === 'rolled-back').length} hosts over SSH (one activity): ${seconds(Date.now() - t)}`,
    );
    console.log(`  peak memory of this process (RSS): ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
  } finally {
    closeTransports();
    await env.stop();
    ssh?.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
