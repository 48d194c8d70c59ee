#!/usr/bin/env node
// Entry point for the `runpass` command. The CLI is TypeScript run by Node's built-in type stripping (Node ≥ 22.18).
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `runpass: needs Node 22.18 or newer (this is ${process.version}); run it through npm (npx runpass, npm run runpass) to use the project's pinned Node`,
  );
  process.exit(2);
}
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
