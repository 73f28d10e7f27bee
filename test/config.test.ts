// A bad signalbox.yml is refused with the file, line, path and fix, and nothing runs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, REPO_ROOT } from '../config/load';
import { applyFastSettings } from './fast-settings';

/** A config file with `text`; open mode unless the text says otherwise, since auth must be written out. */
function configWith(text: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-config-')), 'signalbox.yml');
  fs.writeFileSync(
    file,
    /^auth:/m.test(text) || text.includes('# no auth') ? text : `${text}${text.endsWith('\n') ? '' : '\n'}auth: none\n`,
  );
  return file;
}

function problems(text: string): string {
  try {
    loadConfig(configWith(text));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

describe('config', () => {
  it('wants auth written out: none, or allowed signers with roles that are not empty', () => {
    const services = 'services:\n  mediawiki:\n    link: php\n  mediawiki-config:\n    link: current\n';
    expect(problems(`# no auth\n${services}`)).toMatch(/auth/);
    const roles = (deployers: string) =>
      `auth:\n  allowedSigners: signers\n  roles:\n    deployers: ${deployers}\n    approvers: [alice]\n    admins: [alice]\n${services}`;
    expect(problems(roles('[]'))).toMatch(/auth/);
    expect(problems(roles('["@oncall"]'))).toMatch(/auth\.roles\.deployers: @oncall is not a group under auth\.groups/);
    const ok = loadConfig(
      configWith(`${roles('["@team", carol]')}`.replace('auth:\n', 'auth:\n  groups: { team: [alice, bob] }\n')),
    );
    expect(ok.auth).toMatchObject({
      mode: 'signed',
      roles: { deployers: ['alice', 'bob', 'carol'], approvers: ['alice'], admins: ['alice'] },
      maxAgeSeconds: 300,
    });
    expect(loadConfig(configWith(services)).auth).toEqual({ mode: 'none' });
  });

  it('refuses train.approvers, which no longer decides, naming the role that does', () => {
    const services = 'services:\n  mediawiki:\n    link: php\n  mediawiki-config:\n    link: current\n';
    const named = problems(`${services}train:\n  autoApprove: false\n  approvers: [alice, bob]\n`);
    expect(named).toMatch(
      /line 8, train\.approvers: is no longer read: who may approve a station is auth\.roles\.approvers, checked on the person's verified signature; move these people \(alice, bob\) to auth\.roles\.approvers and delete train\.approvers; under auth: none anyone may approve/,
    );
    // Said once, not also as an unknown key; other problems in the file are still listed.
    expect(named).not.toMatch(/unknown key/);
    const withOthers = problems(`${services}train:\n  approvers: []\nrollout:\n  canary: ten\n`);
    expect(withOthers).toMatch(
      /line 7, train\.approvers: is no longer read: .*; delete train\.approvers \(it is empty\)/,
    );
    expect(withOthers).toMatch(/line 9, rollout\.canary/);
    const signed = `auth:\n  allowedSigners: signers\n  roles: { deployers: [alice], approvers: [alice], admins: [alice] }\n`;
    expect(problems(`${signed}${services}train:\n  approvers:\n    - carol\n`)).toMatch(
      /line 10, train\.approvers: .*move these people \(carol\) to auth\.roles\.approvers and delete train\.approvers$/m,
    );
  });

  it('accepts the shipped default', () => {
    const config = loadConfig(path.join(REPO_ROOT, 'signalbox.yml'));
    expect(config.services['mediawiki-config'].checks.length).toBeGreaterThan(0);
    expect(config.rollout.maxFail).toBe('0');
  });

  it('names the file, the line, the path and the expected value', () => {
    const message = problems('services:\n  web:\n    link: current\nrollout:\n  canary: ten percent\n');
    expect(message).toContain('signalbox.yml is not valid');
    expect(message).toMatch(
      /line 5, rollout\.canary: "ten percent" is not allowed \(expected a whole count such as "3", or a percentage from "0%" to "100%" such as "10%", in quotes\)/,
    );
    // One line per problem: the other anyOf branch ("must be null") and the anyOf summary are noise.
    expect(message.split('\n')).toHaveLength(2);
  });

  it('points at unknown keys and missing fields', () => {
    const message = problems('services:\n  web:\n    linkk: current\n');
    expect(message).toMatch(/line 3, services\.web: has an unknown key "linkk"/);
    expect(message).toMatch(/services\.web: "link" is missing \(expected the symlink switched/);
  });

  it('checks that a check has exactly one kind', () => {
    const message = problems(
      'services:\n  web:\n    link: current\n    checks:\n      - tcp: { port: 80 }\n        command: [true]\n',
    );
    expect(message).toMatch(/services\.web\.checks\.0/);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(problems('services:\n  web: [unclosed\n')).toMatch(/line \d+: .*fix the YAML syntax there/);
  });

  it('says when the file cannot be read', () => {
    expect(() => loadConfig('/nonexistent/signalbox.yml')).toThrow(/cannot be read .*pass --config/);
  });

  it('checks where the forge is: one of gerrit or github, each with what it needs', () => {
    const base = 'services:\n  web:\n    link: current\n';
    expect(problems(`${base}forge:\n  gerrit:\n    url: gerrit.example.org\n`)).toMatch(
      /line 6, forge\.gerrit\.url: "gerrit\.example\.org" is not allowed \(expected the Gerrit web URL, such as https:\/\/gerrit\.example\.org\/\)/,
    );
    expect(problems(`${base}forge:\n  github:\n    apiUrl: https://api.github.com\n`)).toMatch(
      /forge\.github: "owner" is missing \(expected the organisation/,
    );
    expect(
      problems(`${base}forge:\n  gerrit:\n    url: https://g.example.org/\n  github:\n    owner: wikimedia\n`),
    ).toMatch(/forge: must NOT have more than 1 propert/);
    const train = 'services:\n  mediawiki:\n    link: php\n  mediawiki-config:\n    link: current\n';
    const gerrit = loadConfig(configWith(`${train}forge:\n  gerrit:\n    url: https://g.example.org/\n`)).forge?.gerrit;
    expect(gerrit).toEqual({
      url: 'https://g.example.org/',
      user: 'signalbox',
      passwordEnv: 'GERRIT_HTTP_PASSWORD',
      mergeTimeoutMs: 600_000,
    });
  });

  it('refuses amounts over 100% (they would fail inside every workflow) and takes any count or share up to 100%', () => {
    const base = 'services:\n  mediawiki:\n    link: php\n  mediawiki-config:\n    link: current\nrollout:\n';
    const message = problems(`${base}  canary: 150%\n  batch: "100.5%"\n  maxFail: "-1"\n`);
    expect(message).toMatch(
      /line 7, rollout\.canary: "150%" is not allowed \(expected a whole count such as "3", or a percentage from "0%" to "100%"/,
    );
    expect(message).toMatch(/line 8, rollout\.batch: "100\.5%" is not allowed/);
    expect(message).toMatch(/line 9, rollout\.maxFail: "-1" is not allowed/);
    expect(problems(`${base}  canary: 3\n`)).toMatch(
      /line 7, rollout\.canary: 3 is none of the forms allowed \(expected .*or null for no canary wave\)/,
    );
    const rollout = loadConfig(configWith(`${base}  canary: "100%"\n  batch: "99.5%"\n  maxFail: "250"\n`)).rollout;
    expect([rollout.canary, rollout.batch, rollout.maxFail]).toEqual(['100%', '99.5%', '250']);
    expect(
      loadConfig(configWith(`${base}  canary: null\n  batch: "0%"\n  maxFail: "100.0%"\n`)).rollout.canary,
    ).toBeNull();
  });

  it('refuses intervals that would spin and timeouts that make no sense, naming the minimum', () => {
    const base = 'services:\n  mediawiki:\n    link: php\n  mediawiki-config:\n    link: current\n';
    expect(problems(`${base}train:\n  watchIntervalMs: 0\n`)).toMatch(
      /line 7, train\.watchIntervalMs: is 0, must be >= 1000 \(expected time between error measurements during the watch, in milliseconds, at least 1000: shorter pauses only spin\)/,
    );
    expect(problems(`${base}train:\n  watchIntervalMs: 999\n`)).toMatch(
      /train\.watchIntervalMs: is 999, must be >= 1000/,
    );
    expect(problems(`${base}    analysis: { intervalMs: 0 }\n`)).toMatch(
      /line 6, services\.mediawiki-config\.analysis\.intervalMs: is 0, must be >= 1000/,
    );
    expect(problems(`${base}train:\n  blockers: { pollMs: 10, github: { repository: a/b } }\n`)).toMatch(
      /train\.blockers\.pollMs: is 10, must be >= 1000/,
    );
    expect(problems(`${base}train:\n  verifyEveryMs: 50\n`)).toMatch(
      /train\.verifyEveryMs: is 50, must be >= 100 \(expected pause between live-version checks, in milliseconds, at least 100: /,
    );
    expect(problems(`${base}train:\n  verifyTimeoutMs: 0\n`)).toMatch(/train\.verifyTimeoutMs: is 0, must be >= 1000/);
    expect(problems(`${base}train:\n  watchMs: -1\n`)).toMatch(/train\.watchMs: is -1, must be >= 0/);
    expect(problems(`${base}    checks: [{ tcp: { port: 80 }, timeoutMs: 0 }]\n`)).toMatch(
      /services\.mediawiki-config\.checks\.0\.timeoutMs: is 0, must be >= 100/,
    );
    expect(problems(`${base}fleet:\n  sandbox: {}\n  ssh: { connectTimeoutMs: 0, commandTimeoutMs: 0 }\n`)).toMatch(
      /fleet\.ssh\.connectTimeoutMs: is 0, must be >= 1000[^]*fleet\.ssh\.commandTimeoutMs: is 0, must be >= 1000/,
    );
    const train = loadConfig(
      configWith(
        `${base}train:\n  watchIntervalMs: 1000\n  verifyEveryMs: 100\n  verifyTimeoutMs: 1000\n  watchMs: 0\n`,
      ),
    ).train;
    expect([train.watchIntervalMs, train.verifyEveryMs, train.verifyTimeoutMs, train.watchMs]).toEqual([
      1000, 100, 1000, 0,
    ]);
  });

  it("keeps the tests' fast settings valid (measurements every second, live checks every 200 ms, a 300 ms watch)", () => {
    // The same changes test/helpers.ts makes to the shipped file for every sandbox.
    const raw = parse(fs.readFileSync(DEFAULT_CONFIG_FILE, 'utf8'));
    applyFastSettings(raw);
    const config = loadConfig(configWith(stringify(raw)));
    expect(config.train.verifyEveryMs).toBe(200);
    expect(config.train.watchMs).toBe(300);
  });

  it('refuses a train that names a service it does not have', () => {
    expect(problems('services:\n  web:\n    link: current\n')).toMatch(/train\.codeService: names service "mediawiki"/);
  });
});
