/**
 * Which network addresses a callback may connect to (the SSRF guard's rule). Pure: the caller
 * resolves names; this only judges addresses.
 *
 * By default only globally routable unicast addresses pass. Everything ipaddr.js classifies as
 * anything else is denied: loopback, private (10/8, 172.16/12, 192.168/16), link-local (including
 * the cloud metadata address 169.254.169.254), carrier-grade NAT (100.64/10), multicast,
 * unique-local (fc00::/7), unspecified, broadcast, documentation and benchmarking ranges, and the
 * IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) unless the embedded
 * address passes itself. `allowNetworks` (CIDRs) opens ranges on purpose, e.g. 127.0.0.0/8 for a
 * local receiver.
 */
import ipaddr from 'ipaddr.js';

export type ParsedAddress = ipaddr.IPv4 | ipaddr.IPv6;

export class AddressPolicy {
  private readonly allowed: Array<[ParsedAddress, number]>;

  /** Throws (with the offending entry) for a CIDR that does not parse. */
  constructor(allowNetworks: readonly string[] = []) {
    this.allowed = allowNetworks.map((cidr) => {
      try {
        return ipaddr.parseCIDR(cidr);
      } catch {
        throw new Error(`callbacks.allowNetworks: "${cidr}" is not a CIDR such as 10.0.0.0/8`);
      }
    });
  }

  /** Why a connection to `address` (an IP literal) is refused, or null when it is allowed. */
  refusal(address: string): string | null {
    let parsed: ParsedAddress;
    try {
      parsed = ipaddr.parse(address);
    } catch {
      return `"${address}" is not an IP address`;
    }
    if (this.isAllowedNetwork(parsed)) return null;
    const embedded = embeddedIpv4(parsed);
    if (embedded) {
      if (this.isAllowedNetwork(embedded)) return null;
      const range = embedded.range();
      return range === 'unicast' ? null : deny(address, range);
    }
    const range = parsed.range();
    return range === 'unicast' ? null : deny(address, range);
  }

  private isAllowedNetwork(address: ParsedAddress): boolean {
    for (const [network, bits] of this.allowed) {
      if (network.kind() === address.kind() && address.match(network, bits)) return true;
    }
    return false;
  }
}

function deny(address: string, range: string): string {
  return `${address} is a ${range} address; callbacks connect only to public addresses (allow a range with callbacks.allowNetworks)`;
}

/** The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64 64:ff9b::/96), if any. */
function embeddedIpv4(address: ParsedAddress): ipaddr.IPv4 | null {
  if (address.kind() !== 'ipv6') return null;
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address();
  const range = v6.range();
  if (range === 'rfc6052' || range === 'rfc6145') {
    const parts = v6.parts;
    const high = parts[6] ?? 0;
    const low = parts[7] ?? 0;
    return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
  }
  return null;
}

/** The literal address a URL host names (`[::1]` → `::1`), or null for a DNS name. */
export function literalAddressOf(hostname: string): string | null {
  const bare =
    hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return ipaddr.isValid(bare) && (bare.includes(':') || /^[0-9.]+$/.test(bare)) ? bare : null;
}
