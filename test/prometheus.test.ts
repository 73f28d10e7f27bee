// Canary analysis reading a real Prometheus that scrapes the sandbox hosts.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { RolloutStatus } from '../workflows/definitions';
import { fleetFile, type SandboxFleetFile } from '../activities/inventory';
import { promQuery } from '../activities/metrics';
import { freePort, waitForHttp } from '../sandbox/fleet';
import { findTool } from '../tools/setup';
import { configLinks, configMoving, failureOf, NEW, rollout, startSandbox, type Sandbox } from './helpers';

let sandbox: Sandbox | undefined;
let prometheus: ChildProcess | undefined;

afterEach(async () => {
  prometheus?.kill('SIGTERM');
  await sandbox?.stop();
  sandbox = undefined;
  prometheus = undefined;
});

async function withPrometheus(): Promise<{ sandbox: Sandbox; url: string }> {
  const s = await startSandbox({ worker: false, trafficPerSecond: 200 });
  const binary = findTool({
    command: 'prometheus',
    paths: ['/usr/bin/prometheus'],
    debianPackage: 'prometheus',
    why: '',
  });
  if (!binary) throw new Error('prometheus is missing; `npm test` installs it (Debian package prometheus)');
  const fleet: SandboxFleetFile = JSON.parse(fs.readFileSync(fleetFile(s.home), 'utf8'));
  const dir = path.join(s.home, 'prometheus');
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      scrape_configs: [
        { job_name: 'sandbox', static_configs: [{ targets: fleet.hosts.map((h) => `${h.address}:${h.port}`) }] },
      ],
    }),
  );
  const url = `http://127.0.0.1:${await freePort()}`;
  prometheus = spawn(
    binary,
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=${url.slice(7)}`,
    ],
    { stdio: 'ignore' },
  );
  await waitForHttp(`${url}/-/ready`, 30_000, 'Prometheus');
  s.reconfigure((raw) => {
    raw.services['mediawiki-config'].analysis = {
      source: 'prometheus',
      prometheusUrl: url,
      intervalMs: 4000,
      measurements: 1,
      failureLimit: 0,
      maxErrorRate: 0.01,
      maxRatioToBaseline: 5,
      minRequests: 5,
      power: 0, // a single 4 s measurement cannot vouch for a release; this test is about reading Prometheus
    };
  });
  await s.startWorker();
  // Let Prometheus gather a few scrapes of every host before the analysis asks for increases.
  const sum = async () => promQuery(url, 'count(mediawiki_up)');
  for (let i = 0; i < 100 && (await sum().catch(() => 0)) < fleet.hosts.length; i++)
    await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 3000));
  return { sandbox: s, url };
}

describe('canary analysis from Prometheus', () => {
  it('passes a healthy canary and fails a faulty one, rolling it back', async () => {
    const env = await withPrometheus();
    sandbox = env.sandbox;
    const healthy = await configMoving(sandbox, ['testwikis']);
    const ok: RolloutStatus = await (await rollout(sandbox, healthy)).result();
    expect(ok.phase).toBe('done');
    // Every version fails a few requests (the sandbox's background rate): the healthy canary passes with them.
    expect(ok.analysis).toMatchObject({ subject: 'canaries of mediawiki-config', phase: 'pass' });
    expect(ok.analysis!.summary).toMatch(
      /^pass after sample 1 of 1; errors: errors \d\.\d\d% of [\d,]+ vs \d\.\d\d% of [\d,]+ on the baseline; mixture SPRT/,
    );

    fs.writeFileSync(
      path.join(sandbox.home, 'sandbox', 'faults.json'),
      JSON.stringify({ [NEW]: { groups: { group2: { errorRate: 0.5 } } } }),
    );
    const before = await configLinks(sandbox);
    const faulty = await configMoving(sandbox, ['testwikis', 'group0', 'group1', 'group2']);
    const failure = failureOf(await (await rollout(sandbox, faulty)).result().catch((e) => e));
    expect(failure.message).toMatch(
      /^canary analysis failed: errors: errors [1-9]\d*\.\d\d% of [\d,]+ vs \d\.\d\d% of [\d,]+ on the baseline; /,
    );
    expect(await configLinks(sandbox)).toEqual(before);
  });
});
