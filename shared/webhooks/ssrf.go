package webhooks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
)

// blocked are ranges no webhook may reach besides what netip's predicates cover (loopback,
// private, link-local — which holds the 169.254.169.254 metadata service — multicast,
// unspecified).
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),         // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),     // carrier-grade NAT (also some clouds' metadata)
	netip.MustParsePrefix("192.0.0.0/24"),      // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),     // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),       // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),      // NAT64: would reach any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),    // local-use NAT64
	netip.MustParsePrefix("2002::/16"),         // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("fd00:ec2::254/128"), // EC2 metadata over IPv6 (also in fc00::/7)
}

// checkAddr refuses an address a webhook must not reach; loopback only if allowed (local dev).
func checkAddr(ip netip.Addr, allowLoopback bool) error {
	ip = ip.Unmap()
	var why string
	switch {
	case ip.IsLoopback():
		if allowLoopback {
			return nil
		}
		why = "loopback"
	case ip.IsPrivate():
		why = "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		why = "link-local (cloud metadata)"
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		why = "not a unicast address"
	default:
		for _, p := range blocked {
			if p.Contains(ip) {
				why = "reserved (" + p.String() + ")"
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("refused to connect to %s: %s address", ip, why)
}

// dialControl checks the address actually being connected to, after DNS resolution, so a name
// that resolves (or later re-resolves) to a private address is refused too.
func dialControl(allowLoopback bool) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("refused to connect to %q: not an IP address", host)
		}
		return checkAddr(ip, allowLoopback)
	}
}

// checkURL is the registration-time check: an absolute http(s) URL without credentials whose
// host resolves only to addresses a webhook may reach. Connect time checks again.
func checkURL(ctx context.Context, raw string, allowLoopback bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("url must be an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return nil, fmt.Errorf("url must not hold credentials")
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("url must not have a #fragment")
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("url host %q does not resolve: %w", u.Hostname(), err)
	}
	for _, a := range addrs {
		if err := checkAddr(a, allowLoopback); err != nil {
			return nil, fmt.Errorf("url host %q: %w", u.Hostname(), err)
		}
	}
	return u, nil
}
