-- People and service accounts, their passwords, tokens and workspace roles. Owned by the
-- identity crate (`identity::Directory`); nothing else writes these tables.
CREATE TABLE identity_users (
    id uuid PRIMARY KEY,
    login text NOT NULL UNIQUE,
    display_name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('person', 'service')),
    instance_admin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    disabled_at timestamptz
);

-- argon2id PHC strings, never the password.
CREATE TABLE identity_passwords (
    user_id uuid PRIMARY KEY REFERENCES identity_users (id),
    hash text NOT NULL,
    set_at timestamptz NOT NULL DEFAULT now()
);

-- Sessions, API tokens and invitations: only the SHA-256 of the secret is kept.
CREATE TABLE identity_tokens (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES identity_users (id),
    hash bytea NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('session', 'api', 'invitation')),
    name text NOT NULL,
    scopes text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz
);
CREATE INDEX identity_tokens_by_user ON identity_tokens (user_id, created_at);

-- Failed sign-ins, for rate limiting (kept a day).
CREATE TABLE identity_sign_in_failures (
    login text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identity_sign_in_failures_by_login ON identity_sign_in_failures (login, at);

-- A user's role in a workspace.
CREATE TABLE identity_members (
    workspace_id uuid NOT NULL,
    user_id uuid NOT NULL REFERENCES identity_users (id),
    role text NOT NULL CHECK (role IN ('viewer', 'author', 'approver', 'admin', 'auditor')),
    granted_by text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX identity_members_by_user ON identity_members (user_id);
