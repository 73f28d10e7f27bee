// temporal-dev.yml is for teams with Docker; it must agree with what the code assumes.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, REPO_ROOT } from '../config/load';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../workflows/definitions';

const compose = parse(fs.readFileSync(path.join(REPO_ROOT, 'temporal-dev.yml'), 'utf8'));
const defaults = loadConfig(path.join(REPO_ROOT, 'signalbox.yml'));

describe('temporal-dev.yml', () => {
  it('runs the server on PostgreSQL, plus the UI', () => {
    expect(compose.services.temporal.environment.DB).toMatch(/^postgres/);
    expect(compose.services.temporal.depends_on).toHaveProperty('postgresql');
    expect(compose.services.postgresql.image).toMatch(/^postgres:/);
    expect(compose.services['temporal-ui'].environment.TEMPORAL_ADDRESS).toBe('temporal:7233');
  });

  it('publishes the address and UI port, and makes the namespace, that signalbox.yml uses', () => {
    const [host, port] = defaults.temporal.address.split(':');
    expect(compose.services.temporal.ports).toContain(`${host}:${port}:7233`);
    expect(compose.services['temporal-ui'].ports).toContain(`${host}:${defaults.temporal.uiPort}:8080`);
    expect(compose.services.temporal.environment.DEFAULT_NAMESPACE).toBe(defaults.temporal.namespace);
  });

  it('registers exactly the search attributes the workflows use, with their types', () => {
    const script: string = compose.services['register-search-attributes'].command.join(' ');
    const names = /for attribute in ([^;]+?); do/.exec(script)![1].trim().split(/\s+/);
    expect(names.sort()).toEqual(Object.keys(SEARCH_ATTRIBUTE_REGISTRATIONS).sort());
    expect(new Set(Object.values(SEARCH_ATTRIBUTE_REGISTRATIONS))).toEqual(new Set([/--type (\w+)/.exec(script)![1]]));
    expect(script).toContain(`--namespace ${defaults.temporal.namespace}`);
  });
});
