// ESLint (flat config): typescript-eslint's recommended rules over the whole repository, and for workflows/ the
// rules that keep workflow code deterministic (no Node built-ins, no I/O, no activity code, no timers or randomness
// of its own). `npm run lint`; `npm test` runs it before the tests.
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Workflow code runs in Temporal's deterministic sandbox and is replayed from history: everything it does that is
// not pure computation must go through the SDK (activities, timers, uuid4, patched ...).
const WORKFLOW_RULE_REASON = 'workflow code is replayed from history and must be deterministic';
const root = path.dirname(fileURLToPath(import.meta.url));
const nodeBuiltins = [...new Set(builtinModules.filter((name) => !name.startsWith('_')))];

export default defineConfig([
  globalIgnores([
    'node_modules/',
    '.signalbox/',
    '.scratch/',
    'test/histories/',
    'test/recordings/',
    // Generated workflow bundles and any build output.
    '**/workflow-bundle.js',
    'dist/',
    'coverage/',
  ]),

  js.configs.recommended,
  tseslint.configs.recommended,

  {
    languageOptions: {
      ecmaVersion: 2022,
      globals: { ...globals.node },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      // Parsed YAML, proto payloads and failure details are `any` on purpose in a few places.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },

  // The plain JavaScript files are CommonJS (bin entry point, the worker's failure converter, ensure-deps).
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: {
      '@typescript-eslint/no-require-imports': 'off',
    },
  },

  // Deterministic workflow code.
  {
    files: ['workflows/**/*.ts'],
    // Type information for workflows/ only, for the promise rules below: a workflow that drops an activity's or a
    // child's promise loses its failure. (The whole tree type-checked costs about three times as long and reports
    // some 900 no-unsafe-* findings on the deliberate `any`s.)
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: root } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: `Node built-in '${name}' in workflow code: ${WORKFLOW_RULE_REASON}; do I/O in an activity.`,
          })),
          patterns: [
            {
              group: ['node:*'],
              message: `Node built-ins in workflow code: ${WORKFLOW_RULE_REASON}; do I/O in an activity.`,
            },
            {
              // ../activities, ../activities/hosts, ../../activities/... : types only (import type), never values.
              regex: '^(\\.\\./)+(activities|workers|sandbox|cli|tools|scripts|config)(/.*)?$',
              allowTypeImports: true,
              message:
                'Workflow code may import only types from activities/ (and the other Node-side directories): call activities through proxyActivities.',
            },
            {
              group: ['@temporalio/activity', '@temporalio/client', '@temporalio/worker', '@temporalio/testing'],
              allowTypeImports: true,
              message:
                'Workflow code imports from @temporalio/workflow (and @temporalio/common), not the Node-side SDK packages.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate'].map(
          (name) => ({
            name,
            message: `${name} in workflow code: use sleep() or condition() from @temporalio/workflow.`,
          }),
        ),
        { name: 'process', message: `process in workflow code: ${WORKFLOW_RULE_REASON}.` },
        { name: 'require', message: `require in workflow code: ${WORKFLOW_RULE_REASON}; use a static import.` },
        { name: 'performance', message: `performance in workflow code: ${WORKFLOW_RULE_REASON}.` },
      ],
      'no-restricted-properties': [
        'error',
        {
          object: 'Math',
          property: 'random',
          message: 'Math.random in workflow code: use uuid4() from @temporalio/workflow.',
        },
        ...['setTimeout', 'setInterval', 'setImmediate', 'process', 'require', 'performance'].map((property) => ({
          object: 'globalThis',
          property,
          message: `globalThis.${property} in workflow code: ${WORKFLOW_RULE_REASON}.`,
        })),
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ImportExpression',
          message: `Dynamic import() in workflow code: ${WORKFLOW_RULE_REASON}; use a static import.`,
        },
        {
          selector: 'TSImportEqualsDeclaration[moduleReference.type="TSExternalModuleReference"]',
          message: `import = require() in workflow code: ${WORKFLOW_RULE_REASON}; use a static import.`,
        },
      ],
    },
  },
]);
