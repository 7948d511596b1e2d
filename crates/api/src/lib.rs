//! Kubernetes Agent Sandbox API: the `agents.x-k8s.io` and `extensions.agents.x-k8s.io` kinds in both
//! served versions, their well-known keys, pure version conversion and semantic validation.
