// Chorus chat UI: wiring. The ids and data-testid attributes end-to-end tests use are
// listed in static/README.md; keep that list in step when you change the markup.
//
// Modules: api.js (REST), ws.js (the tab's WebSocket), state.js (a session's state),
// session.js (one open session), views/* (DOM), util/* (helpers).

import { createApi, loadConfig, socketUrl } from "./api.js";
import { ConnectionStatus, ErrorBanner, bindDemoBanner, createAnnouncer, updateEmptyState } from "./chrome.js";
import { Notifier } from "./notify.js";
import { SessionController } from "./session.js";
import { bindAppShortcuts } from "./shortcuts.js";
import { bindThemeSelect } from "./theme.js";
import { Socket } from "./ws.js";
import { byTestId, setText, show } from "./util/dom.js";
import { describeError, sessionTitle } from "./util/format.js";
import { createAuthView } from "./views/auth.js";
import { Composer, clearDrafts } from "./views/composer.js";
import { ConversationView } from "./views/conversation.js";
import { confirmDialog, createNewSessionDialog, pipelineList } from "./views/dialogs.js";
import { Sidebar } from "./views/sidebar.js";
import { UsageView } from "./views/usage.js";
import { ApiKeysView } from "./views/apikeys.js";

const $ = (testid) => byTestId(document, testid);
const SESSION_ROUTE = /^#\/s\/([A-Za-z0-9_-]{1,64})$/;
const NARROW = window.matchMedia("(max-width: 720px)");
const EXPIRED = "Your sign-in has expired. Please sign in again.";
const SIGNED_OUT_ELSEWHERE = "You signed out in another tab.";

class App {
  constructor(config) {
    this.config = config;
    this.user = null;
    this.models = []; // the models agents use (a stage re-run may pick one)
    this.session = null; // the open SessionController
    this.frame = null;
    this.lastAuthCheck = 0;
    this.banner = new ErrorBanner($("global-error"));
    this.announce = createAnnouncer($("announcer"));
    this.connection = new ConnectionStatus($("conn-status"));
    this.notifier = new Notifier({ onOpen: (id) => this.navigate(id) });
    this.api = createApi(config.apiBase, { onUnauthorized: () => this.signOut(EXPIRED) });
    // Tabs tell each other about a sign-out, so the others give the true reason.
    this.channel = "BroadcastChannel" in window ? new BroadcastChannel("chorus-auth") : null;
    this.channel?.addEventListener("message", (e) => {
      if (e.data?.type === "signed-out") this.signOut(SIGNED_OUT_ELSEWHERE);
    });
    this.socket = new Socket(socketUrl(config.apiBase), {
      onState: (s) => this.showConnection(s),
      onAuthCheck: () => this.checkAuth(),
    });
    this.auth = createAuthView($("auth-view"), { api: this.api, onSignedIn: (u) => this.signedIn(u) });
    this.sidebar = new Sidebar($("sidebar"), {
      api: this.api,
      onOpen: (id) => {
        this.toggleSidebar(false);
        this.navigate(id);
      },
      onDeleted: (id) => this.session?.sessionId === id && this.navigate(null),
      onRenamed: (session) => this.session?.renamed(session),
      confirm: (message) => confirmDialog($("confirm-dialog"), message),
      onError: (message) => this.showError(message),
      onListed: () => this.updateEmptyState(),
    });
    this.usage = new UsageView($("usage-view"), { api: this.api });
    this.apiKeys = new ApiKeysView($("api-keys-view"), {
      api: this.api,
      confirm: (message, confirmLabel) => confirmDialog($("confirm-dialog"), message, { confirmLabel }),
      announce: (text) => this.announce(text),
    });
    // The pages other than a session: their route, footer link, view and title.
    this.pages = {
      "#/usage": { link: "usage-link", view: this.usage, title: "Usage · Chorus" },
      "#/api-keys": { link: "api-keys-link", view: this.apiKeys, title: "API keys · Chorus" },
    };
    this.conversation = new ConversationView(document.querySelector("main.conversation"), {
      onCancel: (run) => this.session?.cancel(run),
      onRetry: (run) => this.session?.retry(run),
      onApprove: (run, output) => this.session?.approve(run, output),
      onReject: (run) => this.session?.reject(run),
      onLoadRun: (runId) => this.session?.loadRun(runId),
      onLoadOlder: () => this.session?.loadOlder(),
      skewMs: () => this.api.clockSkewMs,
      announce: (text) => this.announce(text),
      onSuggest: (text) => this.composer.fill(text),
      onCancelQueued: (message) => this.session?.cancelQueued(message),
      onEdit: (message, text) => (this.session ? this.session.edit(message, text) : Promise.reject(new Error("no session"))),
      onRegenerate: (message) => this.session?.regenerate(message),
      onBranch: (messageId) => this.session?.showBranch(messageId),
      onRerunStage: (run, index, model) => this.session?.rerunStage(run, index, model),
      models: () => this.models,
    });
    this.composer = new Composer($("composer"), {
      onSend: (text) => (this.session ? this.session.send(text) : Promise.reject(new Error("no session"))),
    });
    this.newSession = createNewSessionDialog($("new-session-dialog"), {
      loadPipelines: async () => pipelineList(await this.api.pipelines()),
      create: (pipeline, title) => this.api.createSession(pipeline, title),
    });
    this.bindChrome();
  }

  bindChrome() {
    bindDemoBanner($("demo-banner"), this.config.demoModel);
    bindThemeSelect($("theme-select"));
    this.notifier.bindSwitch($("notify-switch"), $("notify-switch-label"));
    const search = $("session-search");
    let searchTimer = null;
    search.addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => this.sidebar.search(search.value), 250);
    });
    bindAppShortcuts({
      dialog: $("shortcuts-dialog"),
      button: $("shortcuts-button"),
      ready: () => Boolean(this.user),
      newSession: () => this.startSession(),
      search: () => {
        this.toggleSidebar(true);
        $("session-search").focus();
        $("session-search").select();
      },
      composer: () => Boolean(this.session) && (this.composer.focus(), true),
    });
    $("logout").addEventListener("click", () => this.logout());
    $("new-session").addEventListener("click", () => this.startSession());
    $("new-session-empty").addEventListener("click", () => this.startSession());
    $("reconnect").addEventListener("click", () => this.socket.reconnectNow());
    $("sidebar-toggle").addEventListener("click", () => this.toggleSidebar());
    $("sidebar-backdrop").addEventListener("click", () => this.toggleSidebar(false));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && document.body.classList.contains("sidebar-open")) this.toggleSidebar(false);
    });
    NARROW.addEventListener("change", () => {
      this.toggleSidebar(false);
      this.updateEmptyState();
    });
    window.addEventListener("hashchange", () => this.route());
    window.addEventListener("online", () => this.socket.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState !== "visible") return;
      if (this.socket.state === "offline") this.socket.reconnectNow();
      this.scheduleRender();
    });
  }

  async boot() {
    this.hideError();
    try {
      const body = await this.api.me();
      this.signedIn(body?.user ?? body);
    } catch (err) {
      if (err.status === 401) this.auth.open();
      else this.showError(describeError(err), () => this.boot());
    } finally {
      show($("boot"), false);
      $("boot").removeAttribute("aria-busy");
    }
  }

  signedIn(user) {
    this.user = user;
    this.hideError();
    this.auth.close();
    show($("app-view"), true);
    setText($("user-email"), user?.email ?? "");
    this.socket.start();
    this.sidebar.reload();
    this.route();
    this.loadModels();
  }

  async loadModels() {
    try {
      const body = await this.api.pipelines();
      const names = (body?.agents ?? []).flatMap((a) => (Array.isArray(a.models) ? a.models : []));
      this.models = [...new Set(names.filter((n) => typeof n === "string"))];
      this.scheduleRender();
    } catch {
      this.models = []; // a re-run can still use the stage's own models
    }
  }

  /** Back to the sign-in form (logout, or the server no longer accepts our cookie). */
  signOut(notice = "") {
    if (!this.user) return;
    this.user = null;
    this.connectedBefore = false;
    this.socket.stop();
    this.closeSession();
    this.sidebar.clear();
    this.conversation.clear();
    this.composer.setSession(null);
    clearDrafts();
    show($("app-view"), false);
    this.auth.open(notice);
  }

  async logout() {
    this.channel?.postMessage({ type: "signed-out" }); // before the server closes their sockets
    try {
      await this.api.logout();
    } catch {
      // signed out locally either way; the cookie expires on its own
    }
    if (window.location.hash) history.replaceState(null, "", window.location.pathname);
    this.signOut();
  }

  /** A socket that closed for auth reasons, or never got ready: is the sign-in still good? */
  async checkAuth() {
    if (Date.now() - this.lastAuthCheck < 5000) return;
    this.lastAuthCheck = Date.now();
    try {
      await this.api.me();
    } catch (err) {
      if (err.status === 401) this.signOut(EXPIRED);
    }
  }

  // --- sessions ---------------------------------------------------------------------

  navigate(sessionId) {
    const hash = sessionId ? `#/s/${sessionId}` : "";
    if (window.location.hash === hash || (!hash && !window.location.hash)) this.route();
    else if (hash) window.location.hash = hash;
    else {
      history.pushState(null, "", window.location.pathname);
      this.route();
    }
  }

  route() {
    if (!this.user) return;
    const match = SESSION_ROUTE.exec(window.location.hash);
    const page = this.pages[window.location.hash] ?? null;
    for (const other of Object.values(this.pages)) {
      if (other !== page) other.view.close();
      if (other === page) $(other.link).setAttribute("aria-current", "page");
      else $(other.link).removeAttribute("aria-current");
    }
    if (match) this.openSession(match[1]);
    else {
      this.closeSession();
      this.conversation.clear();
      this.sidebar.setActive(null);
      document.title = page ? page.title : "Chorus";
      this.updateEmptyState();
      if (page) {
        show($("no-session"), false);
        this.toggleSidebar(false);
        page.view.open();
      }
    }
  }

  updateEmptyState() {
    const firstRun = this.sidebar.loaded && this.sidebar.total === 0 && !this.sidebar.query;
    updateEmptyState($("no-session"), { firstRun, narrow: NARROW.matches });
  }

  openSession(id) {
    if (this.session?.sessionId === id) return;
    this.closeSession();
    this.composer.setSession(id);
    this.conversation.showLoading(id);
    this.sidebar.setActive(id);
    this.toggleSidebar(false);
    // Events older than this (server clock) are the session's history, not news.
    const since = Date.now() - this.api.clockSkewMs;
    this.session = new SessionController(id, {
      api: this.api,
      socket: this.socket,
      hooks: {
        onChange: (controller) => controller === this.session && this.scheduleRender(),
        onGone: (gone) => this.sessionGone(gone),
        onError: (message, retry, key) => this.showError(message, retry, key),
        onLoaded: () => this.clearError("session-load"),
        onTitle: (session) => this.sidebar.update(session),
        onEvent: (ev) =>
          this.notifier.onEvent(ev, { sessionId: id, title: this.session?.model.session?.title ?? "", since }),
      },
    });
    this.session.open();
    this.composer.focus();
  }

  closeSession() {
    this.session?.close();
    this.session = null;
  }

  sessionGone(id) {
    if (this.session?.sessionId !== id) return;
    this.sidebar.remove(id);
    this.showError("That session does not exist any more.", null, "session-gone");
    this.navigate(null);
  }

  async startSession() {
    const session = await this.newSession.open();
    if (!session) return;
    this.sidebar.upsert(session);
    this.navigate(session.session_id);
  }

  // --- rendering --------------------------------------------------------------------

  scheduleRender() {
    if (this.frame) return;
    const run = () => {
      this.frame = null;
      this.render();
    };
    // Hidden tabs get no animation frames; keep them current at a slower pace.
    this.frame = document.hidden ? setTimeout(run, 250) : requestAnimationFrame(run);
  }

  render() {
    const controller = this.session;
    if (!controller) return;
    const { model } = controller;
    this.conversation.render(model);
    const awaiting = model.activeRun()?.status === "awaiting_approval";
    this.composer.setBusy(model.busy() && (awaiting ? "awaiting" : true));
    if (model.session) {
      this.sidebar.update(model.session);
      document.title = `${sessionTitle(model.session)} · Chorus`;
    }
  }

  showConnection({ state, retryInMs }) {
    this.connection.show(state, retryInMs);
    show($("reconnect"), state === "offline" && Boolean(this.user));
    if (state === "online") this.clearError("offline");
    if (state === "online" && this.user) {
      // Statuses may have moved while we were away: refresh the list after a reconnect.
      if (this.connectedBefore) this.sidebar.refresh();
      this.connectedBefore = true;
    }
  }

  /** Show the error banner; key names its cause, so clearError(key) can take it down. */
  showError(message, retry = null, key = "general") {
    this.banner.show(message, retry, key);
  }

  hideError() {
    this.banner.hide();
  }

  clearError(key) {
    this.banner.clear(key);
  }

  toggleSidebar(open = !document.body.classList.contains("sidebar-open")) {
    const visible = open && NARROW.matches;
    document.body.classList.toggle("sidebar-open", visible);
    $("sidebar-toggle").setAttribute("aria-expanded", String(visible));
    show($("sidebar-backdrop"), visible);
    if (visible) $("new-session").focus();
  }
}

async function main() {
  const config = await loadConfig();
  const app = new App(config);
  window.chorus = app; // handy in the console and for end-to-end tests
  await app.boot();
}

main();
