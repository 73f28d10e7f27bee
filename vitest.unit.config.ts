// The fast tier, `npm run test:unit`, for the edit loop: the tests that need no dev server, sandbox fleet, Gerrit
// or sshd (pure rules, the config, recorded GitHub and Temporal histories, and the workflows on the time-skipping
// test server with stand-in activities). `npm test` still runs everything, these included.
import { defineConfig } from 'vitest/config';
import full from './vitest.config';

export const UNIT_TESTS = [
  'test/analysis.test.ts',
  'test/backport-plan.test.ts',
  'test/config.test.ts',
  'test/config-schema.test.ts',
  'test/github.test.ts',
  'test/loadbalancer.test.ts',
  'test/plan.test.ts',
  'test/release.test.ts',
  'test/replay.test.ts',
  'test/temporal-dev.test.ts',
  'test/train-rules.test.ts',
  'test/workflows-unit.test.ts',
];

// The full run's settings, with this tier's files and setup in place of its own (not added to them).
export default defineConfig({
  test: { ...full.test, include: UNIT_TESTS, globalSetup: ['test/global-setup-unit.ts'] },
});
