// The seed of every random draw the tests make: the sandbox fleets' traffic (through $SIGNALBOX_SANDBOX_SEED,
// which test/setup-seed.ts sets for the test process and everything it starts) and the tests' own random input.
// Fixed, so a run can be repeated; a failing test prints it. SIGNALBOX_SANDBOX_SEED=<n> runs the suite on another.
import { parseSeed, SEED_VARIABLE } from '../sandbox/random';

const given = process.env[SEED_VARIABLE];
export const TEST_SEED = given ? parseSeed(given, SEED_VARIABLE) : 20_170_417;

/**
 * The bounds within which a share seen in `n` trials of chance `p` falls but for bad luck: `sds` standard deviations
 * of the binomial either way (five: about one run in 1.7 million falls outside by chance).
 */
export function binomialBand(p: number, n: number, sds = 5): { low: number; high: number } {
  const sd = Math.sqrt((p * (1 - p)) / n);
  return { low: p - sds * sd, high: p + sds * sd };
}
