// What the command groups share: option parsers, the configuration of a command, output, and resolving the version
// or release a command names.
import fs from 'node:fs';
import readline from 'node:readline/promises';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig, type SignalboxConfig } from '../config/load';
import { forgeFor, loadInventory } from '../activities/inventory';
import { stageFromForge, treeHash, type Release } from '../activities/releases';
import { createTrainActivities, CONFIG_REPO, stageVersion } from '../activities/train';
import { checkReleaseId, checkVersion, InvalidNameError } from '../workflows/names';
import { UserError } from './client';

// Option parsers: commander would hand over Number("abc"), which is NaN and passes every later `<` check.
export function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const text = value.trim();
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return Number(text);
  };
}

export function shareOfOne(value: string): number {
  const text = value.trim();
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text) || Number(text) > 1)
    throw new InvalidArgumentError('expected a number from 0 to 1, such as 0.05');
  return Number(text);
}

export function hostList(value: string): string[] {
  const names = value.split(',').map((h) => h.trim());
  if (names.some((h) => !h))
    throw new InvalidArgumentError(
      'expected host names separated by commas, such as mw1001,mw1002, with no empty name (leave --hosts out to deploy to every host)',
    );
  return names;
}

export function groupName(value: string): string {
  if (!value.trim())
    throw new InvalidArgumentError('expected a group name such as canary (leave --group out to deploy to every host)');
  return value.trim();
}

export function config(cmd: Command): SignalboxConfig {
  return loadConfig(cmd.optsWithGlobals().config);
}

export function print(json: boolean, value: unknown, text: () => string): void {
  console.log(json ? JSON.stringify(value, null, 2) : text());
}

/** A version, or "auto": the next wmf.N after the newest wmf/ branch (or what group2 runs). */
export async function resolveVersion(cfg: SignalboxConfig, version: string): Promise<string> {
  if (version !== 'auto') return checkVersion(version);
  return createTrainActivities(cfg).nextTrainVersion();
}

/** A staged release id, or a version (staged from its branch) for the code service, or a ref for the config service. */
export async function resolveRelease(cfg: SignalboxConfig, service: string, spec: string): Promise<Release> {
  const inventory = loadInventory(cfg);
  const staged = path.join(inventory.stagingDir, service, spec);
  if (/-[0-9a-f]{12}$/.test(spec)) {
    checkReleaseId(spec);
    if (!fs.existsSync(staged))
      throw new UserError(`release ${spec} is not staged for ${service} (looked in ${staged})`);
    return { id: spec, name: spec.slice(0, -13), service, contentHash: treeHash(staged), sha: 'staged' };
  }
  if (service === cfg.train.codeService) {
    const version = checkVersion(spec);
    return stageVersion(cfg, forgeFor(cfg, inventory), version).catch((err) => {
      // The operator at this terminal may see an embargoed failure's details; public channels never do.
      throw new UserError(
        (err as { details?: { embargoed?: string }[] }).details?.[0]?.embargoed ?? (err as Error).message,
      );
    });
  }
  if (service === cfg.train.configService) {
    if (!/^[A-Za-z0-9][A-Za-z0-9/._-]*$/.test(spec))
      throw new InvalidNameError('ref', spec, 'expected a branch or commit of the config repository');
    return stageFromForge(forgeFor(cfg, inventory), inventory.stagingDir, service, CONFIG_REPO, spec, 'config', {
      build: cfg.services[service].build,
    });
  }
  throw new UserError(`give a staged release id for ${service}, such as name-0123456789ab`);
}

export function bar(done: number, total: number, width = 30): string {
  const filled = total ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

export async function ask(question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}
