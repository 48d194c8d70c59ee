// Webhook helpers: real @octokit/webhooks-examples payloads re-pointed at a test run and re-signed,
// and GitLab's documented Pipeline Hook shape.

import { env } from "cloudflare:workers";
import { Webhooks } from "@octokit/webhooks";

// The workflow_run and workflow_job examples of @octokit/webhooks-examples, handed over by vitest.config.ts:
// the whole 4 MB set as a module, loaded by two test files at once, overflows the test pool's WebSocket
// ("Message is too large") and kills both workers.
const examples = JSON.parse(env.TEST_WEBHOOK_EXAMPLES) as Array<{ name: string; examples: unknown[] }>;

export const GITHUB_SECRET = "test-webhook-secret-current";
export const GITHUB_SECRET_OLD = "test-webhook-secret-previous";
export const GITLAB_TOKEN = "test-gitlab-token-current";
export const GITLAB_TOKEN_OLD = "test-gitlab-token-previous";

type Example = Record<string, unknown> & {
  action?: string;
  workflow_run?: Record<string, unknown> & { status?: string };
};

/** The real example payloads of one event. */
export function githubExamples(event: "workflow_run" | "workflow_job"): Example[] {
  const def = (examples as Array<{ name: string; examples: unknown[] }>).find((e) => e.name === event);
  if (!def) throw new Error(`no ${event} examples`);
  return def.examples as Example[];
}

/** A real `workflow_run` example (by action and run status), re-pointed at repository/run/attempt. */
export function workflowRun(
  target: { repositoryId: number; runId: number; attempt?: number },
  pick: { action?: string; status?: string } = { action: "completed", status: "completed" },
): Example {
  const base = githubExamples("workflow_run").find(
    (e) =>
      (pick.action === undefined || e.action === pick.action) &&
      (pick.status === undefined || e.workflow_run?.status === pick.status),
  );
  if (!base) throw new Error(`no workflow_run example with ${JSON.stringify(pick)}`);
  const copy = structuredClone(base);
  (copy.repository as Record<string, unknown>).id = target.repositoryId;
  const run = copy.workflow_run as Record<string, unknown>;
  run.id = target.runId;
  run.run_attempt = target.attempt ?? 1;
  return copy;
}

/** `sha256=<hex>` over exactly `body`. */
export function signGitHub(body: string, secret = GITHUB_SECRET): Promise<string> {
  return new Webhooks({ secret }).sign(body);
}

/** GitLab's Pipeline Hook (docs: user/project/integrations/webhook_events.md#pipeline-events), trimmed. */
export function pipelineHook(projectId: number, pipelineId: number, status: string): Record<string, unknown> {
  return {
    object_kind: "pipeline",
    object_attributes: {
      id: pipelineId,
      iid: 12,
      name: "Pipeline for branch: main",
      ref: "main",
      tag: false,
      sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
      before_sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
      source: "push",
      status,
      detailed_status: status === "success" ? "passed" : status,
      stages: ["build", "test", "deploy"],
      created_at: "2026-11-23 13:44:58 UTC",
      finished_at: "2026-11-23 13:58:35 UTC",
      duration: 63,
      queued_duration: 12,
      variables: [],
      url: `https://gitlab.example.com/acme-group/infra/-/pipelines/${pipelineId}`,
    },
    merge_request: null,
    user: { id: 1, name: "Administrator", username: "root", avatar_url: "", email: "[REDACTED]" },
    project: {
      id: projectId,
      name: "infra",
      description: "",
      web_url: "https://gitlab.example.com/acme-group/infra",
      namespace: "acme-group",
      path_with_namespace: "acme-group/infra",
      default_branch: "main",
      visibility_level: 0,
    },
    commit: {
      id: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
      message: "test\n",
      timestamp: "2026-11-23T13:44:58+00:00",
      url: "https://gitlab.example.com/acme-group/infra/-/commit/bcbb5ec396a2c0f828686f14fac9b80b780504f2",
      author: { name: "User", email: "user@gitlab.com" },
    },
    builds: [],
  };
}
