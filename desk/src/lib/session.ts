// Who is signed in, the workspace they chose and what their role there lets them do.
// docs/permissions.md is the source; the server enforces it anyway.

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Me, Role, WorkspaceRef } from './types';

export type Action = 'plan' | 'comment' | 'opt_out' | 'approve' | 'resolve' | 'audit' | 'configure';

const ALLOWED: Record<Action, Role[]> = {
  plan: ['author', 'admin'],
  comment: ['author', 'approver', 'admin'],
  opt_out: ['author', 'approver', 'admin'],
  approve: ['approver', 'admin'],
  resolve: ['approver', 'admin'],
  audit: ['auditor', 'admin'],
  configure: ['admin'],
};

export function allows(role: Role | undefined, action: Action): boolean {
  return !!role && ALLOWED[action].includes(role);
}

export interface Session {
  me: Me;
  ws: WorkspaceRef;
  can: (a: Action) => boolean;
  name: (userId: string | null | undefined) => string;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

const LAST = 'herald.desk.workspace';
export function lastWorkspace(): string | null {
  try {
    return localStorage.getItem(LAST);
  } catch {
    return null;
  }
}
export function rememberWorkspace(id: string) {
  try {
    localStorage.setItem(LAST, id);
  } catch {
    /* private mode: nothing to remember */
  }
}

export function displayName(u: { display_name?: string; name?: string; login?: string } | undefined): string {
  return u?.display_name || u?.name || u?.login || '';
}
