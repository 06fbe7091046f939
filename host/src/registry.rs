//! Typed calls into the component's own export, `push:devices/registry@0.1.0`
//! (`wit/push-devices.wit` at the repository root): [`Host::list_devices`] and
//! [`Host::invalidate`].
//!
//! The bindings are generated from the same WIT file the guest implements, so a change to
//! the interface breaks the build here rather than at run time. The generated types are
//! re-exported under the names a caller wants: [`Device`], [`VoipToken`], [`Provider`],
//! [`InvalidationReason`] and [`RegistryError`] (the WIT `error` variant).
//!
//! [`Host::list_devices`]: crate::Host::list_devices
//! [`Host::invalidate`]: crate::Host::invalidate

/// Bindings generated from `../wit` (world `push-devices`), async like the rest of the host.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "push-devices",
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::exports::push::devices::registry::{
    Device, Error as RegistryError, InvalidationReason, Provider, VoipToken,
};
pub(crate) use bindings::PushDevicesPre;

/// The interface's name, for error messages.
pub(crate) const INTERFACE: &str = "push:devices/registry@0.1.0";
