package main

import (
	"github.com/coredns/coredns/coremain"

	// Only the plugins the local cluster's Corefile uses: answering cluster.local from the API
	// server, bound to the pod bridge's address, with health and readiness endpoints and error
	// logging. No forward plugin is linked, so this DNS server cannot send a query off the machine.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// runCoreDNS runs CoreDNS; it parses its own flags (-conf) and exits the process itself on error.
func runCoreDNS() int {
	coremain.Run()
	return 0
}
