// Routes → handlers, the request id on every response, and one place that turns errors into one shape (docs/api.md, Errors).

import { Hono } from "hono";
import { consoleRoutes } from "./console/routes.tsx";
import { randomId } from "./core/crypto.ts";
import { RunpassError } from "./core/errors.ts";
import { adminRoutes } from "./http/admin.ts";
import { alertRoutes } from "./http/alerts.ts";
import { cliRoutes } from "./http/cli.ts";
import { devIssuerRoutes } from "./http/dev-issuer.ts";
import { exchangeRoutes } from "./http/exchange.ts";
import { leakRoutes } from "./http/leaks.ts";
import { leaseRoutes } from "./http/leases.ts";
import { oauthRoutes } from "./http/oauth.ts";
import { codeResponse, errorResponse } from "./http/respond.ts";
import { type AppOptions, Runtime } from "./http/runtime.ts";
import { sshRoutes } from "./http/ssh.ts";
import type { AppEnv } from "./http/types.ts";
import { webhookRoutes } from "./http/webhooks.ts";
import { wellKnownRoutes } from "./http/well-known.ts";
import { x509Routes } from "./http/x509.ts";

export type { AppOptions } from "./http/runtime.ts";

/** Builds the runpass HTTP app for a policy bundle. Per-isolate state (key cache, compiled policies) lives in it. */
export function createApp(options: AppOptions): Hono<AppEnv> {
  const runtime = new Runtime(options);
  const app = new Hono<AppEnv>();

  app.use("*", async (c, next) => {
    const requestId = randomId("req", 12);
    c.set("requestId", requestId);
    c.set("runtime", runtime);
    await next();
    c.res.headers.set("x-request-id", requestId);
  });

  wellKnownRoutes(app);
  exchangeRoutes(app);
  leaseRoutes(app);
  x509Routes(app);
  sshRoutes(app);
  oauthRoutes(app);
  webhookRoutes(app);
  adminRoutes(app);
  leakRoutes(app);
  alertRoutes(app);
  devIssuerRoutes(app);
  cliRoutes(app, options.runnerCli);
  consoleRoutes(app, options.lint ? { lint: options.lint } : {});

  app.notFound((c) =>
    codeResponse(c.get("requestId") ?? randomId("req", 12), "not_found", "no such endpoint"),
  );
  app.onError((error, c) => {
    const requestId = c.get("requestId") ?? randomId("req", 12);
    if (error instanceof RunpassError) return errorResponse(requestId, error);
    // Unexpected: log the class only (messages of foreign errors are not ours to vouch for), answer 500.
    console.error(
      JSON.stringify({ type: "runpass.unexpected_error", request_id: requestId, name: error.name }),
    );
    return codeResponse(requestId, "server_error", "internal error; the request id is in the logs");
  });
  return app;
}
