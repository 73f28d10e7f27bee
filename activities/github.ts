// Train blockers on GitHub: the week's blocker issue is "<version> deployment blockers"; its open sub-issues
// hold the train, as open subtasks of the blocker task do in the runbook.
import { Octokit } from '@octokit/rest';
import type { SignalboxConfig } from '../config/load';
import type { Blocker } from '../workflows/render';
import { checkVersion } from '../workflows/names';

export interface BlockerReport {
  /** The train's blocker issue, when one exists. */
  issue?: { number: number; url: string };
  open: Blocker[];
}

export function blockerIssueTitle(version: string): string {
  return `${checkVersion(version)} deployment blockers`;
}

export function createGitHubActivities(config: SignalboxConfig) {
  async function openBlockers(request: { version: string }): Promise<BlockerReport> {
    const spec = config.train.blockers?.github;
    if (!spec) return { open: [] };
    const [owner, repo] = spec.repository.split('/');
    const octokit = new Octokit({ baseUrl: spec.apiUrl, auth: process.env[spec.tokenEnv] || undefined, userAgent: 'signalbox', request: { timeout: 15_000 } });
    const title = blockerIssueTitle(request.version);
    const found = await octokit.rest.search.issuesAndPullRequests({ q: `repo:${spec.repository} is:issue in:title "${title}"`, per_page: 10 });
    const issue = found.data.items.find((i) => i.title === title);
    if (!issue) return { open: [] };
    const subIssues = await octokit.paginate('GET /repos/{owner}/{repo}/issues/{issue_number}/sub_issues', { owner, repo, issue_number: issue.number, per_page: 100 });
    return {
      issue: { number: issue.number, url: issue.html_url },
      open: subIssues.filter((s) => s.state === 'open').map((s) => ({ title: `#${s.number} ${s.title}`, url: s.html_url })),
    };
  }

  return { openBlockers };
}
