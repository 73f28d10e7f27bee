// The suite's fast settings, applied to the shipped signalbox.yml for every test sandbox (and checked valid by
// config.test.ts): measurements every second, live checks every 200 ms, a 300 ms watch.
export function applyFastSettings(raw: any): void {
  raw.services['mediawiki-config'].analysis = {
    ...raw.services['mediawiki-config'].analysis,
    intervalMs: 1000,
    measurements: 1,
    minRequests: 3,
    // Tests of the machinery judge as before the power rule: a 1 s canary cannot vouch for any release. The rule
    // has its own tests (analysis.test.ts), and the demo runs with it on.
    minEffect: 0.01,
    power: 0,
  };
  // A 300 ms watch sees too few requests to vouch for a release; tests about the watch set their own minimum.
  raw.train = {
    ...raw.train,
    verifyEveryMs: 200,
    verifyTimeoutMs: 10_000,
    watchMs: 300,
    watchMinRequests: 0,
    watchJudging: { power: 0 },
  };
}
