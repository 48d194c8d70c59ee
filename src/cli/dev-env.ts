// The env file `npm start` hands to `wrangler dev --env-file`: dev secrets plus RUNPASS_*/GITHUB_*/GITLAB_*/AWS_*/GCP_*/AZURE_*
// from the process environment (wrangler reads no process env when .dev.vars exists, so everything goes through this file).

/** Variables passed from the launcher's environment to the dev Worker. */
export const PASSTHROUGH = /^(RUNPASS|GITHUB|GITLAB|AWS|GCP|AZURE)_[A-Z0-9_]*$/;

/**
 * Quotes a value for wrangler's dotenv + dotenv-expand: `$` is escaped so values are never expanded,
 * and the quote character is one the value does not contain (multi-line values are fine inside quotes).
 */
export function dotenvValue(value: string): string {
  const escaped = value.replace(/\$/g, "\\$");
  for (const q of ["'", "`", '"']) {
    if (!escaped.includes(q)) return `${q}${escaped}${q}`;
  }
  throw new Error("a value containing all of ' ` and \" cannot be passed through a dotenv file");
}

/** Renders KEY=value lines. */
export function renderEnvFile(vars: Record<string, string>): string {
  return `${Object.entries(vars)
    .map(([k, v]) => `${k}=${dotenvValue(v)}`)
    .join("\n")}\n`;
}

/** Dev defaults overlaid with passthrough variables from `processEnv` (the process wins, except RUNPASS_DEV). */
export function devVars(
  defaults: Record<string, string>,
  processEnv: NodeJS.ProcessEnv,
): Record<string, string> {
  const vars: Record<string, string> = { ...defaults };
  for (const [k, v] of Object.entries(processEnv)) {
    if (v !== undefined && PASSTHROUGH.test(k)) vars[k] = v;
  }
  vars.RUNPASS_DEV = "1";
  return vars;
}
