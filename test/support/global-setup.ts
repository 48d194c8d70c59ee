// Vitest global setup: one local OIDC issuer for the whole run, its URL provided to every project.

import type { TestProject } from "vitest/node";
import { TestIssuer } from "./oidc-issuer.ts";

let issuer: TestIssuer | undefined;

export async function setup(project: TestProject): Promise<void> {
  issuer = await new TestIssuer().start();
  project.provide("issuerBase", issuer.base);
}

export async function teardown(): Promise<void> {
  await issuer?.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    issuerBase: string;
  }
}
