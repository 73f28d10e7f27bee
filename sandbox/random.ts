// The sandbox's randomness, seeded: traffic, errors, latency and crash timing all draw from pure-rand's
// xoroshiro128+, so a test (or a demo worth repeating) can fix the seed. Each purpose draws from a stream of its
// own, so that how many draws one part made (which depends on timing) does not shift the draws of another.
import crypto from 'node:crypto';
import { xoroshiro128plus } from 'pure-rand';

/** A uniform draw in [0, 1), as Math.random gives. */
export type Random = () => number;

export const SEED_VARIABLE = 'SIGNALBOX_SANDBOX_SEED';
const MAX_SEED = 2 ** 32 - 1;

/** A uniform generator on [0, 1) with 53 random bits, from a 32-bit seed. */
export function seededRandom(seed: number): Random {
  const rng = xoroshiro128plus(seed | 0);
  return () => {
    const high = rng.unsafeNext() >>> 5; // 27 bits
    const low = rng.unsafeNext() >>> 6; // 26 bits
    return (high * 2 ** 26 + low) / 2 ** 53;
  };
}

/** The stream for one purpose (a host's errors, the traffic generator) of a fleet seeded `seed`. */
export function randomStream(seed: number, purpose: string): Random {
  const derived = crypto
    .createHash('sha256')
    .update(`${seed >>> 0}/${purpose}`)
    .digest()
    .readUInt32BE(0);
  return seededRandom(derived);
}

/** A seed read from text: a whole number from 0 to 2^32 - 1. */
export function parseSeed(text: string, where: string): number {
  const seed = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(seed) || seed > MAX_SEED)
    throw new Error(`${where} must be a whole number from 0 to ${MAX_SEED}, not ${JSON.stringify(text)}`);
  return seed;
}

/** The seed a new fleet gets: the one given (fleet.sandbox.seed), else $SIGNALBOX_SANDBOX_SEED, else a fresh one. */
export function chooseSeed(given?: number, env: NodeJS.ProcessEnv = process.env): number {
  if (given !== undefined) return given;
  const fromEnv = env[SEED_VARIABLE];
  if (fromEnv !== undefined && fromEnv !== '') return parseSeed(fromEnv, SEED_VARIABLE);
  return crypto.randomInt(0, 2 ** 31);
}
