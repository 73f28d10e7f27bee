// The sandbox's wikis and the seed content of its code and config repositories. The config repository, not this
// file, is what hosts and the train read at run time: wikis.json and wikiversions.json live there.
import type { Station } from '../workflows/names';

export interface WikiInfo {
  domain: string;
  group: Station;
}

export const SANDBOX_WIKIS: Record<string, WikiInfo> = {
  testwiki: { domain: 'test.wikipedia.org', group: 'testwikis' },
  test2wiki: { domain: 'test2.wikipedia.org', group: 'testwikis' },
  testwikidatawiki: { domain: 'test.wikidata.org', group: 'testwikis' },
  testcommonswiki: { domain: 'test-commons.wikimedia.org', group: 'testwikis' },
  mediawikiwiki: { domain: 'www.mediawiki.org', group: 'group0' },
  officewiki: { domain: 'office.wikimedia.org', group: 'group0' },
  foundationwiki: { domain: 'foundation.wikimedia.org', group: 'group0' },
  collabwiki: { domain: 'collab.wikimedia.org', group: 'group0' },
  enwiktionary: { domain: 'en.wiktionary.org', group: 'group1' },
  dewiktionary: { domain: 'de.wiktionary.org', group: 'group1' },
  commonswiki: { domain: 'commons.wikimedia.org', group: 'group1' },
  wikidatawiki: { domain: 'www.wikidata.org', group: 'group1' },
  frwikisource: { domain: 'fr.wikisource.org', group: 'group1' },
  enwiki: { domain: 'en.wikipedia.org', group: 'group2' },
  dewiki: { domain: 'de.wikipedia.org', group: 'group2' },
  frwiki: { domain: 'fr.wikipedia.org', group: 'group2' },
  jawiki: { domain: 'ja.wikipedia.org', group: 'group2' },
  eswiki: { domain: 'es.wikipedia.org', group: 'group2' },
  ruwiki: { domain: 'ru.wikipedia.org', group: 'group2' },
};

/**
 * Share of the traffic generator's requests per group: the big wikis of group2 carry most of it. The test wikis get
 * more than a real farm's (a few percent), so that the demo's ten-second watch of them can vouch for something.
 */
export const TRAFFIC_SHARE: Record<Station, number> = { testwikis: 0.1, group0: 0.15, group1: 0.3, group2: 0.45 };

export const SANDBOX_START_VERSION = '1.41.0-wmf.25';

export function wikiversionsFor(
  versionOf: (group: Station) => string,
  wikis: Record<string, WikiInfo>,
): Record<string, string> {
  return Object.fromEntries(Object.entries(wikis).map(([db, info]) => [db, `php-${versionOf(info.group)}`]));
}

/** Files of the code repository's main branch: a tiny MediaWiki-shaped tree. */
export function seedCodeFiles(): Record<string, string> {
  return {
    VERSION: 'master\n',
    'index.php': '<?php\nrequire __DIR__ . "/includes/WebStart.php";\n',
    'includes/WebStart.php': '<?php\n// Sets up the request environment.\n',
    'includes/DefaultSettings.php': '<?php\n$wgVersion = trim( file_get_contents( __DIR__ . "/../VERSION" ) );\n',
    'extensions/README': 'Extensions are branched with core on each train.\n',
  };
}
