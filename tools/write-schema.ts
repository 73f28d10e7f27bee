// `npm run schema`: writes signalbox.schema.json, the JSON Schema of signalbox.yml that editors read, from its one
// definition in config/schema.ts. test/config-schema.test.ts fails while the committed file is behind it.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../config/load';
import { schemaJson } from '../config/schema';

const file = path.join(REPO_ROOT, 'signalbox.schema.json');
fs.writeFileSync(file, schemaJson());
console.log(`wrote ${path.relative(process.cwd(), file) || file}`);
