// signalbox.schema.json, for editors, is written from the definition of signalbox.yml and must not fall behind it;
// loading fills in the defaults that definition declares.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, REPO_ROOT } from '../config/load';
import { schemaJson } from '../config/schema';
import { DEFAULT_WINDOWS } from '../workflows/windows';

describe('signalbox.schema.json', () => {
  it('is the schema config/schema.ts defines', () => {
    const committed = fs.readFileSync(path.join(REPO_ROOT, 'signalbox.schema.json'), 'utf8');
    expect(committed, 'signalbox.schema.json is out of date: run `npm run schema` and commit it').toBe(schemaJson());
  });

  it("fills in the schema's defaults, a station's window over its default one", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-config-')), 'signalbox.yml');
    fs.writeFileSync(
      file,
      'auth: none\nservices:\n  mediawiki: { link: php }\n  mediawiki-config: { link: current }\n' +
        'train:\n  windows: { group1: { day: Mon, to: "12:00" } }\n',
    );
    const config = loadConfig(file);
    const schema = JSON.parse(schemaJson()).properties;
    expect(config.fleet.ssh.connectTimeoutMs).toBe(schema.fleet.properties.ssh.properties.connectTimeoutMs.default);
    expect(config.train.gate).toBe(schema.train.properties.gate.default);
    expect(config.services.mediawiki).toMatchObject({ keep: 5, checks: [] });
    expect(config.train.windows).toEqual({
      timezone: 'UTC',
      stations: { ...DEFAULT_WINDOWS, group1: { day: 'Mon', from: '00:00', to: '12:00' } },
    });
  });
});
