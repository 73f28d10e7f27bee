// For tests of a host lock that is lost mid-step: a restart slow enough to kill a worker or drop its connection
// in, which writes on the host when it begins and ends (tagged with the release it restarts onto), a worker of
// its own to kill, and the check that no two operations' steps overlapped.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { HostsRequest } from '../activities/hosts';
import { REPO_ROOT } from '../config/load';
import { waitFor, type Sandbox } from './helpers';

export const SERVICE = 'mediawiki-config';

/** signalbox.yml's sandbox restart, slowed to `seconds`, noting on the host when it begins and ends. */
export function slowRestart(raw: any, seconds = 2): void {
  raw.services[SERVICE].restart = [
    'sh',
    '-c',
    [
      'echo "begin {{release}} $$" >> {{root}}/steps',
      `sleep ${seconds}`,
      'curl -fsS -X POST {{sandboxControl}}/hosts/{{host}}/restart > /dev/null; s=$?',
      'echo "end {{release}} $$" >> {{root}}/steps',
      'exit $s',
    ].join('; '),
  ];
}

export interface Step {
  edge: 'begin' | 'end';
  /** The release the restart went onto ('' for none). */
  release: string;
  pid: number;
}

export function steps(root: string): Step[] {
  const file = path.join(root, 'steps');
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [edge, ...rest] = line.split(' ');
      return { edge: edge as Step['edge'], release: rest.length > 1 ? rest[0] : '', pid: Number(rest.at(-1)) };
    });
}

/** Waits until a restart onto `release` has begun on the host (and not yet ended). */
export async function restartBegun(root: string, release: string): Promise<void> {
  await waitFor(
    `a restart onto ${release} to begin`,
    async () => {
      const seen = steps(root).filter((s) => s.release === release);
      return seen.at(-1)?.edge === 'begin' || undefined;
    },
    20_000,
    50,
  );
}

/** Every restart on the host ended before the next one began: no two operations' steps overlapped. */
export function expectNoOverlap(root: string): Step[] {
  const seen = steps(root);
  const shown = seen.map((s) => `${s.edge} ${s.release || '-'} (pid ${s.pid})`).join(', ');
  seen.forEach((step, i) => {
    const wanted = i % 2 === 0 ? { edge: 'begin' } : { edge: 'end', pid: seen[i - 1].pid };
    expect(step, `step ${i + 1} of: ${shown}`).toMatchObject(wanted);
  });
  expect(seen.length % 2, `every restart ended: ${shown}`).toBe(0);
  return seen;
}

/** A promote in a worker process of its own (test/host-op-process.ts), to kill mid-step. */
export function promoteElsewhere(s: Sandbox, request: HostsRequest): ChildProcess {
  return spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(REPO_ROOT, 'test', 'host-op-process.ts'),
      s.configFile,
      s.home,
      'promoteHosts',
      JSON.stringify(request),
    ],
    { stdio: 'ignore', cwd: REPO_ROOT },
  );
}
