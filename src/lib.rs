//! push-devices: a Discord-compatible push device registry, as a Spin component.
//!
//! | route | what it does |
//! |---|---|
//! | `POST /users/@me/devices` | register or refresh a device's push token |
//! | `DELETE /users/@me/devices` | remove one |
//! | `GET /users/@me/devices/sync-token` | mint a sync token naming the caller |
//! | `PUT /users/@me/devices/sync` | attach a device token to exactly the accounts named |
//!
//! The core is SDK-free and runs natively: [`route`] parses paths, [`auth`] says who `@me` is,
//! [`form`] validates bodies, [`token`] mints and verifies signed tokens, [`registry`] holds
//! the rules over a [`store::KvStore`] whose key layout lives in [`keys`] and whose
//! compare-and-swap discipline lives in [`cas`]; [`service`] ties them together and [`error`]
//! maps every failure to Discord's bodies. Only `spin` (built for `wasm32`) touches spin-sdk.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod auth;
pub mod cas;
pub mod config;
pub mod device;
pub mod error;
pub mod form;
pub mod http;
pub mod json;
pub mod keys;
pub mod memory;
pub mod ratelimit;
pub mod registry;
pub mod route;
pub mod service;
pub mod store;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod spin;
