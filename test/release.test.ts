// A release's content hash is computed the same way by the deploy server (Node) and by hosts (sh + sha256sum),
// and a host refuses a fetched tree whose hash differs from the staged one.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { activateRelease, fetchRelease, readService, releasesToPrune } from '../activities/host-ops';
import { treeHash } from '../activities/releases';
import { LocalTransport } from '../activities/transport';

function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-tree-'));
  for (const [file, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), content);
  }
  return dir;
}

describe('releases', () => {
  it('hashes a tree exactly as the host-side pipeline does', () => {
    const dir = tree({
      VERSION: '1\n',
      'includes/a.php': '<?php',
      'includes/B.php': 'b',
      'z z/with space': 'x',
      'é.txt': 'unicode',
    });
    const shell = execFileSync(
      'sh',
      ['-c', `find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1`],
      { cwd: dir, encoding: 'utf8' },
    ).trim();
    expect(treeHash(dir)).toBe(shell);
  });

  it('fetches by rsync, verifies, switches atomically, and refuses a tampered source', async () => {
    const source = tree({ 'wikiversions.json': '{}' });
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-host-'));
    const t = new LocalTransport('test');
    const good = treeHash(source);
    await fetchRelease(t, 'test', root, 'cfg', `config-${good.slice(0, 12)}`, source, good);
    await activateRelease(t, 'test', root, 'cfg', `config-${good.slice(0, 12)}`, 'current', {
      current: `config-${good.slice(0, 12)}`,
      previous: null,
      lastStable: null,
      deployedBy: 'me',
      runId: 'r1',
    });
    const onHost = await readService(t, 'test', root, 'cfg');
    expect(onHost.links.current).toBe(`revs/config-${good.slice(0, 12)}`);
    expect(onHost.state).toMatchObject({ deployedBy: 'me', runId: 'r1' });

    fs.writeFileSync(path.join(source, 'wikiversions.json'), '{"tampered": true}');
    const claimed = 'a'.repeat(64);
    await expect(fetchRelease(t, 'test', root, 'cfg', 'config-aaaaaaaaaaaa', source, claimed)).rejects.toThrow(
      /content hash mismatch/,
    );
    expect(fs.readdirSync(path.join(root, 'cfg', 'revs'))).toEqual([`config-${good.slice(0, 12)}`]);
    await expect(
      activateRelease(t, 'test', root, 'cfg', 'config-aaaaaaaaaaaa', 'current', {
        current: null,
        previous: null,
        lastStable: null,
      }),
    ).rejects.toThrow(/not on this host/);
  });

  it('prunes all but the newest releases, never one a link uses', () => {
    const onHost = {
      state: { current: 'r1', previous: null, lastStable: null },
      links: { current: 'revs/r7' },
      revs: ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7'],
      logSizes: {},
    };
    expect(releasesToPrune(onHost, 5)).toEqual(['r6']);
  });
});

describe('fetching a release next to an older one', () => {
  it('does not hard-link an old file that has the same size and mtime but other content', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-host-'));
    const t = new LocalTransport('test');
    const older = tree({ VERSION: '1.41.0-wmf.25\n' });
    const newer = tree({ VERSION: '1.41.0-wmf.26\n' });
    const sameTime = new Date('2026-01-01T00:00:00Z');
    fs.utimesSync(path.join(older, 'VERSION'), sameTime, sameTime);
    fs.utimesSync(path.join(newer, 'VERSION'), sameTime, sameTime);
    for (const dir of [older, newer]) {
      const hash = treeHash(dir);
      await fetchRelease(t, 'test', root, 'code', `v-${hash.slice(0, 12)}`, dir, hash);
    }
    expect(
      fs.readFileSync(path.join(root, 'code', 'revs', `v-${treeHash(newer).slice(0, 12)}`, 'VERSION'), 'utf8'),
    ).toBe('1.41.0-wmf.26\n');
  });
});
