// The sign-in page (admin-token mode) and the refusal page (Cloudflare Access mode, CSRF, rate limit).

import { Page } from "../layout.tsx";

/** The admin-token sign-in form. */
export function SignIn(props: { csrf: string; next: string; error?: string }) {
  return (
    <Page title="Sign in" path="/console/sign-in">
      <div class="signin">
        {props.error ? (
          <p class="flash error" role="alert" id="sign-in-error">
            {props.error}
          </p>
        ) : null}
        <form class="stack" method="post" action="/console/sign-in">
          <input type="hidden" name="csrf" value={props.csrf} />
          <input type="hidden" name="next" value={props.next} />
          <label>
            Admin token
            <input name="token" type="password" autocomplete="current-password" required />
          </label>
          <label>
            Your name (recorded as the actor of what you do; optional)
            <input name="name" autocomplete="username" maxlength={64} />
          </label>
          <button type="submit">Sign in</button>
        </form>
        <p class="muted">
          Sessions last at most 8 hours and end when you sign out. With Cloudflare Access configured, this
          page is not used: Access signs you in.
        </p>
      </div>
    </Page>
  );
}

/** A refusal as a page: what happened and what to do. */
export function Refused(props: { title: string; message: string; requestId: string }) {
  return (
    <Page title={props.title} path="/console/refused">
      <p role="alert">{props.message}</p>
      <p class="muted">{`Request id: ${props.requestId}`}</p>
      <p>
        <a href="/console">Back to the console</a>
      </p>
    </Page>
  );
}
