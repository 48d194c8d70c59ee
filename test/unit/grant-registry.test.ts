// The grant registry (docs/architecture.md, "Adding a grant"): every grant name has a module, the clients'
// export table mirrors the modules, and credential values are listed the same on both sides.

import { describe, expect, it } from "vitest";
import { GRANT_EXPORTS } from "../../src/client/grant-exports.ts";
import { type Credentials, credentialValues } from "../../src/core/grants/issue.ts";
import { GRANT_MODULES, grantModule, MINT_ORDER } from "../../src/core/grants/registry.ts";
import { GRANT_NAMES, type GrantName } from "../../src/core/policy/types.ts";

const SAMPLE: { [K in GrantName]-?: NonNullable<Credentials[K]> } = {
  token: { token: "eyJ.tok.sig", expires_at: "2026-12-02T12:00:00.000Z" },
  aws: {
    access_key_id: "ASIAEXAMPLE",
    secret_access_key: "secret-access-key",
    session_token: "session-token",
    expires_at: "2026-12-02T12:00:00.000Z",
    region: "eu-west-1",
  },
  gcp: {
    access_token: "ya29.example",
    expires_at: "2026-12-02T12:00:00.000Z",
    service_account: "deployer@acme-prod.iam.gserviceaccount.com",
  },
  azure: {
    access_token: "eyJ.entra.sig",
    expires_at: "2026-12-02T13:10:00.000Z",
    client_id: "11111111-1111-1111-1111-111111111111",
    tenant_id: "00000000-0000-0000-0000-000000000000",
    federated_token: "eyJ.assertion.sig",
  },
  github: {
    token: "ghs_example",
    expires_at: "2026-12-02T12:00:00.000Z",
    repositories: ["api"],
    permissions: {},
  },
  secrets: { STRIPE_API_KEY: "sk_live", SENTRY_DSN: "https://dsn" },
  x509: {
    certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    chain: "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
    private_key: "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n",
    serial: "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    not_before: "2026-12-02T11:59:00.000Z",
    not_after: "2026-12-02T12:00:00.000Z",
    expires_at: "2026-12-02T12:00:00.000Z",
  },
  ssh: {
    certificate: "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t runpass",
    private_key:
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n",
    known_hosts: "@cert-authority *.prod.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n",
    principals: ["deploy"],
    serial: "18446744073709551000",
    key_id: "runpass lease=lse_x run=github:1 policy=deploy",
    valid_after: "2026-12-02T11:44:00.000Z",
    valid_before: "2026-12-02T12:00:00.000Z",
    expires_at: "2026-12-02T12:00:00.000Z",
  },
  postgres: {
    username: "rp_abcdefghijklmnopqrst",
    password: "pg-password",
    host: "db.example.com",
    port: 5432,
    database: "app",
    url: "postgresql://rp_abcdefghijklmnopqrst:pg-password@db.example.com:5432/app?sslmode=verify-full",
    sslmode: "verify-full",
    expires_at: "2026-12-02T12:00:00.000Z",
  },
};

describe("the grant registry", () => {
  it("has one module per grant name, named for its key, and mints secrets first", () => {
    expect([...MINT_ORDER].sort()).toEqual([...GRANT_NAMES].sort());
    for (const name of GRANT_NAMES) expect(GRANT_MODULES[name].name).toBe(name);
    expect(MINT_ORDER[0]).toBe("secrets");
  });

  it("the clients' export table lists the same credential values as the broker's modules, for every grant", () => {
    for (const name of GRANT_NAMES) {
      const credential = SAMPLE[name] as never;
      expect(GRANT_EXPORTS[name].values(credential), name).toEqual(
        grantModule(name).secretValues(credential),
      );
    }
    expect(credentialValues(SAMPLE).sort()).toEqual(
      GRANT_NAMES.flatMap((n) => GRANT_EXPORTS[n].values(SAMPLE[n] as never)).sort(),
    );
  });

  it("every value a client exports or outputs as a credential is one it masks", () => {
    for (const name of GRANT_NAMES) {
      const exports = GRANT_EXPORTS[name];
      const credential = SAMPLE[name] as never;
      const masked = new Set(exports.values(credential));
      for (const [, value] of exports.credentialOutputs(credential))
        expect(masked.has(value), name).toBe(true);
    }
  });
});
