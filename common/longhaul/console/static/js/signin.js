// Signing in: a local dev user's token (offered only under the dev runner: the dev user,
// and the dev admin in the admin group), or a token pasted from anywhere else (a Cognito
// access token on AWS). Kept in sessionStorage.

import { claims, devToken, isAdmin, setToken, token } from "./api.js";
import { el, fill } from "./dom.js";

/** Draw who is signed in in the header, and the sign-in panel when nobody is (or when asked). */
export function renderSignIn(config, { open = false, onChange }) {
  const who = document.getElementById("who");
  const panel = document.getElementById("signin");
  const signedIn = Boolean(token());
  const seen = claims() || {};
  const name = seen.username || seen["cognito:username"] || seen.sub || "unknown user";
  fill(
    who,
    signedIn
      ? [
          el("span", { id: "who-name" }, `Signed in as ${name}`), " ",
          isAdmin() ? [el("span", { id: "who-admin", class: "badge" }, "admin"), " "] : null,
          el("button", { id: "switch-user", onclick: () => renderSignIn(config, { open: true, onChange }) }, "Switch"),
          " ",
          el("button", { id: "sign-out", onclick: () => { setToken(""); onChange(); } }, "Sign out"),
        ]
      : el("span", { class: "muted" }, "Not signed in"),
  );
  panel.hidden = signedIn && !open;
  if (panel.hidden) return;
  const pasted = el("textarea", { id: "token-input", placeholder: "Paste an access token (Cognito, on AWS)", spellcheck: "false" });
  const problem = el("p", { class: "error", id: "signin-error" });
  const use = (value) => { setToken(value); panel.hidden = true; onChange(); };
  const devButton = (id, user, label) => el("button", {
    id,
    onclick: async () => {
      try { use(await devToken(user)); } catch (error) { fill(problem, `No dev token: ${error.message}`); }
    },
  }, label);
  const devUsers = Array.isArray(config.dev_users) ? config.dev_users : ["dev"];
  fill(
    panel,
    el("h2", {}, "Sign in"),
    config.dev_token
      ? el("div", {},
          el("p", { class: "dev-only" }, "Local dev runner only: a local user's token, fetched from the local user pool."),
          " ",
          devButton("use-dev-token", "dev", "Sign in as the dev user"),
          devUsers.includes("admin")
            ? [" ", devButton("use-dev-admin-token", "admin", "Sign in as the dev admin (group admin)")]
            : null)
      : null,
    el("label", { for: "token-input" }, "Access token"),
    pasted,
    el("button", { id: "use-token", onclick: () => use(pasted.value) }, "Use this token"),
    problem,
  );
}
