/**
 * A Map with a bound, for what crypto code keeps to save work (prepared
 * public keys, pair keys, verified signature sets): a miss only costs the
 * work again, so past the bound the least recently used entry goes.
 */
export class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(readonly bound: number) {}

  /** The entry under `key`, refreshed (now the most recently used). */
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** Keeps `v` under `key`; past the bound, drops the least recently used. */
  set(key: string, v: V): void {
    this.map.delete(key);
    this.map.set(key, v);
    if (this.map.size > this.bound) this.map.delete(this.map.keys().next().value as string);
  }

  get size(): number {
    return this.map.size;
  }
}
