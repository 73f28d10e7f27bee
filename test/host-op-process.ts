// One host activity in a process of its own, as a worker runs it, for tests that kill the worker mid-step:
// node --import tsx test/host-op-process.ts <signalbox.yml> <home> <activity> <request JSON>
import { createHostActivities } from '../activities/hosts';
import { loadConfig } from '../config/load';

const [configFile, home, activity, request] = process.argv.slice(2);
const activities = createHostActivities(loadConfig(configFile, home)) as unknown as Record<
  string,
  (request: unknown) => Promise<unknown>
>;
activities[activity](JSON.parse(request)).then(
  (result) => {
    console.log(JSON.stringify(result));
    process.exit(0);
  },
  (err: Error) => {
    console.error(err.message);
    process.exit(1);
  },
);
