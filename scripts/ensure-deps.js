#!/usr/bin/env node
// Runs before `npm start` and `npm test`: installs the npm dependencies when node_modules is missing or older
// than package-lock.json, so a fresh clone needs no separate install step. Node built-ins only.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const lock = path.join(root, 'package-lock.json');
const installed = path.join(root, 'node_modules', '.package-lock.json');
const mtime = (file) => (fs.existsSync(file) ? fs.statSync(file).mtimeMs : 0);

if (mtime(installed) === 0 || mtime(installed) < mtime(lock)) {
  // npm install, not npm ci: it installs the locked versions too, and npm ci refuses lock files whose optional
  // per-platform packages (such as @swc/core's) were recorded on another platform.
  console.log('setup: installing npm dependencies (npm install)');
  const result = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error('setup: npm install failed; check that this machine reaches the npm registry, then run again');
    process.exit(result.status ?? 1);
  }
}
