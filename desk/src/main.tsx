import { render, type ComponentType } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import './styles.css';
import { api, ApiError, messageOf, onUnauthorised } from './lib/api';
import { DirectoryContext, loadDirectory, type Directory } from './lib/directory';
import { useLoad } from './lib/hooks';
import { closeLive, onLiveStatus, liveStatus, useLive, type LiveStatus } from './lib/live';
import { Link, match, navigate, useLocation } from './lib/router';
import {
  SessionContext,
  allows,
  displayName,
  lastWorkspace,
  rememberWorkspace,
  type Session,
} from './lib/session';
import type { Me, SignedIn, WorkspaceRef } from './lib/types';
import { ErrorNote, Loading, PageTitle, Toasts } from './lib/ui';
import { zone } from './lib/format';

// Each view is its own module, loaded when first visited.
type ViewModule = { default: ComponentType<{ params: Record<string, string> }> };
const views: Record<string, () => Promise<ViewModule>> = {
  calendar: () => import('./views/calendar'),
  editor: () => import('./views/editor'),
  queue: () => import('./views/queue'),
  post: () => import('./views/post'),
  audience: () => import('./views/audience'),
  audit: () => import('./views/audit'),
  operations: () => import('./views/operations'),
  inbox: () => import('./views/inbox'),
  settings: () => import('./views/settings'),
  chat: () => import('./views/chat'),
};

const routes: [string, string][] = [
  ['/w/:ws/calendar', 'calendar'],
  ['/w/:ws/posts/new', 'editor'],
  ['/w/:ws/posts/:id/edit', 'editor'],
  ['/w/:ws/posts/:id', 'post'],
  ['/w/:ws/approvals', 'queue'],
  ['/w/:ws/audience', 'audience'],
  ['/w/:ws/chats/:id', 'chat'],
  ['/w/:ws/audit', 'audit'],
  ['/w/:ws/operations', 'operations'],
  ['/w/:ws/sandbox', 'inbox'],
  ['/w/:ws/settings', 'settings'],
];

const loaded = new Map<string, ComponentType<{ params: Record<string, string> }>>();

function LazyView(props: { name: string; params: Record<string, string> }) {
  const [, force] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const View = loaded.get(props.name);
  useEffect(() => {
    if (loaded.has(props.name)) return;
    views[props.name]().then(
      (m) => {
        loaded.set(props.name, m.default);
        force((n) => n + 1);
      },
      (e) => setError(messageOf(e)),
    );
  }, [props.name]);
  if (error) return <ErrorNote error={`This view could not be loaded: ${error}`} />;
  if (!View) return <Loading />;
  return <View params={props.params} />;
}

function SignIn(props: { onSignedIn: (me: Me) => void }) {
  const [login, setLogin] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [withToken, setWithToken] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    document.title = 'Sign in · Herald desk';
  }, []);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api<SignedIn>('/v1/desk/session', {
        method: 'POST',
        body: withToken ? { token: token.trim() } : { login, password },
      });
      const me = await api<Me>('/v1/me');
      props.onSignedIn(me);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? withToken
            ? 'That token is not valid (or no longer). Check it and try again.'
            : 'That login and password do not match. Try again.'
          : messageOf(err),
      );
    } finally {
      setBusy(false);
    }
  }
  return (
    <main id="main" class="signin">
      <form class="card signin-card" onSubmit={submit} aria-labelledby="signin-title">
        <p class="brand brand-big" aria-hidden="true">
          Herald
        </p>
        <h1 id="signin-title">Sign in to the desk</h1>
        <ErrorNote error={error} />
        {withToken ? (
          <label>
            Token
            <input
              name="token"
              type="password"
              autoComplete="off"
              required
              value={token}
              onInput={(e) => setToken(e.currentTarget.value)}
            />
          </label>
        ) : (
          <>
            <label>
              Login
              <input name="login" autoComplete="username" required value={login} onInput={(e) => setLogin(e.currentTarget.value)} />
            </label>
            <label>
              Password
              <input
                name="password"
                type="password"
                autoComplete="current-password"
                required
                value={password}
                onInput={(e) => setPassword(e.currentTarget.value)}
              />
            </label>
          </>
        )}
        <button class="primary" type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <button type="button" class="ghost" onClick={() => setWithToken(!withToken)}>
          {withToken ? 'Sign in with a login and password' : 'Sign in with a token'}
        </button>
        <p class="muted small">
          {withToken
            ? 'A new installation’s first sign-in uses the admin token that herald up printed.'
            : 'Your administrator creates your account and gives you a role in each workspace.'}
        </p>
      </form>
    </main>
  );
}

function Picker(props: { me: Me; onChanged: () => void }) {
  const list = props.me.workspaces || [];
  const [manual, setManual] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <main id="main" class="picker">
      <PageTitle title="Choose a workspace" />
      {list.length === 0 && <p>You have no role in any workspace yet. Ask an administrator to add you.</p>}
      <ul class="ws-list">
        {list.map((w) => (
          <li key={w.id}>
            <Link class="card ws-card" href={`/w/${w.id}/calendar`} onClick={() => rememberWorkspace(w.id)}>
              <strong>{w.name}</strong>
              <span class="muted">Your role: {w.role}</span>
            </Link>
          </li>
        ))}
      </ul>
      {props.me.user.instance_admin && (
        <form
          class="card inline-form"
          aria-labelledby="new-ws"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              const made = await api<{ id: string }>('/v1/workspaces', { method: 'POST', body: { name: manual.trim() } });
              rememberWorkspace(made.id);
              props.onChanged();
              navigate(`/w/${made.id}/settings`);
            } catch (err) {
              setError(messageOf(err));
            }
          }}
        >
          <h2 id="new-ws" style={{ margin: 0, width: '100%' }}>
            Create a workspace
          </h2>
          <ErrorNote error={error} />
          <label>
            Name
            <input required value={manual} onInput={(e) => setManual(e.currentTarget.value)} />
          </label>
          <button type="submit" class="primary">
            Create
          </button>
          <p class="muted small" style={{ width: '100%' }}>
            You become its admin; then register a bot, connect chats and add people in its Settings.
          </p>
        </form>
      )}
    </main>
  );
}

function LiveBadge() {
  const [s, setS] = useState<LiveStatus>(liveStatus());
  useEffect(() => {
    const off = onLiveStatus(setS);
    return () => {
      off();
    };
  }, []);
  const words = { live: 'Live', connecting: 'Connecting…', offline: 'Offline: reload to reconnect' }[s];
  return (
    <span class={`live live-${s}`} title="Views update by themselves while this says Live">
      <span class="dot" aria-hidden="true" />
      {words}
    </span>
  );
}

function Shell(props: { me: Me; ws: WorkspaceRef; view: string; params: Record<string, string>; onSignOut: () => void }) {
  const { me, ws } = props;
  const dirLoad = useLoad((signal) => loadDirectory(ws.id, signal), [ws.id]);
  useLive(
    ws.id,
    dirLoad.reload,
    (c) => c.stream === 'chat' || c.stream === 'segment' || c.stream === 'bot' || c.stream === 'workspace',
  );
  const session: Session = useMemo(() => {
    const members = new Map((dirLoad.data?.members || []).map((m) => [m.user_id, m]));
    return {
      me,
      ws,
      can: (a) => allows(ws.role, a),
      name: (id) => {
        if (!id) return 'someone';
        if (id === me.user.id) return `${displayName(me.user)} (you)`;
        const m = members.get(id);
        if (m) return m.display_name || m.login;
        if (id.startsWith('service:')) return id.slice(8);
        return id.length > 12 ? `user …${id.slice(-8)}` : id;
      },
    };
  }, [me, ws, dirLoad.data]);
  const directory: Directory | null = dirLoad.data ? { ...dirLoad.data, reload: dirLoad.reload } : null;
  const base = `/w/${ws.id}`;
  const nav: [string, string, string, boolean][] = [
    ['calendar', `${base}/calendar`, 'Calendar', true],
    ['editor', `${base}/posts/new`, 'New post', session.can('plan')],
    ['queue', `${base}/approvals`, 'Approvals', true],
    ['audience', `${base}/audience`, 'Audience', true],
    ['audit', `${base}/audit`, 'Audit', session.can('audit')],
    ['operations', `${base}/operations`, 'Operations', true],
    ['inbox', `${base}/sandbox`, 'Sandbox inbox', true],
    ['settings', `${base}/settings`, 'Settings', session.can('configure')],
  ];
  const workspaces = me.workspaces || [];
  return (
    <SessionContext.Provider value={session}>
      <div class="shell">
        <header class="top">
          <div class="top-row">
            <Link class="brand" href={`${base}/calendar`}>
              Herald
            </Link>
            <label class="ws-switch">
              <span class="sr-only">Workspace</span>
              <select
                value={ws.id}
                onChange={(e) => {
                  const id = e.currentTarget.value;
                  rememberWorkspace(id);
                  closeLive();
                  navigate(`/w/${id}/calendar`);
                }}
              >
                {workspaces.some((w) => w.id === ws.id) ? null : <option value={ws.id}>{ws.name}</option>}
                {workspaces.map((w) => (
                  <option key={w.id} value={w.id}>
                    {w.name}
                  </option>
                ))}
              </select>
            </label>
            <span class="role-chip" title="Your role in this workspace decides what you can do here">
              {ws.role}
            </span>
            <span class="spacer" />
            <LiveBadge />
            <span class="who" title={`Times are shown in ${zone}`}>
              {displayName(me.user)}
            </span>
            <button type="button" class="ghost" onClick={props.onSignOut}>
              Sign out
            </button>
          </div>
          <nav aria-label="Views">
            <ul>
              {nav
                .filter((n) => n[3])
                .map(([key, href, label]) => (
                  <li key={key}>
                    <Link href={href} aria-current={(props.view === 'chat' ? 'audience' : props.view) === key ? 'page' : undefined}>
                      {label}
                    </Link>
                  </li>
                ))}
            </ul>
          </nav>
        </header>
        <main id="main" tabIndex={-1}>
          <ErrorNote error={dirLoad.error} title="Some names could not be loaded:" />
          {directory ? (
            <DirectoryContext.Provider value={directory}>
              <LazyView name={props.view} params={props.params} />
            </DirectoryContext.Provider>
          ) : (
            <Loading what="the workspace" />
          )}
        </main>
      </div>
    </SessionContext.Provider>
  );
}

function App() {
  const loc = useLocation();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    onUnauthorised(() => {
      closeLive();
      setMe(null);
    });
    api<Me>('/v1/me').then(setMe, (e) => {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) setMe(null);
      else {
        setError(messageOf(e));
        setMe(null);
      }
    });
  }, []);

  // Where to land: the last workspace, or the only one, or the picker.
  useEffect(() => {
    if (!me) return;
    if (loc.path === '/' || loc.path === '/signin') {
      const list = me.workspaces || [];
      const last = lastWorkspace();
      const pick = list.find((w) => w.id === last) || (list.length === 1 ? list[0] : undefined);
      navigate(pick ? `/w/${pick.id}/calendar` : '/workspaces', { replace: true });
    }
  }, [me, loc.path]);

  useEffect(() => {
    if (me === null && loc.path !== '/signin') navigate('/signin', { replace: true });
  }, [me, loc.path]);

  function refreshMe() {
    api<Me>('/v1/me').then(setMe, () => {});
  }

  async function signOut() {
    try {
      await api('/v1/desk/session', { method: 'DELETE' });
    } catch {
      /* the session may already be gone */
    }
    closeLive();
    setMe(null);
    navigate('/signin');
  }

  if (me === undefined) return <Loading />;
  if (me === null)
    return (
      <>
        <ErrorNote error={error} />
        <SignIn onSignedIn={(m) => setMe(m)} />
      </>
    );

  for (const [pattern, view] of routes) {
    const params = match(pattern, loc.path);
    if (!params) continue;
    const known = (me.workspaces || []).find((w) => w.id === params.ws);
    const ws: WorkspaceRef | undefined =
      known || (me.user.instance_admin ? { id: params.ws, name: 'Workspace', role: 'admin' } : undefined);
    if (!ws) return <Picker me={me} onChanged={refreshMe} />;
    rememberWorkspace(ws.id);
    return <Shell me={me} ws={ws} view={view} params={params} onSignOut={signOut} />;
  }
  return <Picker me={me} onChanged={refreshMe} />;
}

function Root() {
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <App />
      <Toasts />
    </>
  );
}

render(<Root />, document.getElementById('app')!);
