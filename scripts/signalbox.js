#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so there is no build step between an edit and a run.
require('tsx/cjs');
require('../cli/index.ts').main(process.argv);
