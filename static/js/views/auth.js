// Sign-in and registration forms: inline validation, then the server's own messages.

import { byTestId, show } from "../util/dom.js";
import { describeError } from "../util/format.js";

const EMAIL = /^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$/;
const MIN_PASSWORD = 8;

function setFieldError(form, name, message) {
  const input = form.elements[name];
  const error = form.querySelector(`#${input.id}-error`);
  input.setAttribute("aria-invalid", message ? "true" : "false");
  if (error) {
    error.textContent = message || "";
    show(error, Boolean(message));
  }
}

function validate(form, { strictPassword }) {
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  const errors = {
    email: !email ? "Enter your email address." : EMAIL.test(email) ? "" : "Enter a valid email address.",
    password: !password
      ? "Enter your password."
      : strictPassword && password.length < MIN_PASSWORD
        ? `Use at least ${MIN_PASSWORD} characters.`
        : new TextEncoder().encode(password).length > 72
          ? "Use at most 72 bytes."
          : "",
  };
  setFieldError(form, "email", errors.email);
  setFieldError(form, "password", errors.password);
  const first = ["email", "password"].find((name) => errors[name]);
  if (first) form.elements[first].focus();
  return !first;
}

/**
 * Wire the auth view. onSignedIn(user) is called after a successful login (registration
 * logs in right away with the same credentials).
 */
export function createAuthView(root, { api, onSignedIn }) {
  const loginForm = byTestId(root, "login-form");
  const registerForm = byTestId(root, "register-form");
  const tabs = { login: byTestId(root, "tab-login"), register: byTestId(root, "tab-register") };

  function selectTab(which) {
    for (const [name, tab] of Object.entries(tabs)) {
      const active = name === which;
      tab.setAttribute("aria-selected", String(active));
      tab.tabIndex = active ? 0 : -1;
    }
    show(loginForm, which === "login");
    show(registerForm, which === "register");
  }
  tabs.login.addEventListener("click", () => selectTab("login"));
  tabs.register.addEventListener("click", () => selectTab("register"));
  for (const tab of Object.values(tabs)) {
    tab.addEventListener("keydown", (e) => {
      if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
      const next = tab === tabs.login ? "register" : "login";
      selectTab(next);
      tabs[next].focus();
    });
  }

  for (const form of [loginForm, registerForm]) {
    for (const name of ["email", "password"]) {
      form.elements[name].addEventListener("input", () => setFieldError(form, name, ""));
    }
  }

  async function submit(form, errorTestId, action) {
    const error = byTestId(form, errorTestId);
    show(error, false);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      await action();
    } catch (err) {
      error.textContent = describeError(err);
      show(error, true);
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  }

  loginForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!validate(loginForm, { strictPassword: false })) return;
    const email = loginForm.elements.email.value.trim();
    submit(loginForm, "login-error", async () => {
      const body = await api.login(email, loginForm.elements.password.value);
      loginForm.reset();
      onSignedIn(body.user);
    });
  });

  registerForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!validate(registerForm, { strictPassword: true })) return;
    const email = registerForm.elements.email.value.trim();
    const password = registerForm.elements.password.value;
    const name = registerForm.elements.name.value.trim();
    submit(registerForm, "register-error", async () => {
      await api.register(email, password, name);
      const body = await api.login(email, password);
      registerForm.reset();
      onSignedIn(body.user);
    });
  });

  return {
    /** Show the view, optionally with a notice (e.g. "your session expired"). */
    open(notice = "") {
      show(root, true);
      selectTab("login");
      const error = byTestId(loginForm, "login-error");
      error.textContent = notice;
      show(error, Boolean(notice));
      loginForm.elements.email.focus();
    },
    close() {
      show(root, false);
    },
  };
}
