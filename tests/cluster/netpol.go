package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/cloudnativelabs/kube-router/v2/pkg/controllers/netpol"
	"github.com/cloudnativelabs/kube-router/v2/pkg/healthcheck"
	"github.com/cloudnativelabs/kube-router/v2/pkg/options"
	"github.com/spf13/pflag"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// runNetworkPolicy enforces NetworkPolicies on the real node with kube-router's network-policy
// controller alone (iptables and ipsets): no routing, service proxy, metrics or health server
// (which would listen on every interface). The CNI bridge enforces no policy by itself and
// kube-proxy keeps serving the Services.
func runNetworkPolicy() int {
	config := options.NewKubeRouterConfig()
	flags := pflag.NewFlagSet("kube-router-netpol", pflag.ContinueOnError)
	config.AddFlags(flags)
	if err := flags.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if config.HelpRequested {
		flags.PrintDefaults()
		return 0
	}
	config.RunFirewall, config.RunRouter, config.RunServiceProxy = true, false, false
	if err := enforceNetworkPolicies(config); err != nil {
		fmt.Fprintf(os.Stderr, "kube-router-netpol: %v\n", err)
		return 1
	}
	return 0
}

func enforceNetworkPolicies(config *options.KubeRouterConfig) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", config.Kubeconfig)
	if err != nil {
		return fmt.Errorf("reading the kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("building a client: %w", err)
	}
	stop := make(chan struct{})
	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods().Informer()
	namespaces := factory.Core().V1().Namespaces().Informer()
	policies := factory.Networking().V1().NetworkPolicies().Informer()
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	iptables, ipsets, err := netpol.NewIPTablesHandlers(config)
	if err != nil {
		return fmt.Errorf("iptables and ipset handlers: %w", err)
	}
	var ipsetMutex sync.Mutex
	controller, err := netpol.NewNetworkPolicyController(client, config, pods, policies, namespaces,
		&ipsetMutex, iptables, ipsets)
	if err != nil {
		return fmt.Errorf("the network policy controller: %w", err)
	}
	if _, err := pods.AddEventHandler(controller.PodEventHandler); err != nil {
		return err
	}
	if _, err := namespaces.AddEventHandler(controller.NamespaceEventHandler); err != nil {
		return err
	}
	if _, err := policies.AddEventHandler(controller.NetworkPolicyEventHandler); err != nil {
		return err
	}

	// The controller reports heartbeats to kube-router's health server, which is not run: drained.
	heartbeats := make(chan *healthcheck.ControllerHeartbeat, 10)
	go func() {
		for range heartbeats {
		}
	}()
	var running sync.WaitGroup
	running.Add(1)
	go controller.Run(heartbeats, stop, &running)
	klog.Info("enforcing NetworkPolicies")

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	close(stop)
	running.Wait()
	close(heartbeats)
	return nil
}
