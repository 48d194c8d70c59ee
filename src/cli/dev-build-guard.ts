// Development bundles (RUNPASS_DEV=1: the dev issuer, loopback http issuers) must never be deployed. The build
// cannot see the command that ran it except through the environment: wrangler runs [build] commands with
// WRANGLER_COMMAND set to "dev", "deploy", "versions upload" or "types", and `npm start` (scripts/dev.ts) sets
// RUNPASS_DEV_SERVER=1 for the build it runs itself before starting wrangler dev.

/** The variable scripts/dev.ts sets for its own builds. */
export const DEV_SERVER_MARKER = "RUNPASS_DEV_SERVER";

/** Why this environment must not build a development bundle, or undefined when it may (or builds for production). */
export function devBuildRefusal(env: NodeJS.ProcessEnv): string | undefined {
  if (env.RUNPASS_DEV !== "1") return undefined;
  const command = env.WRANGLER_COMMAND;
  if (command === "dev") return undefined;
  if (command === undefined && env[DEV_SERVER_MARKER] === "1") return undefined;
  const what = command === undefined ? "outside `npm start`" : `for \`wrangler ${command}\``;
  return `RUNPASS_DEV=1 builds a development bundle (dev issuer, loopback http issuers) and is refused ${what}: unset RUNPASS_DEV to build for production, or run the local broker with \`npm start\``;
}
