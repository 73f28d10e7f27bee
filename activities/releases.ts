// Staging: a release is a tree exported from a forge ref, named by its name plus a content hash. Hosts verify the
// same hash after fetching, so what runs is exactly what was staged.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Forge } from './forge';
import { promisify } from 'node:util';
import { checkServiceName, releaseIdFor } from '../workflows/names';

const run = promisify(execFile);

export interface Release {
  id: string;
  name: string;
  service: string;
  contentHash: string;
  /** The forge commit it was built from. */
  sha: string;
}

/** Where a staged release came from: one tree can be built from several commits with the same content. */
export interface ReleaseSource {
  repo: string;
  shas: string[];
}

const sourceFile = (stagingDir: string, service: string, id: string) =>
  path.join(stagingDir, checkServiceName(service), '.sources', `${id}.json`);

export function releaseSource(stagingDir: string, service: string, id: string): ReleaseSource | null {
  try {
    return JSON.parse(fs.readFileSync(sourceFile(stagingDir, service, id), 'utf8'));
  } catch {
    return null;
  }
}

function recordSource(stagingDir: string, service: string, id: string, repo: string, sha: string): void {
  const known = releaseSource(stagingDir, service, id);
  if (known?.repo === repo && known.shas.includes(sha)) return;
  const file = sourceFile(stagingDir, service, id);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const next: ReleaseSource = { repo, shas: [...(known?.repo === repo ? known.shas : []), sha] };
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(next));
  fs.renameSync(`${file}.tmp`, file);
}

function listFiles(dir: string, prefix = '.'): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...listFiles(path.join(dir, entry.name), rel));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

/** Same bytes as `find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum` run in `dir`. */
export function treeHash(dir: string): string {
  const files = listFiles(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const manifest = crypto.createHash('sha256');
  for (const rel of files) {
    if (/[\\\n]/.test(rel))
      throw new Error(`file name ${JSON.stringify(rel)} has a backslash or newline, which hosts cannot verify`);
    const digest = crypto
      .createHash('sha256')
      .update(fs.readFileSync(path.join(dir, rel)))
      .digest('hex');
    manifest.update(`${digest}  ${rel}\n`);
  }
  return manifest.digest('hex');
}

/** A stage that cannot finish until a person fixes something: a patch that no longer applies, a failed build. */
export class StageBlocked extends Error {}

export class BuildFailed extends StageBlocked {
  constructor(command: string[], code: number | string | null, output: string) {
    const tail = output.trim().split('\n').slice(-3).join(' / ');
    super(`build \`${command.join(' ')}\` failed (exit ${code ?? 'by signal'})${tail ? `: ${tail}` : ''}`);
    this.name = 'BuildFailed';
  }
}

/**
 * What a build sees of the worker's environment: enough to find tools and write files, nothing that may hold a
 * credential (tokens, passwords, proxy URLs with userinfo). A build is code from the branch: it gets no secrets.
 */
const BUILD_ENV_ALLOWED = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'TERM',
];

export function buildEnvironment(releaseName: string, from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of BUILD_ENV_ALLOWED) if (from[name] !== undefined) env[name] = from[name];
  env.SIGNALBOX_RELEASE = releaseName;
  return env;
}

/** Runs the service's build in the tree, with the release name and an allowlisted environment. */
async function runBuild(dir: string, command: string[], name: string): Promise<void> {
  try {
    await run(command[0], command.slice(1), {
      cwd: dir,
      env: buildEnvironment(name),
      timeout: 60 * 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    throw new BuildFailed(command, e.code ?? null, `${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

export class PatchFailed extends StageBlocked {
  constructor(
    readonly patch: string,
    readonly output: string,
  ) {
    super(
      `security patch ${patch} does not apply (git am: ${
        output
          .split('\n')
          .filter((l) => /error|fail/i.test(l) && !/^(If you|To restore|hint:)/.test(l))
          .slice(0, 3)
          .join(' / ') || output.slice(0, 300)
      })`,
    );
    this.name = 'PatchFailed';
  }
}

/**
 * Applies each patch (git format-patch output, in name order) to the tree in `dir` with `git am`, in a throwaway
 * repository, as scap applies security patches on the deploy server. Nothing is pushed: the patches stay private.
 */
export async function applyPatches(dir: string, patches: string[]): Promise<void> {
  if (!patches.length) return;
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: 'signalbox',
    GIT_AUTHOR_EMAIL: 'signalbox@localhost',
    GIT_COMMITTER_NAME: 'signalbox',
    GIT_COMMITTER_EMAIL: 'signalbox@localhost',
  };
  const git = (args: string[]) => run('git', args, { cwd: dir, env, maxBuffer: 16 * 1024 * 1024 });
  await git(['init', '--quiet']);
  await git(['add', '--all']);
  await git(['commit', '--quiet', '--allow-empty', '-m', 'staged branch']);
  for (const patch of patches) {
    try {
      await git(['am', '--quiet', '--3way', patch]);
    } catch (err) {
      const output = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`;
      await git(['am', '--abort']).catch(() => undefined);
      throw new PatchFailed(path.basename(patch), output);
    }
  }
  fs.rmSync(path.join(dir, '.git'), { recursive: true, force: true });
}

export interface StageOptions {
  /** git format-patch files applied in order (security patches). */
  patches?: string[];
  build?: string[];
}

/** Exports `ref`, applies patches, builds, and names the tree; staging the same tree again returns the existing release. */
export async function stageFromForge(
  forge: Forge,
  stagingDir: string,
  service: string,
  repo: string,
  ref: string,
  name: string,
  options: StageOptions = {},
): Promise<Release> {
  const { patches = [], build } = options;
  const serviceDir = path.join(stagingDir, checkServiceName(service));
  const sha = await forge.resolve(repo, ref);
  const work = path.join(serviceDir, `.build-${sha}-${process.pid}`);
  fs.rmSync(work, { recursive: true, force: true });
  await forge.exportTree(repo, sha, work);
  try {
    await applyPatches(work, patches);
    if (build) await runBuild(work, build, name);
  } catch (err) {
    fs.rmSync(work, { recursive: true, force: true });
    throw err;
  }
  const contentHash = treeHash(work);
  const id = releaseIdFor(name, contentHash);
  const final = path.join(serviceDir, id);
  if (fs.existsSync(final)) fs.rmSync(work, { recursive: true, force: true });
  else fs.renameSync(work, final);
  // Patched trees are not what the commit holds, but the commit's changes are all in them, which is what Depends-On asks.
  recordSource(stagingDir, service, id, repo, sha);
  return { id, name, service, contentHash, sha };
}
