// Entry of the standalone runner CLI served at /v1/cli/runpass.mjs: `node runpass.mjs exchange|revoke …`.

import { EXIT, RUNNER_USAGE, runner } from "./runner.ts";

const [command, ...args] = process.argv.slice(2);
const code = await runner(command, args);
if (code === undefined) {
  console.error(`usage: node runpass.mjs <command> [options]\n\ncommands:\n${RUNNER_USAGE}`);
  process.exitCode =
    command === undefined || command === "help" || command === "--help" ? EXIT.ok : EXIT.usage;
} else {
  process.exitCode = code;
}
