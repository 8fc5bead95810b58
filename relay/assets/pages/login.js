// The pages of a signed-out visitor: signing in, and setting a new password from a one-time link.

import { asApiError, isAuthenticated, login, resetPassword } from "../api.js";
import { clear, h } from "../lib/dom.js";

/**
 * The sign-in card. Signing in emits the session's "login" event, which app.js acts on.
 * @param {HTMLElement} appRoot
 * @param {string | null} [notice]
 */
export function renderLogin(appRoot, notice) {
  document.title = "Sign in · Fulcrum";
  clear(appRoot);

  const email = h("input", {
    type: "email",
    name: "email",
    autocomplete: "username",
    required: true,
    placeholder: "you@example.com",
    "data-testid": "login-email",
    id: "login-email",
  });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
    "data-testid": "login-password",
    id: "login-password",
  });
  const submit = h("button.btn.btn-primary.btn-block", { type: "submit", "data-testid": "login-submit" }, "Sign in");
  const error = h("div.form-error", { role: "alert", "data-testid": "login-error", hidden: true });

  const form = h(
    "form.login-form",
    { novalidate: true },
    h("label.field", null, h("span.field-label", { text: "Email" }), email),
    h("label.field", null, h("span.field-label", { text: "Password" }), password),
    error,
    submit,
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!email.value.trim() || !password.value) {
      error.textContent = "Enter your email and password.";
      error.hidden = false;
      (email.value.trim() ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      await login(email.value.trim(), password.value);
      // onSession("login") takes it from here.
    } catch (err) {
      error.textContent = (err instanceof Error && err.message) || "Sign-in failed.";
      error.hidden = false;
      submit.disabled = false;
      submit.textContent = "Sign in";
      password.value = "";
      password.focus();
    }
  });

  appRoot.append(
    h(
      "div.login-page",
      null,
      h(
        "div.login-card",
        null,
        h(
          "div.login-brand",
          null,
          h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 36, height: 36 }),
          h("div", null, h("h1", { text: "Fulcrum" }), h("p.muted", { text: "Sign in to see your team's workspaces" })),
        ),
        notice ? h("div.notice", { role: "status", text: notice }) : null,
        form,
      ),
    ),
  );
  appRoot.removeAttribute("aria-busy");
  email.focus();
}

export const RESET_MIN = 8;
export const RESET_MAX = 1024;

/** "#/reset/TOKEN" -> "TOKEN" (opaque text); null for any other hash. */
/** @param {string} hash */
export function resetTokenFromHash(hash) {
  const m = /^#\/?reset\/(.+)$/.exec(String(hash || ""));
  if (!m) return null;
  let token = m[1];
  try {
    token = decodeURIComponent(token);
  } catch {
    /* keep it as written */
  }
  return token.trim() || null;
}

/**
 * "Set a new password" card for a one-time link from `fulcrum-relay user reset-password`.
 * Replaces whatever is shown (a signed-in shell too); on success the link is dropped from
 * the address bar and the login form takes over. The token is never logged or shown.
 */
/**
 * @param {HTMLElement} appRoot
 * @param {string} token
 * @param {() => Promise<void>} onDone called once the password is set (the link is already dropped)
 */
export function renderPasswordReset(appRoot, token, onDone) {
  document.title = "Set a new password · Fulcrum";
  clear(appRoot);

  const password = h("input", {
    type: "password",
    name: "new-password",
    autocomplete: "new-password",
    required: true,
    "data-testid": "reset-password",
    id: "reset-password",
    "aria-describedby": "reset-password-hint",
  });
  const repeat = h("input", {
    type: "password",
    name: "new-password-repeat",
    autocomplete: "new-password",
    required: true,
    "data-testid": "reset-password-repeat",
    id: "reset-password-repeat",
  });
  const submit = h(
    "button.btn.btn-primary.btn-block",
    { type: "submit", "data-testid": "reset-submit" },
    "Set password",
  );
  const error = h("div.form-error", { role: "alert", "data-testid": "reset-error", hidden: true });
  const expired = h("p.field-hint", {
    "data-testid": "reset-expired",
    hidden: true,
    text: "This link may have been used already or have expired. Ask an operator for a new one.",
  });

  const form = h(
    "form.login-form",
    { novalidate: true },
    h(
      "label.field",
      null,
      h("span.field-label", { text: "New password" }),
      password,
      h("span.field-hint", { id: "reset-password-hint", text: `At least ${RESET_MIN} characters.` }),
    ),
    h("label.field", null, h("span.field-label", { text: "Repeat it" }), repeat),
    error,
    expired,
    submit,
  );

  /** @param {string} text @param {HTMLElement | null} [focus] */
  const showError = (text, focus) => {
    error.textContent = text;
    error.hidden = false;
    if (focus) focus.focus();
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    expired.hidden = true;
    const pw = password.value;
    const chars = [...pw].length;
    if (chars < RESET_MIN || chars > RESET_MAX) {
      showError(
        chars < RESET_MIN
          ? `The password needs at least ${RESET_MIN} characters.`
          : `The password can have at most ${RESET_MAX} characters.`,
        password,
      );
      return;
    }
    if (repeat.value !== pw) {
      showError("The two passwords are not the same.", repeat);
      return;
    }
    submit.disabled = true;
    submit.textContent = "Setting password…";
    try {
      await resetPassword(token, pw);
    } catch (e) {
      if (!form.isConnected) return; // left the page meanwhile
      const err = asApiError(e);
      submit.disabled = false;
      submit.textContent = "Set password";
      expired.hidden = err.status !== 401;
      showError(err.message || "Setting the password failed.", err.status === 422 ? password : null);
      return;
    }
    if (!form.isConnected) return;
    // Drop the used link from the address bar (and history entry) before anything else.
    history.replaceState(null, "", location.pathname + location.search);
    await onDone();
  });

  appRoot.append(
    h(
      "div.login-page",
      null,
      h(
        "div.login-card",
        { "data-testid": "reset-card" },
        h(
          "div.login-brand",
          null,
          h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 36, height: 36 }),
          h(
            "div",
            null,
            h("h1", { text: "Set a new password" }),
            h("p.muted", { text: "Choose the password you will sign in with" }),
          ),
        ),
        form,
        h(
          "a.login-alt",
          { href: "#/", "data-testid": "reset-back" },
          isAuthenticated() ? "Back to the dashboard" : "Back to sign in",
        ),
      ),
    ),
  );
  appRoot.removeAttribute("aria-busy");
  password.focus();
}

/** "Loading Fulcrum…" while a session is being restored. @param {HTMLElement} appRoot */
export function renderBoot(appRoot) {
  clear(appRoot);
  appRoot.setAttribute("aria-busy", "true");
  appRoot.append(
    h(
      "div.boot",
      { role: "status" },
      h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 28, height: 28 }),
      h("span", { text: "Loading Fulcrum…" }),
    ),
  );
}
