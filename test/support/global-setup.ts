// Vitest global setup: one local OIDC issuer, fake AWS STS, Google STS + IAM Credentials, Entra and GitHub API for the whole
// run, their URLs (and the test GitHub App's credentials) provided to every project.

import { generateKeyPairSync } from "node:crypto";
import type { TestProject } from "vitest/node";
import { FakeAzure } from "./fake-azure.ts";
import { FakeGcp } from "./fake-gcp.ts";
import { FakeGitHub, GITHUB_APP_ID } from "./fake-github.ts";
import { FakeSts } from "./fake-sts.ts";
import { TestIssuer } from "./oidc-issuer.ts";
import { OpensshService } from "./openssh.ts";
import { OpensslService } from "./openssl.ts";
import { type PostgresInfo, PostgresServer } from "./postgres-server.ts";

let issuer: TestIssuer | undefined;
let sts: FakeSts | undefined;
let github: FakeGitHub | undefined;
let gcp: FakeGcp | undefined;
let azure: FakeAzure | undefined;
let postgres: PostgresServer | undefined;
let openssl: OpensslService | undefined;
let openssh: OpensshService | undefined;

export async function setup(project: TestProject): Promise<void> {
  // A real PostgreSQL server per project (test/support/postgres-server.ts): each project's setup owns its own, so
  // the two never share roles or fight over a port. Started first: it is the slowest part.
  postgres = new PostgresServer();
  const pg = postgres.start();
  pg.catch(() => undefined); // awaited below; a failure surfaces there
  issuer = await new TestIssuer().start();
  project.provide("issuerBase", issuer.base);

  sts = await new FakeSts().start();
  project.provide("stsBase", sts.base);
  // Real OpenSSL over loopback HTTP for the workerd suites (test/support/openssl.ts); installed on first use.
  openssl = await new OpensslService().start();
  project.provide("opensslBase", openssl.base);
  // Real OpenSSH (ssh-keygen, sshd, ssh) the same way (test/support/openssh.ts); installed on first use.
  openssh = await new OpensshService().start();
  project.provide("opensshBase", openssh.base);
  gcp = await new FakeGcp().start();
  project.provide("gcpBase", gcp.base);
  azure = await new FakeAzure().start();
  project.provide("azureBase", azure.base);

  // The test GitHub App's key, generated per run. The private key goes to tests in PKCS#1 PEM, the form
  // GitHub hands out (PKCS#1, "BEGIN RSA PRIVATE KEY").
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  github = await new FakeGitHub(publicKey).start();
  project.provide("githubApiBase", github.base);
  project.provide("githubAppId", GITHUB_APP_ID);
  project.provide("githubAppPrivateKey", privateKey.export({ type: "pkcs1", format: "pem" }) as string);
  project.provide("postgres", await pg);
}

export async function teardown(): Promise<void> {
  await Promise.all([
    issuer?.stop(),
    sts?.stop(),
    openssl?.stop(),
    openssh?.stop(),
    gcp?.stop(),
    azure?.stop(),
    github?.stop(),
    postgres?.stop(),
  ]);
}

declare module "vitest" {
  export interface ProvidedContext {
    issuerBase: string;
    /** Base URL of the fake AWS STS (test/support/fake-sts.ts). */
    stsBase: string;
    /** Base URL of the real-OpenSSL service (test/support/openssl.ts). */
    opensslBase: string;
    /** Base URL of the real-OpenSSH service (test/support/openssh.ts). */
    opensshBase: string;
    /** Base URL of the fake Google STS + IAM Credentials (test/support/fake-gcp.ts). */
    gcpBase: string;
    /** Base URL of the fake Entra token endpoint (test/support/fake-azure.ts). */
    azureBase: string;
    /** Base URL of the fake GitHub REST API (test/support/fake-github.ts). */
    githubApiBase: string;
    /** The test GitHub App's id ("424242"). */
    githubAppId: string;
    /** The test GitHub App's private key, PKCS#1 PEM. */
    githubAppPrivateKey: string;
    /** The test PostgreSQL server: admin and superuser URLs, server log (test/support/postgres-server.ts). */
    postgres: PostgresInfo;
  }
}
