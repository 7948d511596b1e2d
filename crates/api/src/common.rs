//! Building blocks shared by both API versions (their JSON shape is identical in v1alpha1 and v1beta1).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PodSpec};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Labels and annotations of the Pod built from a pod template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PodMetadata {
    /// Labels to put on the Pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to put on the Pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl PodMetadata {
    /// True when there are neither labels nor annotations.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// Metadata of a PersistentVolumeClaim template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct EmbeddedObjectMetadata {
    /// The pod volume name and the PVC name prefix (`<name>-<sandbox>`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Labels copied onto the created PVC.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations copied onto the created PVC.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The template of a Sandbox's Pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PodTemplate {
    /// The Pod spec, copied verbatim into the created Pod.
    #[schemars(transform = without_descriptions)]
    pub spec: PodSpec,
    /// Labels and annotations propagated to the Pod (reserved keys excluded).
    #[serde(default, skip_serializing_if = "PodMetadata::is_empty")]
    pub metadata: PodMetadata,
}

/// A template for one PersistentVolumeClaim of a Sandbox.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PersistentVolumeClaimTemplate {
    /// Name, labels and annotations of the claim.
    #[serde(default)]
    pub metadata: EmbeddedObjectMetadata,
    /// The claim spec.
    #[schemars(transform = without_descriptions)]
    pub spec: PersistentVolumeClaimSpec,
}

impl PersistentVolumeClaimTemplate {
    /// A template with only a name; its spec is filled in field by field.
    pub fn named(name: impl Into<String>) -> Self {
        let mut template = Self::default();
        template.metadata.name = name.into();
        template
    }
}

/// What happens to a Sandbox when its `shutdownTime` passes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ShutdownPolicy {
    /// Delete the Sandbox object once its Pod and Service are gone.
    Delete,
    /// Keep the Sandbox object with its status cleared and `Ready=False/SandboxExpired`.
    #[default]
    Retain,
}

/// A reference to an object of a known kind in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the referenced object.
    pub name: String,
}

/// Drops the descriptions inside an embedded core Kubernetes schema, keeping the top one.
///
/// The core API documents those fields already (`kubectl explain pod.spec`); repeating the text would
/// make each CRD about 1 MB, too big for client-side `kubectl apply`.
pub fn without_descriptions(schema: &mut Schema) {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("description");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let top = schema.get("description").cloned();
    if let Some(map) = schema.as_object_mut() {
        map.values_mut().for_each(strip);
        if let Some(top) = top {
            map.insert("description".into(), top);
        }
    }
}

/// Schema of a `conditions` array: `metav1.Condition` with the API server's usual limits.
pub fn conditions_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "description": "Condition contains details for one aspect of the current state of this API Resource.",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When the condition last changed status."
                },
                "message": {
                    "type": "string",
                    "maxLength": 32768,
                    "description": "A human readable message about the transition."
                },
                "observedGeneration": {
                    "type": "integer",
                    "format": "int64",
                    "minimum": 0,
                    "description": "The metadata.generation the condition was computed from."
                },
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1024,
                    "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                    "description": "A programmatic identifier of the reason for the last transition."
                },
                "status": {
                    "type": "string",
                    "enum": ["True", "False", "Unknown"],
                    "description": "Status of the condition."
                },
                "type": {
                    "type": "string",
                    "maxLength": 316,
                    "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                    "description": "Type of the condition in CamelCase or in foo.example.com/CamelCase."
                }
            }
        }
    })
}
