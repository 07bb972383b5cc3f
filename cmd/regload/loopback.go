package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// errNotLoopback refuses a target: regload is a load generator and only
// ever drives servers on this machine.
var errNotLoopback = errors.New("not a loopback address (regload only drives 127.0.0.0/8, ::1 or localhost)")

// lookupFunc resolves a host name (net.DefaultResolver.LookupNetIP in
// production, a fake in tests).
type lookupFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

// isLoopback reports whether a is in 127.0.0.0/8 or is ::1 (also written
// as an IPv4-mapped IPv6 address). 0.0.0.0 and :: are not loopback.
func isLoopback(a netip.Addr) bool {
	return a.Unmap().IsLoopback()
}

// checkLoopback resolves host and returns its addresses when every one of
// them is loopback; otherwise it returns an error. IP literals are checked
// as they are; names (localhost included) are resolved, so a name that
// resolves to anything but loopback is refused.
func checkLoopback(ctx context.Context, host string, lookup lookupFunc) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return nil, errors.New("target has no host")
	}
	if strings.Contains(host, "%") {
		return nil, fmt.Errorf("%s: zoned addresses are %w", host, errNotLoopback)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !isLoopback(a) {
			return nil, fmt.Errorf("%s: %w", host, errNotLoopback)
		}
		return []netip.Addr{a}, nil
	}
	addrs, err := lookup(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	for _, a := range addrs {
		if !isLoopback(a) {
			return nil, fmt.Errorf("%s resolves to %s: %w", host, a, errNotLoopback)
		}
	}
	return addrs, nil
}

// loopbackControl is a net.Dialer Control function: it refuses, at connect
// time, any address that is not loopback, so neither redirects nor a name
// that resolves differently later can lead regload elsewhere.
func loopbackControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	if !isLoopback(ap.Addr()) {
		return fmt.Errorf("dial %s: %w", address, errNotLoopback)
	}
	return nil
}

// systemLookup resolves with the system's resolver.
func systemLookup(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}
