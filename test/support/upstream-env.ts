// Broker settings that point the GitHub, AWS, GCP and Azure grants at the local fakes (workerd tests).

import { env } from "cloudflare:workers";
import { STS_ACCESS_KEY_ID, STS_SECRET_ACCESS_KEY } from "./fake-sts.ts";

/** The fake STS's base URL. */
export const STS = env.TEST_STS_BASE;
/** The fake GitHub API's base URL. */
export const GH_API = env.TEST_GITHUB_API_BASE;

/** The fake Google STS + IAM Credentials' base URL. */
export const GCP = env.TEST_GCP_BASE;
/** The fake Entra token endpoint's base URL. */
export const AZURE = env.TEST_AZURE_BASE;

/** Endpoint overrides that point the gcp and azure grants at the fakes (no cloud keys: none exist). */
export const CLOUD_ENV = {
  GCP_STS_ENDPOINT: GCP,
  GCP_IAMCREDENTIALS_ENDPOINT: GCP,
  AZURE_AUTHORITY_HOST: AZURE,
};

/** GitHub App settings for the fake GitHub API. */
export const GITHUB_ENV = {
  GITHUB_APP_ID: env.TEST_GITHUB_APP_ID,
  GITHUB_APP_PRIVATE_KEY: env.TEST_GITHUB_APP_PRIVATE_KEY,
  GITHUB_API_URL: GH_API,
};

/** Static AWS keys (AssumeRole mode) for the fake STS. */
export const STATIC_AWS_ENV = {
  AWS_ACCESS_KEY_ID: STS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY: STS_SECRET_ACCESS_KEY,
  AWS_STS_ENDPOINT: STS,
};
