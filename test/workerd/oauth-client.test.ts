// A generic OAuth client (openid-client) against runpass unmodified: RFC 8414 / OIDC discovery, an RFC 8693
// token exchange as a public client (client_id, no client authentication), RFC 7662 introspection, and a
// downstream verification of the issued token from the discovered jwks_uri (docs/api.md, Discovery).

import { createRemoteJWKSet, customFetch, jwtVerify } from "jose";
import * as client from "openid-client";
import { describe, expect, it } from "vitest";
import { serverMetadata } from "../../src/http/well-known.ts";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { githubClaims, mint } from "../support/claims.ts";

const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token";
const JWT = "urn:ietf:params:oauth:token-type:jwt";
const AUDIENCE = "https://deploy.acme.dev";

/** Every request the client makes goes to the broker app (its URLs all live under BROKER_URL). */
function brokerFetch(broker: TestBroker, seen: string[]): typeof fetch {
  return async (input, init) => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    expect(url.origin).toBe(BROKER_URL);
    seen.push(`${req.method} ${url.pathname}`);
    const body = req.method === "GET" ? undefined : await req.text();
    return broker.fetch(`${url.pathname}${url.search}`, {
      method: req.method,
      headers: req.headers,
      ...(body !== undefined ? { body } : {}),
    });
  };
}

async function setup() {
  const gh = uniqueIssuer();
  const broker = await makeBroker({ policies: { "api-deploy": githubPolicy(gh) }, issuers: issuersYaml(gh) });
  const token = () => mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
  return { broker, token };
}

async function discover(broker: TestBroker, seen: string[], algorithm?: "oauth2" | "oidc") {
  return client.discovery(new URL(BROKER_URL), "ci-pipeline", undefined, client.None(), {
    [client.customFetch]: brokerFetch(broker, seen),
    ...(algorithm ? { algorithm } : {}),
  });
}

describe("standard OAuth clients", () => {
  it("both discovery documents carry the RFC 8414 fields a token-exchange client needs", async () => {
    const { broker } = await setup();
    for (const path of ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]) {
      const res = await broker.fetch(path);
      expect(res.status).toBe(200);
      const doc = (await res.json()) as Record<string, unknown>;
      expect(doc).toMatchObject({
        issuer: BROKER_URL,
        token_endpoint: `${BROKER_URL}/oauth/token`,
        grant_types_supported: [EXCHANGE],
        token_endpoint_auth_methods_supported: ["none"],
        introspection_endpoint: `${BROKER_URL}/v1/introspect`,
        jwks_uri: `${BROKER_URL}/.well-known/jwks.json`,
      });
      expect(doc).toEqual(serverMetadata(BROKER_URL, ["ES256", "RS256"]));
      // No endpoint that does not exist is advertised.
      expect(doc).not.toHaveProperty("authorization_endpoint");
      expect(doc).not.toHaveProperty("revocation_endpoint");
    }
  });

  for (const algorithm of ["oidc", "oauth2"] as const) {
    it(`openid-client (${algorithm} discovery) exchanges, introspects, and the token verifies from jwks_uri`, async () => {
      const { broker, token } = await setup();
      const seen: string[] = [];
      const config = await discover(broker, seen, algorithm);
      const meta = config.serverMetadata();
      expect(meta.token_endpoint).toBe(`${BROKER_URL}/oauth/token`);
      expect(seen[0]).toBe(
        algorithm === "oidc"
          ? "GET /.well-known/openid-configuration"
          : "GET /.well-known/oauth-authorization-server",
      );

      const issued = await client.genericGrantRequest(config, EXCHANGE, {
        subject_token: await token(),
        subject_token_type: ID_TOKEN,
        requested_token_type: JWT,
        scope: "api-deploy",
        audience: AUDIENCE,
      });
      expect(issued.token_type).toBe("bearer");
      expect(issued.issued_token_type).toBe(JWT);
      expect(issued.expiresIn()).toBeGreaterThan(0);
      expect(seen).toContain("POST /oauth/token");

      const jwks = createRemoteJWKSet(new URL(meta.jwks_uri as string), {
        [customFetch]: brokerFetch(broker, seen),
      });
      const { payload } = await jwtVerify(issued.access_token, jwks, {
        issuer: meta.issuer,
        audience: AUDIENCE,
        algorithms: meta.id_token_signing_alg_values_supported as string[],
      });
      expect(payload.policy).toBe("api-deploy");
      expect(seen).toContain("GET /.well-known/jwks.json");

      const active = await client.tokenIntrospection(config, issued.access_token);
      expect(active.active).toBe(true);
      expect(active.lease_id).toBe(payload.lease_id);

      // The lease ends (the job's post step): introspection through the same client says so.
      const end = await broker.fetch(`/v1/leases/${encodeURIComponent(String(issued.lease_id))}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${issued.revoke_token}` },
      });
      expect(end.status).toBe(204);
      expect((await client.tokenIntrospection(config, issued.access_token)).active).toBe(false);
    });
  }

  it("a refused exchange reaches the client as an RFC 6749 error, and a replay as invalid_grant", async () => {
    const { broker, token } = await setup();
    const config = await discover(broker, []);
    const subject = await token();
    const params = { subject_token: subject, subject_token_type: ID_TOKEN, scope: "api-deploy" };
    await client.genericGrantRequest(config, EXCHANGE, params);
    await expect(client.genericGrantRequest(config, EXCHANGE, params)).rejects.toMatchObject({
      error: "invalid_grant",
    });
    await expect(
      client.genericGrantRequest(config, EXCHANGE, {
        ...params,
        subject_token: await token(),
        scope: "nope",
      }),
    ).rejects.toMatchObject({ error: "invalid_request" });
  });
});
