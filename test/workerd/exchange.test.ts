// End to end inside workerd: a CI token from the local issuer exchanged for a runpass-signed JWT.

import { createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { githubClaims, mint } from "../support/claims.ts";

describe("exchange", () => {
  it("a matching GitHub token gets a lease and a runpass JWT that verifies against /.well-known/jwks.json", async () => {
    const gh = uniqueIssuer();
    const broker = await makeBroker({
      policies: { "api-deploy": githubPolicy(gh) },
      issuers: issuersYaml(gh),
    });
    const claims = githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL);
    const token = await mint(ISSUER_BASE, gh, claims);

    const res = await broker.exchange(token, { policy: "api-deploy" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as {
      policy: string;
      policy_version: string;
      policy_set_version: string;
      lease: { id: string; run: string; expires_at: string; revoke_token: string };
      credentials: { token: { token: string; expires_at: string } };
    };
    expect(body.policy).toBe("api-deploy");
    expect(body.policy_version).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(body.policy_set_version).toBe(broker.bundle.version);
    expect(body.lease.run).toBe(`github:${gh}:519345000:${claims.run_id}:1`);
    expect(Date.parse(body.credentials.token.expires_at)).toBeLessThanOrEqual(
      Date.parse(body.lease.expires_at),
    );

    const jwks = await (await broker.fetch("/.well-known/jwks.json")).json();
    const discovery = (await (await broker.fetch("/.well-known/openid-configuration")).json()) as {
      issuer: string;
    };
    const { payload } = await jwtVerify(body.credentials.token.token, createLocalJWKSet(jwks as never), {
      issuer: discovery.issuer,
      audience: "https://deploy.acme.dev",
    });
    expect(payload.sub).toBe(`${gh}:repo:acme/api:ref:refs/heads/main`);
    expect(payload.repository_id).toBe("519345000");
    expect(payload.lease_id).toBe(body.lease.id);
    expect(payload.exp).toBe(Math.floor(Date.parse(body.credentials.token.expires_at) / 1000));
    expect(decodeJwt(body.credentials.token.token).aud).toBe("https://deploy.acme.dev");
  });
});
