/**
 * Who is calling. Tokens are compared through their SHA-256 digests, so the lookup takes the same
 * path whatever the token, and a process dump never holds a map keyed by clear tokens.
 */
import { createHash } from 'node:crypto';
import type { AppIdentity } from './service';

export interface AppDirectory {
  /** The app holding this token, or null. */
  authenticate(token: string): Promise<AppIdentity | null>;
  isAdmin(token: string): boolean;
}

export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class StaticAppDirectory implements AppDirectory {
  private readonly byDigest = new Map<string, AppIdentity>();
  private readonly adminDigest: string;

  constructor(apps: ReadonlyArray<{ name: string; token: string; topics: readonly string[] }>, adminToken: string) {
    for (const app of apps) this.byDigest.set(tokenDigest(app.token), { name: app.name, topics: new Set(app.topics) });
    this.adminDigest = tokenDigest(adminToken);
  }

  authenticate(token: string): Promise<AppIdentity | null> {
    return Promise.resolve(this.byDigest.get(tokenDigest(token)) ?? null);
  }

  isAdmin(token: string): boolean {
    return tokenDigest(token) === this.adminDigest;
  }
}
