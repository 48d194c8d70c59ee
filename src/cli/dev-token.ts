// `runpass dev token`: mints a GitHub-shaped token from the local dev issuer (exists only after `npm start`).

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { importJWK, SignJWT } from "jose";
import { DEV_DIR, type DevKeys } from "./dev-keys.ts";

export interface DevState {
  issuer: string;
  audience: string;
  port: number;
}

export interface DevTokenOptions {
  repo: string;
  ownerId: string;
  repoId: string;
  ref: string;
  event: string;
  runId: string;
  runAttempt: string;
  audience?: string;
  ttlSeconds: number;
  runnerEnvironment: string;
  extra: Record<string, string>;
}

/** Reads .dev/ (written by npm start); explains what to do when it is missing. */
export async function readDevState(root: string): Promise<{ keys: DevKeys; state: DevState }> {
  const keysFile = join(root, DEV_DIR, "keys.json");
  const stateFile = join(root, DEV_DIR, "state.json");
  if (!existsSync(keysFile) || !existsSync(stateFile)) {
    throw new Error(
      "no local dev broker found: run `npm start` first (dev tokens exist only in RUNPASS_DEV=1 mode)",
    );
  }
  return {
    keys: JSON.parse(await readFile(keysFile, "utf8")) as DevKeys,
    state: JSON.parse(await readFile(stateFile, "utf8")) as DevState,
  };
}

/** Signs a dev token with the dev issuer key, shaped like a GitHub Actions ID token. */
export async function mintDevToken(keys: DevKeys, state: DevState, o: DevTokenOptions): Promise<string> {
  const [owner] = o.repo.split("/");
  const now = Math.floor(Date.now() / 1000);
  const key = await importJWK(keys.devIssuer.privateJwk, "RS256");
  return new SignJWT({
    actor: "dev",
    actor_id: "1",
    event_name: o.event,
    job_workflow_ref: `${o.repo}/.github/workflows/dev.yml@${o.ref}`,
    ref: o.ref,
    ref_type: o.ref.startsWith("refs/tags/") ? "tag" : "branch",
    repository: o.repo,
    repository_id: o.repoId,
    repository_owner: owner,
    repository_owner_id: o.ownerId,
    repository_visibility: "private",
    run_attempt: o.runAttempt,
    run_id: o.runId,
    runner_environment: o.runnerEnvironment,
    sha: "0000000000000000000000000000000000000000",
    workflow: "dev",
    workflow_ref: `${o.repo}/.github/workflows/dev.yml@${o.ref}`,
    ...o.extra,
  })
    .setProtectedHeader({ alg: "RS256", kid: keys.devIssuer.privateJwk.kid as string, typ: "JWT" })
    .setIssuer(state.issuer)
    .setSubject(`repo:${o.repo}:ref:${o.ref}`)
    .setAudience(o.audience ?? state.audience)
    .setIssuedAt(now)
    .setNotBefore(now - 5)
    .setExpirationTime(now + o.ttlSeconds)
    .setJti(crypto.randomUUID())
    .sign(key);
}
