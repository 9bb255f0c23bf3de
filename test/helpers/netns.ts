/**
 * Network namespaces a test makes and removes: a hub namespace holding a
 * bridge, one namespace per host, each joined to the bridge by a veth pair,
 * and a veth from the test's own (root) namespace to the bridge so the test
 * can reach every host. The bridge lives in the hub namespace, whose
 * firewall is empty, so the machine's own rules (a FORWARD policy of DROP,
 * br_netfilter) never see the hosts' traffic; the root namespace only gains
 * one interface, removed with the rest.
 *
 *   root ns: vr<tag> 10.77.S.254 ──┐
 *   hub ns:  bridge ── vh<tag><i> ─┴─ host ns i: vn<tag><i> 10.77.S.(i+1)
 */
import { execFileSync } from 'node:child_process';
import { systemRng, toHex } from '../../src/crypto/index.ts';

/** Every `ip` call is bounded: a wedged netlink call fails the test instead of hanging it. */
const IP_TIMEOUT_MS = 10_000;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { timeout: IP_TIMEOUT_MS, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why namespaces can not be made here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return `not root (uid ${process.getuid?.()}): ip netns add needs CAP_SYS_ADMIN`;
  try {
    ip('netns', 'list');
  } catch (e) {
    return `\`ip netns list\` failed (${(e as Error).message.split('\n')[0]}): is iproute2 installed?`;
  }
  return undefined;
}

export interface TestHost {
  ns: string;
  address: string;
}

export interface TestNetwork {
  hosts: TestHost[];
  /** The test's own address on the bridge. */
  rootAddress: string;
  /** Deletes every namespace and link this network made; safe to call twice and after a failed setup. */
  remove(): string[];
}

/** A /24 under 10.77 that no interface of the root namespace uses yet. */
function freeSubnet(): number {
  const used = ip('-4', '-o', 'addr', 'show');
  for (let tries = 0; tries < 50; tries++) {
    const s = 10 + (systemRng.bytes(1)[0]! % 240);
    if (!used.includes(`10.77.${s}.`)) return s;
  }
  throw new Error('no free 10.77.x.0/24 subnet in 50 tries');
}

export function makeNetwork(count: number): TestNetwork {
  const tag = toHex(systemRng.bytes(3));
  const subnet = freeSubnet();
  const hub = `vm-${tag}-hub`;
  const made: string[] = [];
  const rootLink = `vr${tag}`;
  const net: TestNetwork = {
    hosts: Array.from({ length: count }, (_, i) => ({ ns: `vm-${tag}-${i + 1}`, address: `10.77.${subnet}.${i + 1}` })),
    rootAddress: `10.77.${subnet}.254`,
    remove() {
      const errors: string[] = [];
      try {
        ip('link', 'del', rootLink);
      } catch {
        // gone with the hub already, or never made
      }
      for (const ns of made.reverse()) {
        try {
          ip('netns', 'del', ns);
        } catch (e) {
          errors.push(`${ns}: ${(e as Error).message.split('\n')[0]}`);
        }
      }
      made.length = 0;
      return errors;
    },
  };
  try {
    ip('netns', 'add', hub);
    made.push(hub);
    ip('-n', hub, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', hub, 'link', 'set', 'br0', 'up');
    net.hosts.forEach((h, i) => {
      ip('netns', 'add', h.ns);
      made.push(h.ns);
      const [outer, inner] = [`vh${tag}${i}`, `vn${tag}${i}`];
      ip('-n', hub, 'link', 'add', outer, 'type', 'veth', 'peer', 'name', inner, 'netns', h.ns);
      ip('-n', hub, 'link', 'set', outer, 'master', 'br0', 'up');
      ip('-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', inner);
      ip('-n', h.ns, 'link', 'set', inner, 'up');
      ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    });
    ip('link', 'add', rootLink, 'type', 'veth', 'peer', 'name', `vq${tag}`, 'netns', hub);
    ip('-n', hub, 'link', 'set', `vq${tag}`, 'master', 'br0', 'up');
    ip('addr', 'add', `${net.rootAddress}/24`, 'dev', rootLink);
    ip('link', 'set', rootLink, 'up');
  } catch (e) {
    net.remove();
    throw e;
  }
  return net;
}

/** This test's namespaces still listed by `ip netns list` (none after `remove`). */
export function leftOver(net: TestNetwork): string[] {
  const listed = ip('netns', 'list');
  return net.hosts.map((h) => h.ns).filter((ns) => listed.includes(ns));
}
