// Structural schemas for policy files and issuers.yaml (zod at the edge); semantic rules live in load.ts.

import * as z from "zod/mini";
import { GrantsSchema } from "../grants/registry.ts";

const Scalar = z.union([z.string(), z.number(), z.boolean()]);
const Condition = z.union([Scalar, z.array(Scalar)]);
// Reserved keys such as __proto__ are refused by load.ts before this schema runs (zod would drop them).
const Conditions = z.record(z.string(), Condition);

/** One `policies/<name>.yaml` file. Unknown keys are errors. */
export const PolicyFileSchema = z.strictObject({
  description: z.optional(z.string()),
  issuer: z.string(),
  audience: z.optional(z.string()),
  allow: Conditions,
  deny: z.optional(z.array(Conditions)),
  ttl: z.optional(z.string()),
  deliver_once: z.optional(z.boolean()),
  sensitive: z.optional(z.boolean()),
  grants: GrantsSchema,
});
export type PolicyFile = z.infer<typeof PolicyFileSchema>;

const IssuerEntrySchema = z.strictObject({
  url: z.string(),
  kind: z.enum(["github", "gitlab", "generic"]),
  jwks_uri: z.optional(z.string()),
  max_token_age: z.optional(z.string()),
  algorithms: z.optional(z.array(z.string())),
});

/** `policies/issuers.yaml`: name → issuer. */
export const IssuersFileSchema = z.record(z.string(), IssuerEntrySchema);
export type IssuersFile = z.infer<typeof IssuersFileSchema>;

/** Human hints for type errors, by the key that failed. */
export const TYPE_HINTS: Record<string, string> = {
  ttl: "a duration such as 15m or 1h",
  max_token_age: "a duration such as 10m or 12h",
  issuer: "an issuer name (github, gitlab, or a name from issuers.yaml)",
  audience: "a string",
  allow: "a map of claim names to a value or a list of values",
  deny: "a list of maps of claim names to values",
  grants: "a map of grants (token, aws, github)",
  role_arn: "an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
  session_tags: "a map of tag keys to value templates",
  permissions: "a map of GitHub permission names to read/write",
  repositories: "a list of repository names",
  url: "an https URL",
  kind: "one of github, gitlab, generic",
};
