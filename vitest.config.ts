import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // A fixed seed for every random draw, printed when a test fails.
    setupFiles: ['test/setup-seed.ts'],
    // Tests share one real Temporal dev server and this machine's two cores; files run one at a time.
    fileParallelism: false,
    testTimeout: 150_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
