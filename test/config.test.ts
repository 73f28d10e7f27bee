// A bad signalbox.yml is refused with the file, line, path and fix, and nothing runs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, REPO_ROOT } from '../config/load';

function configWith(text: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-config-')), 'signalbox.yml');
  fs.writeFileSync(file, text);
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
  it('accepts the shipped default', () => {
    const config = loadConfig(path.join(REPO_ROOT, 'signalbox.yml'));
    expect(config.services['mediawiki-config'].checks.length).toBeGreaterThan(0);
    expect(config.rollout.maxFail).toBe('0');
  });

  it('names the file, the line, the path and the expected value', () => {
    const message = problems('services:\n  web:\n    link: current\nrollout:\n  canary: ten percent\n');
    expect(message).toContain('signalbox.yml is not valid');
    expect(message).toMatch(/line 5, rollout\.canary: .*expected a count such as "3" or a percentage such as "10%"/);
  });

  it('points at unknown keys and missing fields', () => {
    const message = problems('services:\n  web:\n    linkk: current\n');
    expect(message).toMatch(/line 3, services\.web: has an unknown key "linkk"/);
    expect(message).toMatch(/services\.web: must have required property 'link'/);
  });

  it('checks that a check has exactly one kind', () => {
    const message = problems('services:\n  web:\n    link: current\n    checks:\n      - tcp: { port: 80 }\n        command: [true]\n');
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
    expect(problems(`${base}forge:\n  gerrit:\n    url: gerrit.example.org\n`)).toMatch(/line 6, forge\.gerrit\.url: must match pattern "\^https\?:\/\/"/);
    expect(problems(`${base}forge:\n  github:\n    apiUrl: https://api.github.com\n`)).toMatch(/forge\.github: must have required property 'owner'/);
    expect(problems(`${base}forge:\n  gerrit:\n    url: https://g.example.org/\n  github:\n    owner: wikimedia\n`)).toMatch(/forge: must NOT have more than 1 propert/);
    const train = 'services:\n  mediawiki:\n    link: php\n  mediawiki-config:\n    link: current\n';
    const gerrit = loadConfig(configWith(`${train}forge:\n  gerrit:\n    url: https://g.example.org/\n`)).forge?.gerrit;
    expect(gerrit).toEqual({ url: 'https://g.example.org/', user: 'signalbox', passwordEnv: 'GERRIT_HTTP_PASSWORD', mergeTimeoutMs: 600_000 });
  });

  it('refuses a train that names a service it does not have', () => {
    expect(problems('services:\n  web:\n    link: current\n')).toMatch(/train\.codeService: names service "mediawiki"/);
  });
});
