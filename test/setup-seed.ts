// Runs in every test file: the fixed seed goes to every sandbox fleet the file makes (and to the processes it
// starts), and a failing test says which seed it ran on.
import { beforeEach } from 'vitest';
import { SEED_VARIABLE } from '../sandbox/random';
import { TEST_SEED } from './seed';

process.env[SEED_VARIABLE] = String(TEST_SEED);

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    console.error(`seed: ${TEST_SEED} (to run again on it: ${SEED_VARIABLE}=${TEST_SEED} npx vitest run <file>)`);
  });
});
