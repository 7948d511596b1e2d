package main

import (
	"errors"
	"fmt"
	"os"

	helmcmd "helm.sh/helm/v4/pkg/cmd"
	helmkube "helm.sh/helm/v4/pkg/kube"
)

// runHelm is the helm CLI (v4), for the chart's lint and render tests and `helm install` e2e.
func runHelm() int {
	// The field manager helm's server-side applies record, whatever this program is called.
	helmkube.ManagedFieldsManager = "helm"
	command, err := helmcmd.NewRootCmd(os.Stdout, os.Args[1:], helmcmd.SetupLogging)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	if err := command.Execute(); err != nil {
		var commandError helmcmd.CommandError
		if errors.As(err, &commandError) {
			return commandError.ExitCode
		}
		return 1
	}
	return 0
}
