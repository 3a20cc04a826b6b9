// Signing in: through Cognito's hosted UI where the console's settings name one (on AWS:
// the authorization-code grant with PKCE, a public client, no secret), a local dev user's
// token (offered only under the dev runner: the dev user, and the dev admin in the admin
// group), or a token pasted from anywhere else. Kept in sessionStorage.

import { claims, devToken, isAdmin, setToken, token } from "./api.js";
import { el, fill } from "./dom.js";

// What a hosted sign-in keeps in this tab between leaving for the hosted UI and coming back.
const STATE_KEY = "longhaul.oauth.state";
const VERIFIER_KEY = "longhaul.oauth.verifier";
const RETURN_KEY = "longhaul.oauth.return"; // the hash route to come back to
const SCOPE = "openid";

let signInError = ""; // why the last hosted sign-in failed, shown once in the panel

/** The console's own address, without query or hash: the redirect and sign-out URL the
 * app client lists (`https://<host>/console/` on AWS). */
function consoleUrl() {
  return `${location.origin}${location.pathname}`;
}

function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** PKCE's S256 challenge of `verifier`: base64url(SHA-256(verifier)). */
async function challengeOf(verifier) {
  return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

/** Leave for the hosted UI's /oauth2/authorize, with a fresh state and PKCE verifier kept
 * in this tab. */
async function startHostedSignIn(hosted) {
  const state = randomString();
  const verifier = randomString();
  sessionStorage.setItem(STATE_KEY, state);
  sessionStorage.setItem(VERIFIER_KEY, verifier);
  sessionStorage.setItem(RETURN_KEY, location.hash);
  const query = new URLSearchParams({
    response_type: "code",
    client_id: hosted.client_id,
    redirect_uri: consoleUrl(),
    scope: SCOPE,
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  });
  location.assign(`${hosted.url}/oauth2/authorize?${query}`);
}

/** The code for a token at the hosted UI's /oauth2/token: the access token, or throws
 * with a line saying why not. */
async function exchange(hosted, code, verifier) {
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    client_id: hosted.client_id,
    code,
    redirect_uri: consoleUrl(),
    code_verifier: verifier,
  });
  let answer;
  try {
    answer = await fetch(`${hosted.url}/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form,
      cache: "no-store",
    });
  } catch (error) {
    throw new Error(`the sign-in service did not answer (${error.message})`);
  }
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(`the sign-in service refused the code (HTTP ${answer.status}${body.error ? `: ${body.error}` : ""})`);
  if (typeof body.access_token !== "string" || !body.access_token) throw new Error("the sign-in service sent no access token");
  return body.access_token;
}

/** On the way back from the hosted UI (`?code=&state=` or `?error=` on the console's
 * address): check the state, redeem the code with the verifier, keep the access token, and
 * take the query off the address. Any failure signs nobody in and leaves one line for the
 * sign-in panel. Does nothing on any other load. */
export async function finishHostedSignIn(config) {
  const params = new URLSearchParams(location.search);
  if (!["code", "state", "error"].some((key) => params.has(key))) return;
  const expected = sessionStorage.getItem(STATE_KEY);
  const verifier = sessionStorage.getItem(VERIFIER_KEY);
  const back = sessionStorage.getItem(RETURN_KEY) || "";
  for (const key of [STATE_KEY, VERIFIER_KEY, RETURN_KEY]) sessionStorage.removeItem(key);
  history.replaceState(null, "", `${location.pathname}${back || location.hash}`);
  const hosted = config.hosted_ui;
  let problem = "";
  if (!hosted) problem = "this console has no hosted sign-in";
  else if (params.has("error")) problem = [params.get("error"), params.get("error_description")].filter(Boolean).join(": ");
  else if (!expected || params.get("state") !== expected) problem = "the answer does not belong to a sign-in started in this tab (state mismatch)";
  else if (!params.get("code") || !verifier) problem = "the answer carries no code";
  if (!problem) {
    try {
      setToken(await exchange(hosted, params.get("code"), verifier));
      return;
    } catch (error) {
      problem = error.message;
    }
  }
  setToken("");
  signInError = `Sign-in failed: ${problem}. Sign in again.`;
}

/** Forget the token; with a hosted UI, end its session too (its /logout comes back here). */
function signOut(config, onChange) {
  setToken("");
  const hosted = config.hosted_ui;
  if (!hosted) { onChange(); return; }
  const query = new URLSearchParams({ client_id: hosted.client_id, logout_uri: consoleUrl() });
  location.assign(`${hosted.url}/logout?${query}`);
}

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
          el("button", { id: "sign-out", onclick: () => signOut(config, onChange) }, "Sign out"),
        ]
      : el("span", { class: "muted" }, "Not signed in"),
  );
  panel.hidden = signedIn && !open;
  if (panel.hidden) return;
  const pasted = el("textarea", { id: "token-input", placeholder: "Paste an access token (Cognito, on AWS)", spellcheck: "false" });
  const problem = el("p", { class: "error", id: "signin-error" }, signInError || null);
  signInError = "";
  const use = (value) => { setToken(value); panel.hidden = true; onChange(); };
  const devButton = (id, user, label) => el("button", {
    id,
    onclick: async () => {
      try { use(await devToken(user)); } catch (error) { fill(problem, `No dev token: ${error.message}`); }
    },
  }, label);
  const devUsers = Array.isArray(config.dev_users) ? config.dev_users : ["dev"];
  const hosted = config.hosted_ui;
  fill(
    panel,
    el("h2", {}, "Sign in"),
    problem,
    hosted
      ? el("div", { class: "hosted" },
          el("button", {
            id: "hosted-sign-in",
            class: "primary",
            onclick: () => startHostedSignIn(hosted).catch((error) => fill(problem, `Sign-in failed: ${error.message}`)),
          }, "Sign in"),
          " ",
          el("span", { class: "muted" }, "with your Longhaul account (the platform's Cognito user pool)"))
      : null,
    config.dev_token
      ? el("div", {},
          el("p", { class: "dev-only" }, "Local dev runner only: a local user's token, fetched from the local user pool."),
          " ",
          devButton("use-dev-token", "dev", "Sign in as the dev user"),
          devUsers.includes("admin")
            ? [" ", devButton("use-dev-admin-token", "admin", "Sign in as the dev admin (group admin)")]
            : null)
      : null,
    el("label", { for: "token-input" }, hosted ? "Or an access token" : "Access token"),
    pasted,
    el("button", { id: "use-token", onclick: () => use(pasted.value) }, "Use this token"),
  );
}
