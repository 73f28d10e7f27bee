// Planning waves from the hosts' own state: canaries first, counted against hosts already on the release.
import { describe, expect, it } from 'vitest';
import { planRollout, DEFAULT_STRATEGY } from '../workflows/plan';
import { InvalidNameError, parseAmount } from '../workflows/names';

const fleet = (n: number, onRelease: number[] = []) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`mw${1001 + i}`, onRelease.includes(i) ? 'new' : 'old']));

describe('planRollout', () => {
  it('puts named canaries first, then batches of the rest', () => {
    const plan = planRollout(fleet(20), 'new', {
      ...DEFAULT_STRATEGY,
      canary: '10%',
      batch: '50%',
      canaryHosts: ['mw1013'],
    });
    expect(plan.waves.map((w) => w.name)).toEqual(['canary', 'batch 1', 'batch 2']);
    expect(plan.waves[0].hosts).toEqual(['mw1013', 'mw1001']);
    expect(plan.waves[1].hosts).toHaveLength(10);
    expect(plan.waves.flatMap((w) => w.hosts).sort()).toEqual(Object.keys(fleet(20)).sort());
  });

  it('widens a canary from 10% to 20% by adding only the hosts still needed (seed 004)', () => {
    const first = planRollout(fleet(50), 'new', { ...DEFAULT_STRATEGY, canary: '10%', batch: '0' });
    expect(first.waves).toHaveLength(1);
    expect(first.waves[0].hosts).toHaveLength(5);
    const onRelease = first.waves[0].hosts.map((h) => Number(h.slice(2)) - 1001);
    const second = planRollout(fleet(50, onRelease), 'new', { ...DEFAULT_STRATEGY, canary: '20%', batch: '0' });
    expect(second.alreadyOnRelease).toEqual(first.waves[0].hosts);
    expect(second.waves[0].hosts).toHaveLength(5);
    expect(second.waves[0].hosts.some((h) => first.waves[0].hosts.includes(h))).toBe(false);
  });

  it('never takes a host that serves no traffic as a canary, nor counts it as one when already on the release', () => {
    // A backport's test servers (in no pool) run the release before production: the canaries must still be real.
    const current = { ...fleet(8), mwdebug1001: 'new', mwdebug1002: null };
    const plan = planRollout(current, 'new', {
      ...DEFAULT_STRATEGY,
      canary: '10%',
      canaryHosts: ['mwdebug1002'],
      idleHosts: ['mwdebug1001', 'mwdebug1002'],
    });
    expect(plan.waves[0].name).toBe('canary');
    expect(plan.waves[0].hosts).toHaveLength(1);
    expect(plan.waves[0].hosts[0]).not.toMatch(/^mwdebug/);
    expect(plan.waves.flatMap((w) => w.hosts)).toContain('mwdebug1002');
    // Without the rule, the test server already on the release would have stood in for the canary wave.
    const naive = planRollout(current, 'new', { ...DEFAULT_STRATEGY, canary: '10%' });
    expect(naive.waves[0].name).not.toBe('canary');
  });

  it('does nothing on a fleet already on the release', () => {
    const plan = planRollout(fleet(8, [0, 1, 2, 3, 4, 5, 6, 7]), 'new', DEFAULT_STRATEGY);
    expect(plan.waves).toEqual([]);
    expect(plan.alreadyOnRelease).toHaveLength(8);
  });

  it('turns max-fail into a host count, tolerating none by default', () => {
    expect(planRollout(fleet(40), 'new', DEFAULT_STRATEGY).maxFailures).toBe(0);
    expect(planRollout(fleet(40), 'new', { ...DEFAULT_STRATEGY, maxFail: '5%' }).maxFailures).toBe(2);
    expect(planRollout(fleet(40), 'new', { ...DEFAULT_STRATEGY, maxFail: '3' }).maxFailures).toBe(3);
  });

  it('refuses amounts that are not counts or percentages', () => {
    expect(() => parseAmount('ten', 10, 'batch')).toThrow(InvalidNameError);
    expect(() => parseAmount('150%', 10, 'canary')).toThrow(/between 0% and 100%/);
    expect(parseAmount('1%', 1000, 'canary')).toBe(10);
    expect(parseAmount('0.1%', 10, 'canary')).toBe(1);
  });

  it('refuses negative, empty and not-a-number amounts with a message that says what to give', () => {
    expect(() => parseAmount('-1', 10, 'batch')).toThrow(
      'invalid batch "-1": an amount cannot be negative; expected a whole count such as 5, or a percentage from 0% to 100% such as 10%',
    );
    expect(() => parseAmount('-5%', 10, 'canary')).toThrow(/an amount cannot be negative/);
    expect(() => parseAmount(-1, 10, 'max-fail')).toThrow(/an amount cannot be negative/);
    expect(() => parseAmount('', 10, 'canary')).toThrow('invalid canary "": it is empty; expected a whole count');
    expect(() => parseAmount('  ', 10, 'canary')).toThrow(/it is empty/);
    for (const bad of ['NaN', NaN, 'Infinity', Infinity, '1.5', 1.5, '1e3', '0x10', '10 %', '%']) {
      expect(() => parseAmount(bad, 10, 'batch'), String(bad)).toThrow(
        /expected a whole count such as 5, or a percentage from 0% to 100% such as 10%/,
      );
    }
    expect(parseAmount('100%', 7, 'batch')).toBe(7);
    expect(parseAmount(' 3 ', 7, 'batch')).toBe(3);
  });
});
