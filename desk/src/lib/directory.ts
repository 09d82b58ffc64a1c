// The workspace's bots, chats, segments and members, loaded once per workspace and refreshed
// when the live stream says they changed; views use them to show names instead of ids.

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { api, pages } from './api';
import type { Bot, Chat, Member, Segment } from './types';

export interface Directory {
  bots: Bot[];
  chats: Chat[];
  segments: Segment[];
  members: Member[];
  chat: Map<string, Chat>;
  bot: Map<string, Bot>;
  reload: () => void;
}

export const DirectoryContext = createContext<Directory | null>(null);

export function useDirectory(): Directory {
  const d = useContext(DirectoryContext);
  if (!d) throw new Error('no directory');
  return d;
}

export async function loadDirectory(ws: string, signal: AbortSignal): Promise<Omit<Directory, 'reload'>> {
  const base = `/v1/workspaces/${encodeURIComponent(ws)}`;
  const [bots, chats, segments, members] = await Promise.all([
    api<Bot[] | { bots: Bot[] }>(`${base}/bots`, { signal })
      .then((b) => (Array.isArray(b) ? b : b.bots || []))
      .catch(() => [] as Bot[]),
    pages<Chat>(`${base}/chats`, 'chats', { limit: 500 }, { signal, max: 20_000 }).catch(() => [] as Chat[]),
    api<{ segments: Segment[] }>(`${base}/segments`, { signal })
      .then((s) => s.segments || [])
      .catch(() => [] as Segment[]),
    api<{ members: Member[] }>(`${base}/members`, { signal })
      .then((m) => m.members || [])
      .catch(() => [] as Member[]),
  ]);
  return {
    bots,
    chats,
    segments,
    members,
    chat: new Map(chats.map((c) => [c.id, c])),
    bot: new Map(bots.map((b) => [b.id, b])),
  };
}

/** A chat's title, or a short id when it is not (yet) known. */
export function chatTitle(d: Directory, id: string): string {
  const c = d.chat.get(id);
  if (!c) return `chat …${id.slice(-8)}`;
  return c.title || String(c.telegram_chat_id);
}

/** The public t.me link of a delivered message, where the chat has a public username. */
export function messageLink(chat: Chat | undefined, messageId: number | null): string | null {
  if (!chat || !messageId || !chat.username) return null;
  return `https://t.me/${chat.username}/${messageId}`;
}
