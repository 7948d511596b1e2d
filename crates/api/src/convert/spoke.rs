//! The contract of a served, non-storage version: conversion to and from the hub, and its error.

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A conversion the webhook cannot perform; the message names the object and the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConversionError {
    /// An annotation that carries a v1beta1-only field holds a value the field does not allow.
    #[error("{kind} {object}: annotation {key} has value {value:?}, which is not one of {allowed}")]
    InvalidAnnotation {
        /// Kind of the object.
        kind: &'static str,
        /// `namespace/name` of the object.
        object: String,
        /// The annotation key.
        key: &'static str,
        /// The offending value.
        value: String,
        /// The allowed values, comma-separated.
        allowed: &'static str,
    },
}

/// A served, non-storage version that converts to and from the storage version.
pub trait Spoke: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Sized {
    /// The storage (hub) version of the same kind.
    type Hub: Resource<DynamicType = ()> + Serialize + DeserializeOwned;

    /// Converts this object to the hub version.
    fn to_hub(&self) -> Result<Self::Hub, ConversionError>;

    /// Converts a hub object to this version.
    fn from_hub(hub: &Self::Hub) -> Result<Self, ConversionError>;
}
