import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // A fixed seed for every random draw, printed when a test fails.
    setupFiles: ['test/setup-seed.ts'],
    // Two files at a time: most tests wait on timers, watches and hosts rather than the CPU, and each file has its
    // own namespace, ports and fleet on the one dev server. More than two would crowd this machine's two cores.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 150_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
